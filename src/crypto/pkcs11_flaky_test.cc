// The PKCS#11 signer when its token goes away and comes back: SoftHSM2 behind a module
// that fails as a removed token does while a file exists (testing/flaky_pkcs11.cc).
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "base/file.h"
#include "base/testing/temp_dir.h"
#include "crypto/pkcs11_signer.h"
#include "crypto/testing/softhsm.h"
#include "gtest/gtest.h"

namespace tw::crypto {
namespace {

class FlakyTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("TW_FLAKY_PKCS11_MODULE", testing::SoftHsmModule().c_str(), 1);
    ::setenv("TW_FLAKY_PKCS11_DOWN", down_.c_str(), 1);
    auto token = testing::NewSoftHsmToken(TW_FLAKY_PKCS11_PATH);
    ASSERT_TRUE(token.ok()) << token.status();
    auto uri = GeneratePkcs11Key(token->uri, "ca", KeyType::kEcP256);
    ASSERT_TRUE(uri.ok()) << uri.status();
    auto signer = Pkcs11Signer::Open(*uri);
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = *std::move(signer);
  }

  void Remove() { ASSERT_TRUE(base::WriteFile(down_, "").ok()); }
  void Reinsert() { ASSERT_EQ(::unlink(down_.c_str()), 0); }

  // Signs until it works, for at most `limit`.
  bool SignsWithin(absl::Duration limit) {
    const absl::Time end = absl::Now() + limit;
    while (absl::Now() < end) {
      auto s = signer_->Sign(base::ToBytes("m"));
      if (s.ok())
        return signer_->public_key().Verify(signer_->algorithm(), base::ToBytes("m"), *s).ok();
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  base::TempDir tmp_{"tw-flaky"};
  const std::string down_ = tmp_ / "down";
  std::unique_ptr<Pkcs11Signer> signer_;
};

TEST_F(FlakyTokenTest, ARemovedTokenIsUnavailableThenReachedAgain) {
  ASSERT_TRUE(signer_->Sign(base::ToBytes("m")).ok());
  Remove();
  for (int i = 0; i < 5; ++i) {
    auto s = signer_->Sign(base::ToBytes("m"));
    EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
  }
  Reinsert();
  EXPECT_TRUE(SignsWithin(absl::Seconds(5)));
}

TEST_F(FlakyTokenTest, ThreadsSigningThroughARemovalGetSignaturesOrUnavailableOnly) {
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, ok{0}, unavailable{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!stop) {
        auto s = signer_->Sign(base::ToBytes("m"));
        if (s.ok()) {
          ++(signer_->public_key().Verify(signer_->algorithm(), base::ToBytes("m"), *s).ok() ? ok
                                                                                             : bad);
        } else {
          ++(s.status().code() == absl::StatusCode::kUnavailable ? unavailable : bad);
        }
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(100));
  Remove();
  absl::SleepFor(absl::Milliseconds(300));
  Reinsert();
  absl::SleepFor(absl::Milliseconds(600));
  stop = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad, 0);
  EXPECT_GT(unavailable, 0);
  EXPECT_GT(ok, 0);
  EXPECT_TRUE(SignsWithin(absl::Seconds(5)));
}

}  // namespace
}  // namespace tw::crypto
