// One conformance suite for every Store backend: a backend's test instantiates
// StoreConformanceTest with a StoreBackend (INSTANTIATE_TEST_SUITE_P).
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "base/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "store/store.h"

namespace tw::store {

struct StoreBackend {
  std::string name;
  // Opens a store kept in `dir`, a fresh empty directory of the test's own.
  std::function<absl::StatusOr<std::unique_ptr<Store>>(const std::string& dir)> open;
  // Whether the data outlives the store: opening the same dir again sees it. The suite then
  // closes and reopens the store in the middle of tests (Reopen).
  bool durable = true;
};

// Names the backend in failure messages.
inline void PrintTo(const StoreBackend& backend, std::ostream* os) { *os << backend.name; }

class StoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Closes the store and opens `dir_` again; keeps the open store for a backend that is not
  // durable.
  void Reopen();

  base::TempDir tmp_{"tw-store"};
  const std::string dir_ = tmp_.path();
  std::unique_ptr<Store> store_;
};

}  // namespace tw::store
