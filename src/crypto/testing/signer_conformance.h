// One conformance suite for every crypto::Signer backend: a backend's test instantiates
// SignerConformanceTest with a SignerBackend and the key types it supports
// (INSTANTIATE_TEST_SUITE_P, e.g. with ::testing::Combine). It asserts signer.h's contract;
// signatures are checked with OpenSSL's EVP API directly as well as with public_key().
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "crypto/public_key.h"
#include "crypto/signer.h"
#include "gtest/gtest.h"

namespace tw::crypto::testing {

struct SignerBackend {
  std::string name;  // in test names: letters, digits and '_' only
  // A signer over a new key of `type`, made the way the backend makes keys (in memory, on a
  // token: a PKCS#11 backend captures its module and session here); each call a different
  // key. Called from the test's thread only; the signers it returns must be thread-safe.
  std::function<absl::StatusOr<std::unique_ptr<Signer>>(KeyType type)> make;
};

// A backend and the key type its signers are made with.
using SignerParam = std::tuple<SignerBackend, KeyType>;

class SignerConformanceTest : public ::testing::TestWithParam<SignerParam> {
 protected:
  void SetUp() override;

  KeyType key_type() const { return std::get<1>(GetParam()); }
  // Another signer from the same backend, with a key of the same type.
  std::unique_ptr<Signer> MakeSigner() const;

  std::unique_ptr<Signer> signer_;
};

// "<backend>_P256" and the like, for INSTANTIATE_TEST_SUITE_P's name generator.
std::string SignerParamName(const ::testing::TestParamInfo<SignerParam>& info);

// The backend's name in GoogleTest's messages.
void PrintTo(const SignerBackend& backend, std::ostream* os);

}  // namespace tw::crypto::testing

namespace tw::crypto {
// The curve's name ("P-256") in GoogleTest's messages.
void PrintTo(KeyType type, std::ostream* os);
}  // namespace tw::crypto
