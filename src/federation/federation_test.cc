#include "federation/federation.h"

#include <cstdlib>

#include "base/file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/testing/test_server.h"

namespace tw::federation {
namespace {

using ::testing::HasSubstr;

const core::TrustDomain kOwn = *core::TrustDomain::FromName("energy.city");
constexpr char kServerId[] = "spiffe://trustwarden/trustwarden/server";

TEST(RelationshipTest, EveryParameterIsExplicitAndChecked) {
  auto ok = MakeRelationship("traffic.city", "https://bundle.traffic.city:8445/b?x=1",
                             "https_spiffe", "spiffe://traffic.city/trustwarden/server", kOwn);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->trust_domain.name(), "traffic.city");
  EXPECT_EQ(ok->profile, Profile::kHttpsSpiffe);
  EXPECT_TRUE(
      MakeRelationship("traffic.city", "https://bundle.traffic.city/", "https_web", "", kOwn).ok());
  const struct {
    const char *td, *url, *profile, *id, *why;
  } refused[] = {
      {"Traffic.City", "https://a/", "https_web", "", "trust domain"},
      {"energy.city", "https://a/", "https_web", "", "own trust domain"},
      {"traffic.city", "http://a/", "https_web", "", "not an https URL"},
      {"traffic.city", "https://user@a/", "https_web", "", "userinfo"},
      {"traffic.city", "https://a/#f", "https_web", "", "fragment"},
      {"traffic.city", "https://a/", "", "", "never inferred"},
      {"traffic.city", "https://a/", "https", "", "never inferred"},
      {"traffic.city", "https://a/", "https_spiffe", "", "needs the SPIFFE ID"},
      {"traffic.city", "https://a/", "https_spiffe", "traffic.city/x", "scheme"},
      {"traffic.city", "https://a/", "https_web", "spiffe://traffic.city/x", "host name"},
  };
  for (const auto& r : refused) {
    auto made = MakeRelationship(r.td, r.url, r.profile, r.id, kOwn);
    EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument) << r.why;
  }
  EXPECT_THAT(
      MakeRelationship("traffic.city", "https://a/", "https_spiffe", "", kOwn).status().message(),
      HasSubstr("needs the SPIFFE ID"));
}

class FetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = server::TestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    bundle_ = *core::Bundle::Parse(*base::ReadFile(server_->data_dir() + "/bundle.json"));
    trusted_.Put(bundle_);
  }
  Relationship Spiffe(absl::string_view id = kServerId) const {
    return *MakeRelationship("trustwarden", server_->url() + "/v1/bundle", "https_spiffe", id,
                             kOwn);
  }

  std::unique_ptr<server::TestServer> server_;
  core::Bundle bundle_{*core::TrustDomain::FromName("trustwarden")};
  core::BundleSet trusted_;
};

TEST_F(FetchTest, HttpsSpiffeAuthenticatesTheEndpointsExactSpiffeId) {
  auto fetched = FetchBundle(Spiffe(), trusted_);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(fetched->trust_domain().name(), "trustwarden");
  EXPECT_EQ(fetched->ToJson(), bundle_.ToJson());
  // Another SPIFFE ID of the same trust domain is not the endpoint.
  auto impostor = FetchBundle(Spiffe("spiffe://trustwarden/trustwarden/other"), trusted_);
  EXPECT_EQ(impostor.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(impostor.status().message(), HasSubstr("not spiffe://trustwarden/trustwarden/other"));
  // Without a bundle of the endpoint's trust domain there is nothing to authenticate with.
  core::BundleSet empty;
  EXPECT_EQ(FetchBundle(Spiffe(), empty).status().code(), absl::StatusCode::kFailedPrecondition);
  // A bundle of another CA for that trust domain does not authenticate it.
  auto other = server::TestServer::Start();
  ASSERT_TRUE(other.ok());
  core::BundleSet wrong;
  wrong.Put(*core::Bundle::Parse(*base::ReadFile((*other)->data_dir() + "/bundle.json")));
  EXPECT_EQ(FetchBundle(Spiffe(), wrong).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(FetchTest, HttpsWebAuthenticatesTheHostWithTheSystemsRoots) {
  auto web = *MakeRelationship("trustwarden", server_->url() + "/v1/bundle", "https_web", "", kOwn);
  // The server's CA is not a root the system trusts...
  ::unsetenv("SSL_CERT_FILE");
  EXPECT_EQ(FetchBundle(web, trusted_).status().code(), absl::StatusCode::kUnavailable);
  // ...until it is (SSL_CERT_FILE), and the certificate carries the host (127.0.0.1).
  ::setenv("SSL_CERT_FILE", server_->bundle_path().c_str(), 1);
  auto fetched = FetchBundle(web, core::BundleSet());
  ::unsetenv("SSL_CERT_FILE");
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(fetched->ToJson(), bundle_.ToJson());
}

TEST_F(FetchTest, WhatIsNotABundleIsRefused) {
  auto health = *MakeRelationship("trustwarden", server_->url() + "/healthz", "https_spiffe",
                                  kServerId, kOwn);
  EXPECT_EQ(FetchBundle(health, trusted_).status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = *MakeRelationship("trustwarden", server_->url() + "/nothing", "https_spiffe",
                                   kServerId, kOwn);
  EXPECT_THAT(FetchBundle(missing, trusted_).status().message(), HasSubstr("answered 404"));
}

TEST_F(FetchTest, ABundleNamingAnotherTrustDomainIsNotRebound) {
  // The server's bundle (trust domain "trustwarden") offered as traffic.city's.
  const core::TrustDomain traffic = *core::TrustDomain::FromName("traffic.city");
  auto as_traffic = core::Bundle::Parse(bundle_.ToJson(), traffic);
  ASSERT_TRUE(as_traffic.ok());
  absl::Status bound = CheckBoundTo(*as_traffic, traffic);
  EXPECT_EQ(bound.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bound.message(), HasSubstr("holds an authority of trustwarden"));
  EXPECT_TRUE(CheckBoundTo(bundle_, bundle_.trust_domain()).ok());
  auto fetched_as_traffic = *MakeRelationship("traffic.city", server_->url() + "/v1/bundle",
                                              "https_spiffe", kServerId, kOwn);
  EXPECT_EQ(FetchBundle(fetched_as_traffic, trusted_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OrderTest, AHigherSequenceWinsAndWithoutOneTheLatest) {
  const core::TrustDomain td = *core::TrustDomain::FromName("traffic.city");
  core::Bundle held(td), fetched(td), unsequenced(td);
  held.set_sequence(5);
  fetched.set_sequence(5);
  EXPECT_FALSE(Supersedes(fetched, held));
  fetched.set_sequence(4);
  EXPECT_FALSE(Supersedes(fetched, held));
  fetched.set_sequence(6);
  EXPECT_TRUE(Supersedes(fetched, held));
  EXPECT_TRUE(Supersedes(unsequenced, held));
  EXPECT_TRUE(Supersedes(held, unsequenced));
}

TEST(OrderTest, PollsByTheRefreshHint) {
  core::Bundle b(*core::TrustDomain::FromName("traffic.city"));
  EXPECT_EQ(RefreshInterval(nullptr), absl::Minutes(5));
  EXPECT_EQ(RefreshInterval(&b), absl::Minutes(5));
  b.set_refresh_hint_seconds(60);
  EXPECT_EQ(RefreshInterval(&b), absl::Minutes(1));
  b.set_refresh_hint_seconds(0);
  EXPECT_EQ(RefreshInterval(&b), absl::Seconds(5)) << "a foreign hint cannot make us spin";
  b.set_refresh_hint_seconds(int64_t{1} << 60);
  EXPECT_EQ(RefreshInterval(&b), absl::Hours(24)) << "nor stop us polling";
}

}  // namespace
}  // namespace tw::federation
