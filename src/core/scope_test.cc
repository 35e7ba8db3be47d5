#include "core/scope.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::core {
namespace {

using ::testing::HasSubstr;

Scope S(const char* s) {
  auto scope = Scope::Parse(s);
  EXPECT_TRUE(scope.ok()) << s << ": " << scope.status();
  return *scope;
}

TEST(ScopeTest, ParsesActionAndObject) {
  Scope s = S("read:transactions");
  EXPECT_EQ(s.action(), "read");
  EXPECT_EQ(s.object_prefix(), "transactions");
  EXPECT_FALSE(s.object_wildcard());
  Scope w = S("write:ledger.*");
  EXPECT_EQ(w.object_prefix(), "ledger.");
  EXPECT_TRUE(w.object_wildcard());
}

TEST(ScopeTest, RejectsMalformedScopes) {
  for (const char* bad : {"", "read", ":x", "read:", "re ad:x", "read:a b", "read:a*b", "r*:x",
                          "read:x\n", "a:b:c"}) {
    auto s = Scope::Parse(bad);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(Scope::Parse(std::string(300, 'a') + ":x").ok());
}

struct CoverCase {
  const char* granted;
  const char* requested;
  bool covered;
};

class ScopeCoverTest : public ::testing::TestWithParam<CoverCase> {};

TEST_P(ScopeCoverTest, CoversPerDesign) {
  const CoverCase& c = GetParam();
  EXPECT_EQ(S(c.granted).Covers(S(c.requested)), c.covered) << c.granted << " / " << c.requested;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ScopeCoverTest,
    ::testing::Values(CoverCase{"read:transactions", "read:transactions", true},
                      CoverCase{"read:transactions", "write:transactions", false},
                      CoverCase{"read:transactions", "read:transactionsx", false},
                      CoverCase{"read:*", "read:anything", true},
                      CoverCase{"read:*", "write:anything", false},
                      CoverCase{"*:ledger", "delete:ledger", true},
                      CoverCase{"*:ledger", "delete:other", false},
                      CoverCase{"*:*", "delete:records", true},
                      CoverCase{"write:ledger.*", "write:ledger.entries", true},
                      CoverCase{"write:ledger.*", "write:ledger", false},
                      CoverCase{"write:ledger.*", "write:ledger.a.*", true},
                      CoverCase{"write:ledger.a.*", "write:ledger.*", false},
                      CoverCase{"read:x", "read:x*", false}, CoverCase{"read:x", "*:x", false},
                      CoverCase{"read:*", "read:*", true}, CoverCase{"read:a*", "read:*", false}));

TEST(ScopeTest, AttenuationNamesTheFirstUncoveredScope) {
  std::vector<Scope> parent = {S("read:transactions"), S("write:ledger.*")};
  EXPECT_TRUE(CheckScopesCovered(parent, {S("read:transactions"), S("write:ledger.x")}).ok());
  absl::Status s = CheckScopesCovered(parent, {S("read:transactions"), S("delete:records")});
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("delete:records"));
}

TEST(ScopeTest, JoinsWithSpaces) {
  EXPECT_EQ(JoinScopes({S("a:b"), S("c:d")}), "a:b c:d");
  EXPECT_EQ(JoinScopes({}), "");
}

TEST(TrustLevelTest, ParsesAndOrders) {
  EXPECT_EQ(*ParseTrustLevel("low"), TrustLevel::kLow);
  EXPECT_EQ(*ParseTrustLevel("critical"), TrustLevel::kCritical);
  EXPECT_LT(TrustLevel::kMedium, TrustLevel::kHigh);
  EXPECT_FALSE(ParseTrustLevel("High").ok());
  EXPECT_FALSE(ParseTrustLevel("").ok());
  EXPECT_EQ(TrustLevelName(TrustLevel::kMedium), "medium");
}

TEST(DurationTest, ParsesDesignForms) {
  EXPECT_EQ(*ParseDuration("90s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDuration("30m"), absl::Minutes(30));
  EXPECT_EQ(*ParseDuration("8h"), absl::Hours(8));
  EXPECT_EQ(*ParseDuration("2d"), absl::Hours(48));
  EXPECT_EQ(*ParseDuration("1h30m"), absl::Minutes(90));
}

TEST(DurationTest, RejectsBadForms) {
  for (const char* bad :
       {"", "0s", "30", "m", "-5m", "1.5h", "5 m", "5M", "5w", "1h30", "99999999999s", "3651d"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
}

TEST(ScopeTest, OverlapsWhenSomeScopeIsCoveredByBoth) {
  auto s = [](const char* text) { return *Scope::Parse(text); };
  EXPECT_TRUE(s("delete:*").Overlaps(s("*:*")));
  EXPECT_TRUE(s("*:*").Overlaps(s("delete:records")));
  EXPECT_TRUE(s("read:a*").Overlaps(s("*:ab")));
  EXPECT_TRUE(s("read:ledger.*").Overlaps(s("read:led*")));
  EXPECT_FALSE(s("delete:*").Overlaps(s("read:*")));
  EXPECT_FALSE(s("read:ab*").Overlaps(s("read:ac")));
  EXPECT_FALSE(s("read:a").Overlaps(s("read:b")));
}

}  // namespace
}  // namespace tw::core
