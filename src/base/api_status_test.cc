#include "base/api_status.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace tw::base {
namespace {

TEST(ApiStatusTest, EveryNameStandsForItsOwnCode) {
  std::set<std::string> names;
  for (const ApiStatus& row : ApiStatuses()) {
    EXPECT_TRUE(names.insert(std::string(row.name)).second) << row.name;
    EXPECT_EQ(StatusCodeOfName(row.name), row.code) << row.name;
    EXPECT_EQ(&ApiStatusOf(row.code), &row) << row.name;
  }
}

TEST(ApiStatusTest, MapsCodesToTheirHttpStatus) {
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kInvalidArgument).http, 400);
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kUnauthenticated).http, 401);
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kPermissionDenied).http, 403);
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kNotFound).http, 404);
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kUnimplemented).name, "method_not_allowed");
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kUnimplemented).http, 405);
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kFailedPrecondition).http, 409);
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kOutOfRange).http, 413);
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kResourceExhausted).http, 429);
  EXPECT_EQ(ApiStatusOf(absl::StatusCode::kUnavailable).http, 503);
}

TEST(ApiStatusTest, AnyOtherCodeIsInternal) {
  for (absl::StatusCode code : {absl::StatusCode::kUnknown, absl::StatusCode::kDataLoss,
                                absl::StatusCode::kAborted, absl::StatusCode::kCancelled}) {
    EXPECT_EQ(ApiStatusOf(code).name, "internal");
    EXPECT_EQ(ApiStatusOf(code).http, 500);
  }
  EXPECT_EQ(StatusCodeOfName("no_such_code"), absl::StatusCode::kUnknown);
}

}  // namespace
}  // namespace tw::base
