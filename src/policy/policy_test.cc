#include "policy/policy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::policy {
namespace {

using ::testing::HasSubstr;

constexpr char kSample[] = R"(
[principals.ci-pipeline]
names = ["acme-corp/finance-team/*", "acme-corp/ops-*/watcher"]
scopes = ["read:transactions", "write:ledger.*", "delete:*"]
max_ttl = "1h"
max_trust_level = "critical"
may_delegate = true
max_depth = 2

[[scope_rules]]
scope = "delete:*"
min_trust_level = "critical"
)";

CreationRequest Request(const char* name, std::vector<const char*> scopes) {
  CreationRequest r{.principal = "ci-pipeline",
                    .name = *core::AgentName::Parse(name),
                    .ttl = absl::Minutes(30),
                    .trust_level = core::TrustLevel::kHigh,
                    .now = absl::FromUnixSeconds(1'800'000'000)};
  for (const char* s : scopes) r.scopes.push_back(*core::Scope::Parse(s));
  return r;
}

TEST(PolicyTest, AllowsRequestWithinPrincipalRule) {
  auto policy = Policy::Parse(kSample);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy
                  ->AuthorizeCreation(Request("acme-corp/finance-team/payer",
                                              {"read:transactions", "write:ledger.eu"}))
                  .ok());
  EXPECT_TRUE(policy->AuthorizeCreation(Request("acme-corp/ops-eu/watcher", {})).ok());
}

TEST(PolicyTest, RefusesNameOutsidePatterns) {
  auto policy = *Policy::Parse(kSample);
  absl::Status s = policy.AuthorizeCreation(Request("acme-corp/hr-team/payer", {}));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("outside the names"));
  EXPECT_FALSE(policy.AuthorizeCreation(Request("acme-corp/ops-eu/other", {})).ok());
}

TEST(PolicyTest, RefusesUnknownPrincipal) {
  auto policy = *Policy::Parse(kSample);
  CreationRequest r = Request("acme-corp/finance-team/payer", {});
  r.principal = "someone";
  EXPECT_THAT(policy.AuthorizeCreation(r).message(), HasSubstr("no policy entry"));
}

TEST(PolicyTest, RefusesScopeBeyondPrincipal) {
  auto policy = *Policy::Parse(kSample);
  absl::Status s =
      policy.AuthorizeCreation(Request("acme-corp/finance-team/payer", {"write:transactions"}));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("write:transactions"));
}

TEST(PolicyTest, RefusesTtlAndTrustLevelAboveMaximum) {
  auto policy = *Policy::Parse(Policy::DefaultSource());
  CreationRequest r = Request("a/b/c", {"*:*"});
  r.principal = "admin";
  EXPECT_TRUE(policy.AuthorizeCreation(r).ok());
  r.ttl = absl::Hours(25);
  EXPECT_THAT(policy.AuthorizeCreation(r).message(), HasSubstr("max_ttl"));
  r.ttl = absl::Hours(1);
  r.trust_level = core::TrustLevel::kCritical;
  EXPECT_THAT(policy.AuthorizeCreation(r).message(), HasSubstr("max_trust_level"));
}

TEST(PolicyTest, ScopeRuleDemandsMinimumTrustLevelForOverlappingScopes) {
  auto policy = *Policy::Parse(kSample);
  CreationRequest r = Request("acme-corp/finance-team/janitor", {"delete:records"});
  EXPECT_THAT(policy.AuthorizeCreation(r).message(), HasSubstr("requires trust level critical"));
  r.trust_level = core::TrustLevel::kCritical;
  EXPECT_TRUE(policy.AuthorizeCreation(r).ok());
}

TEST(PolicyTest, DelegationOnlyNarrows) {
  auto policy = *Policy::Parse(kSample);
  CreationRequest r = Request("acme-corp/finance-team/child", {"read:transactions"});
  r.parent = ParentGrant{.scopes = {*core::Scope::Parse("read:*")},
                         .trust_level = core::TrustLevel::kHigh,
                         .not_after = r.now + absl::Hours(1),
                         .depth = 0};
  EXPECT_TRUE(policy.AuthorizeCreation(r).ok());

  CreationRequest wider = r;
  wider.scopes = {*core::Scope::Parse("write:ledger.x")};
  EXPECT_THAT(policy.AuthorizeCreation(wider).message(), HasSubstr("delegation"));

  CreationRequest higher = r;
  higher.trust_level = core::TrustLevel::kCritical;
  EXPECT_THAT(policy.AuthorizeCreation(higher).message(), HasSubstr("exceeds the parent"));

  CreationRequest longer = r;
  longer.parent->not_after = r.now + absl::Minutes(10) - absl::Nanoseconds(439061024);
  EXPECT_THAT(policy.AuthorizeCreation(longer).message(), HasSubstr("outlives the parent"));
  // Durations read in whole seconds, not "9m59.560938976s".
  EXPECT_THAT(policy.AuthorizeCreation(longer).message(), HasSubstr("(9m59s left)"));

  CreationRequest deeper = r;
  deeper.parent->depth = 2;
  EXPECT_THAT(policy.AuthorizeCreation(deeper).message(), HasSubstr("max_depth"));
}

TEST(PolicyTest, DelegationRefusedWhenPrincipalForbidsIt) {
  auto policy = *Policy::Parse(R"(
[principals.p]
names = ["*/*/*"]
scopes = ["*:*"]
max_ttl = "1h"
max_trust_level = "low"
)");
  CreationRequest r = Request("a/b/c", {});
  r.principal = "p";
  r.trust_level = core::TrustLevel::kLow;
  EXPECT_TRUE(policy.AuthorizeCreation(r).ok());
  r.parent = ParentGrant{{}, core::TrustLevel::kLow, r.now + absl::Hours(1), 0};
  EXPECT_THAT(policy.AuthorizeCreation(r).message(), HasSubstr("does not allow delegation"));
}

TEST(PolicyTest, RejectsMalformedDocuments) {
  const char* bad[] = {
      "[principals.p\n",  // TOML syntax
      "colour = 1\n",     // unknown top-level key
      "[principals.p]\nnames=[\"*/*/*\"]\nscopes=[]\nmax_ttl=\"1h\"\n"
      "max_trust_level=\"low\"\nextra=1\n",  // unknown key
      "[principals.p]\nnames=[\"*/*\"]\nscopes=[]\nmax_ttl=\"1h\"\nmax_trust_level=\"low\"\n",
      "[principals.p]\nnames=[\"*/*/*\"]\nscopes=[\"nocolon\"]\nmax_ttl=\"1h\"\n"
      "max_trust_level=\"low\"\n",
      "[principals.p]\nnames=[\"*/*/*\"]\nscopes=[]\nmax_ttl=\"forever\"\n"
      "max_trust_level=\"low\"\n",
      "[principals.p]\nnames=[\"*/*/*\"]\nscopes=[]\nmax_ttl=\"1h\"\nmax_trust_level=\"top\"\n",
      "[principals.p]\nnames=[\"*/*/*\"]\nscopes=[]\nmax_ttl=\"1h\"\n",  // missing level
      "[principals.P]\nnames=[\"*/*/*\"]\nscopes=[]\nmax_ttl=\"1h\"\nmax_trust_level=\"low\"\n",
      "[[scope_rules]]\nscope=\"delete:*\"\n",
      "[principals.p]\nnames=[\"a*b/*/*\"]\nscopes=[]\nmax_ttl=\"1h\"\nmax_trust_level=\"low\"\n",
  };
  for (const char* doc : bad) {
    auto p = Policy::Parse(doc);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << doc;
  }
}

TEST(PolicyTest, CanonicalJsonIgnoresFormattingAndOrder) {
  auto a = *Policy::Parse(kSample);
  std::string reordered = R"(# comment
[[scope_rules]]
min_trust_level = "critical"
scope = "delete:*"
[principals.ci-pipeline]
max_depth = 2
may_delegate = true
max_trust_level = "critical"
max_ttl = "60m"
scopes = ["read:transactions", "write:ledger.*", "delete:*"]
names = ["acme-corp/finance-team/*", "acme-corp/ops-*/watcher"]
)";
  auto b = *Policy::Parse(reordered);
  EXPECT_EQ(a.CanonicalJson(), b.CanonicalJson());
  auto c = *Policy::Parse(Policy::DefaultSource());
  EXPECT_NE(a.CanonicalJson(), c.CanonicalJson());
}

TEST(PolicyTest, ForeignGrantsAreParsedAndAddedToTheCanonicalFormOnlyWhenPresent) {
  const std::string with = std::string(kSample) + R"(
[[foreign]]
trust_domain = "traffic.city"
names = ["city/signals/*"]
scopes = ["reduce:load"]
)";
  auto p = Policy::Parse(with);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->foreign_grants().size(), 1u);
  EXPECT_EQ(p->foreign_grants()[0].trust_domain.name(), "traffic.city");
  auto id = *core::SpiffeId::FromString(
      "spiffe://traffic.city/city/signals/controller/inst-aaaaaaaaaaaaaaaa");
  ASSERT_EQ(core::ForeignScopes(p->foreign_grants(), id).size(), 1u);
  EXPECT_EQ(p->json()["foreign"][0]["scopes"][0], "reduce:load");
  // A document without grants keeps the canonical form (and hash) it always had.
  auto without = *Policy::Parse(kSample);
  EXPECT_FALSE(without.json().contains("foreign"));
  EXPECT_TRUE(without.foreign_grants().empty());
}

TEST(PolicyTest, MalformedForeignGrantsAreRefusedNamingTheMember) {
  const std::pair<const char*, const char*> bad[] = {
      {"foreign = 1\n", "foreign: must be an array of tables"},
      {"[[foreign]]\nscopes = [\"a:b\"]\n", "trust_domain"},
      {"[[foreign]]\ntrust_domain = \"traffic.city\"\n", "at least one scope"},
      {"[[foreign]]\ntrust_domain = \"traffic.city\"\nscopes = [1]\n", "array of strings"},
      {"[[foreign]]\ntrust_domain = \"traffic.city\"\nscopes = [\"a:b\"]\nlevel = 1\n",
       "unknown member"},
      {"[[foreign]]\ntrust_domain = \"traffic.city\"\nscopes = [\"a:b\"]\n"
       "spiffe_ids = [\"spiffe://energy.city/x\"]\n",
       "not in trust domain"},
  };
  for (const auto& [doc, why] : bad) {
    auto p = Policy::Parse(doc);
    ASSERT_FALSE(p.ok()) << doc;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << doc;
    EXPECT_THAT(p.status().message(), HasSubstr(why)) << doc;
  }
}

}  // namespace
}  // namespace tw::policy

namespace tw::policy {
namespace {

RenewalRequest Renewal(std::vector<const char*> scopes, core::TrustLevel level) {
  RenewalRequest r{.principal = "ci-pipeline",
                   .name = *core::AgentName::Parse("acme-corp/finance-team/payer"),
                   .trust_level = level,
                   .ttl = absl::Hours(2),
                   .now = absl::FromUnixSeconds(1'800'000'000)};
  for (const char* s : scopes) r.scopes.push_back(*core::Scope::Parse(s));
  return r;
}

std::vector<std::string> Names(const std::vector<core::Scope>& scopes) {
  std::vector<std::string> out;
  for (const core::Scope& s : scopes) out.push_back(s.str());
  return out;
}

TEST(PolicyTest, RenewalKeepsWhatTheCurrentPolicyStillGrants) {
  auto policy = *Policy::Parse(R"(
[principals.ci-pipeline]
names = ["acme-corp/*/*"]
scopes = ["read:transactions", "delete:*"]
max_ttl = "1h"
max_trust_level = "high"
[[scope_rules]]
scope = "delete:*"
min_trust_level = "critical"
)");
  auto grant = policy.AuthorizeRenewal(Renewal(
      {"read:transactions", "write:ledger", "delete:records"}, core::TrustLevel::kCritical));
  ASSERT_TRUE(grant.ok()) << grant.status();
  // write:ledger left the rule; delete:records needs critical, which is now capped at high.
  EXPECT_THAT(Names(grant->scopes), ::testing::ElementsAre("read:transactions"));
  EXPECT_EQ(grant->trust_level, core::TrustLevel::kHigh);
  EXPECT_EQ(grant->ttl, absl::Hours(1));
}

TEST(PolicyTest, RenewalRefusedOnceThePrincipalOrNameLeavesThePolicy) {
  auto policy = *Policy::Parse(kSample);
  RenewalRequest gone = Renewal({"read:transactions"}, core::TrustLevel::kHigh);
  gone.principal = "removed";
  EXPECT_EQ(policy.AuthorizeRenewal(gone).status().code(), absl::StatusCode::kPermissionDenied);
  RenewalRequest moved = Renewal({"read:transactions"}, core::TrustLevel::kHigh);
  moved.name = *core::AgentName::Parse("other-org/finance-team/payer");
  auto refused = policy.AuthorizeRenewal(moved);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.status().message(), HasSubstr("no longer among the names"));
}

TEST(PolicyTest, RenewalOfAChildStaysWithinItsParent) {
  auto policy = *Policy::Parse(kSample);
  RenewalRequest r = Renewal({"read:transactions", "write:ledger.eu"}, core::TrustLevel::kHigh);
  r.parent = ParentGrant{
      {*core::Scope::Parse("read:*")}, core::TrustLevel::kMedium, r.now + absl::Minutes(10), 0};
  auto grant = policy.AuthorizeRenewal(r);
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_THAT(Names(grant->scopes), ::testing::ElementsAre("read:transactions"));
  EXPECT_EQ(grant->trust_level, core::TrustLevel::kMedium);
  EXPECT_EQ(grant->ttl, absl::Minutes(10));
  r.parent->not_after = r.now;
  EXPECT_EQ(policy.AuthorizeRenewal(r).status().code(), absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace tw::policy
