// One conformance suite for every Store backend: a backend's test instantiates
// StoreConformanceTest with a StoreBackend (INSTANTIATE_TEST_SUITE_P).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "store/store.h"

namespace tw::store {

struct StoreBackend {
  std::string name;
  // Opens the store kept in `dir`; opening the same dir again sees the same data.
  std::function<absl::StatusOr<std::unique_ptr<Store>>(const std::string& dir)> open;
};

class StoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override;
  void TearDown() override;
  void Reopen();

  std::string dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace tw::store
