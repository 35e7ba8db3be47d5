#include "sdk/status_error.h"

#include "gtest/gtest.h"

namespace trustwarden::internal {
namespace {

// The code of the Error that `status` is thrown as.
std::string ThrownCode(const absl::Status& status) {
  try {
    Throw(status);
  } catch (const Error& e) {
    EXPECT_EQ(e.what(), status.message());
    return e.code();
  }
}

TEST(StatusErrorTest, AStatusIsThrownWithItsCanonicalCodeName) {
  EXPECT_EQ(ThrownCode(absl::UnavailableError("server: HTTP 502")), "unavailable");
  EXPECT_EQ(ThrownCode(absl::InvalidArgumentError("bad scope")), "invalid_argument");
  EXPECT_NO_THROW(ThrowIfError(absl::OkStatus()));
}

TEST(StatusErrorTest, TheServersCanonicalCodesBecomeStatusCodes) {
  const absl::Status s = ServerError("permission_denied", "server: revoked");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "server: revoked");
  EXPECT_TRUE(IsRefusal(s));
  EXPECT_EQ(ThrownCode(s), "permission_denied");
}

TEST(StatusErrorTest, TheServersOtherCodesReachTheErrorUnchanged) {
  const absl::Status s = ServerError("payload_too_large", "server: too large");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(ThrownCode(s), "payload_too_large");
}

}  // namespace
}  // namespace trustwarden::internal
