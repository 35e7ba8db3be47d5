#include "core/foreign_grant.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

SpiffeId Id(absl::string_view s) { return *SpiffeId::FromString(s); }

std::vector<std::string> Names(const std::vector<Scope>& scopes) {
  std::vector<std::string> out;
  for (const Scope& s : scopes) out.push_back(s.str());
  return out;
}

std::vector<ForeignGrant> Grants(const nlohmann::json& json) {
  absl::StatusOr<std::vector<ForeignGrant>> grants = ParseForeignGrants(json);
  EXPECT_TRUE(grants.ok()) << grants.status();
  return grants.ok() ? *grants : std::vector<ForeignGrant>{};
}

constexpr absl::string_view kSignals =
    "spiffe://traffic.city/city/signals/controller/inst-aaaaaaaaaaaaaaaa";

TEST(ForeignGrantTest, AWholeDomainGrantCoversEveryIdOfThatDomainOnly) {
  auto grants = Grants(nlohmann::json::parse(
      R"([{"trust_domain": "traffic.city", "scopes": ["read:grid-status"]}])"));
  EXPECT_THAT(Names(ForeignScopes(grants, Id(kSignals))), ElementsAre("read:grid-status"));
  EXPECT_THAT(Names(ForeignScopes(grants, Id("spiffe://traffic.city/gateway"))),
              ElementsAre("read:grid-status"));
  EXPECT_THAT(ForeignScopes(grants, Id("spiffe://traffic.city.evil/city/signals/controller/"
                                       "inst-aaaaaaaaaaaaaaaa")),
              IsEmpty());
  EXPECT_THAT(ForeignScopes(grants, Id("spiffe://energy.city/grid/load/balancer/"
                                       "inst-aaaaaaaaaaaaaaaa")),
              IsEmpty());
}

TEST(ForeignGrantTest, NamesMatchTrustWardenAgentsAndSpiffeIdsMatchExactly) {
  auto grants = Grants(nlohmann::json::parse(R"([
    {"trust_domain": "traffic.city", "names": ["city/signals/*"], "scopes": ["reduce:load"]},
    {"trust_domain": "traffic.city", "spiffe_ids": ["spiffe://traffic.city/gateway"],
     "scopes": ["read:grid-status", "reduce:load"]}])"));
  EXPECT_THAT(Names(ForeignScopes(grants, Id(kSignals))), ElementsAre("reduce:load"));
  EXPECT_THAT(Names(ForeignScopes(grants, Id("spiffe://traffic.city/gateway"))),
              ElementsAre("read:grid-status", "reduce:load"));
  // Another team, a longer path, a name that is not an agent instance: nothing.
  EXPECT_THAT(ForeignScopes(grants, Id("spiffe://traffic.city/city/parking/meter/"
                                       "inst-aaaaaaaaaaaaaaaa")),
              IsEmpty());
  EXPECT_THAT(ForeignScopes(grants, Id("spiffe://traffic.city/gateway/x")), IsEmpty());
  EXPECT_THAT(ForeignScopes(grants, Id("spiffe://traffic.city/city/signals/controller")),
              IsEmpty());
}

TEST(ForeignGrantTest, TheJsonFormRoundTrips) {
  const auto text = nlohmann::json::parse(R"([
    {"trust_domain": "traffic.city", "names": ["city/*/*"], "scopes": ["reduce:load"]},
    {"trust_domain": "water.city", "scopes": ["read:levels"]}])");
  EXPECT_EQ(ForeignGrantsJson(Grants(text)), text);
}

TEST(ForeignGrantTest, MalformedGrantsAreRefusedNamingTheMember) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({})", "must be an array"},
      {R"([1])", "must be an object"},
      {R"([{"scopes": ["a:b"]}])", "trust_domain"},
      {R"([{"trust_domain": "Traffic.City", "scopes": ["a:b"]}])", "trust_domain"},
      {R"([{"trust_domain": "traffic.city"}])", "at least one scope"},
      {R"([{"trust_domain": "traffic.city", "scopes": []}])", "at least one scope"},
      {R"([{"trust_domain": "traffic.city", "scopes": ["nocolon"]}])", "scopes"},
      {R"([{"trust_domain": "traffic.city", "scopes": "a:b"}])", "array of strings"},
      {R"([{"trust_domain": "traffic.city", "names": ["a/b"], "scopes": ["a:b"]}])", "names"},
      {R"([{"trust_domain": "traffic.city", "spiffe_ids": ["spiffe://energy.city/x"],
            "scopes": ["a:b"]}])",
       "not in trust domain traffic.city"},
      {R"([{"trust_domain": "traffic.city", "scope": ["a:b"]}])", "unknown member"},
      {R"([{"trust_domain": "traffic.city", "names": [], "scopes": ["a:b"]}])",
       "omit it to grant the whole domain"},
  };
  for (const auto& [text, why] : cases) {
    absl::StatusOr<std::vector<ForeignGrant>> grants =
        ParseForeignGrants(nlohmann::json::parse(text));
    ASSERT_FALSE(grants.ok()) << text;
    EXPECT_EQ(grants.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(grants.status().message(), HasSubstr(why)) << text;
  }
}

}  // namespace
}  // namespace tw::core
