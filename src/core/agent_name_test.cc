#include "core/agent_name.h"

#include <set>

#include "gtest/gtest.h"

namespace tw::core {
namespace {

TEST(AgentNameTest, ParsesThreeSegments) {
  auto n = AgentName::Parse("acme-corp/finance-team/payment-processor");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->org, "acme-corp");
  EXPECT_EQ(n->agent, "payment-processor");
  EXPECT_EQ(n->str(), "acme-corp/finance-team/payment-processor");
}

TEST(AgentNameTest, RejectsOtherShapes) {
  for (const char* bad :
       {"", "a/b", "a/b/c/d", "a//c", "A/b/c", "a/b/c d", "a/../c", "a/b/c/", "a/b/%41"}) {
    EXPECT_FALSE(AgentName::Parse(bad).ok()) << bad;
  }
  EXPECT_FALSE(AgentName::Parse(std::string(64, 'a') + "/b/c").ok());
}

TEST(AgentNameTest, QualifiesOnlyBareNames) {
  EXPECT_EQ(QualifyAgentName("payment-processor", "acme", "fin"), "acme/fin/payment-processor");
  EXPECT_EQ(QualifyAgentName("a/b/c", "acme", "fin"), "a/b/c");
  EXPECT_EQ(QualifyAgentName("b/c", "acme", "fin"), "b/c");  // not bare: refused by Parse
  EXPECT_EQ(QualifyAgentName("", "acme", "fin"), "");
  EXPECT_TRUE(AgentName::Parse(QualifyAgentName("agent", kDefaultOrg, kDefaultTeam)).ok());
}

TEST(InstanceIdTest, IsRandomLowercaseWithPrefix) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewInstanceId();
    EXPECT_TRUE(CheckInstanceId(id).ok()) << id;
    EXPECT_EQ(id.size(), 21u);
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_FALSE(CheckInstanceId("inst-ABCDEFGHIJKLMNOP").ok());
  EXPECT_FALSE(CheckInstanceId("inst-abc").ok());
  EXPECT_FALSE(CheckInstanceId("abcd-abcdefghijklmnop").ok());
}

TEST(AgentSpiffeIdTest, RoundTrips) {
  auto td = TrustDomain::FromName("trustwarden");
  auto name = AgentName::Parse("acme-corp/finance-team/payment-processor");
  std::string inst = NewInstanceId();
  auto id = AgentSpiffeId(*td, *name, inst);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->str(), "spiffe://trustwarden/acme-corp/finance-team/payment-processor/" + inst);
  auto parsed = ParseAgentSpiffeId(*id);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->name, *name);
  EXPECT_EQ(parsed->instance_id, inst);
  EXPECT_FALSE(ParseAgentSpiffeId(*SpiffeId::FromString("spiffe://td/a/b/c")).ok());
  EXPECT_FALSE(ParseAgentSpiffeId(*SpiffeId::FromString("spiffe://td/a/b/c/inst-x")).ok());
}

}  // namespace
}  // namespace tw::core
