#include "store/testing/store_conformance.h"

#include <stdlib.h>

#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"

namespace tw::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

IdentityRecord Identity(const std::string& id, const std::string& parent = "",
                        const std::string& name = "acme/fin/payer",
                        const std::string& principal = "ci") {
  return IdentityRecord{.instance_id = id,
                        .spiffe_id = absl::StrCat("spiffe://td/", name, "/", id),
                        .name = name,
                        .parent = parent,
                        .principal = principal,
                        .policy_version = 3,
                        .depth = parent.empty() ? 0 : 1,
                        .serial_hex = absl::StrCat("0a", id.size()),
                        .scopes = {"read:x", "write:y.*"},
                        .trust_level = "high",
                        .not_before = kNow - absl::Seconds(30),
                        .not_after = kNow + absl::Hours(1),
                        .created_at = kNow};
}

}  // namespace

void StoreConformanceTest::SetUp() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "tw-store-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  dir_ = tmpl;
  auto store = GetParam().open(dir_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

void StoreConformanceTest::TearDown() {
  store_.reset();
  std::filesystem::remove_all(dir_);
}

void StoreConformanceTest::Reopen() {
  store_.reset();
  auto store = GetParam().open(dir_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

TEST_P(StoreConformanceTest, InsertedIdentityReadsBackAfterReopen) {
  IdentityRecord r = Identity("inst-a");
  ASSERT_TRUE(store_->InsertIdentity(r).ok());
  Reopen();
  auto got = store_->GetIdentity("inst-a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, r);
}

TEST_P(StoreConformanceTest, DuplicateInstanceIsAlreadyExists) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  EXPECT_EQ(store_->InsertIdentity(Identity("inst-a")).code(), absl::StatusCode::kAlreadyExists);
}

TEST_P(StoreConformanceTest, UnknownInstanceIsNotFound) {
  EXPECT_EQ(store_->GetIdentity("inst-none").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->RenewIdentity("inst-none", "01", kNow, kNow).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Revoke(RevocationKind::kInstance, "inst-none", "", kNow).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, ChildNeedsKnownUnrevokedParent) {
  EXPECT_EQ(store_->InsertIdentity(Identity("inst-c", "inst-p")).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-p")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-c", "inst-p")).ok());
  ASSERT_TRUE(store_->Revoke(RevocationKind::kInstance, "inst-p", "", kNow).ok());
  absl::Status s = store_->InsertIdentity(Identity("inst-d", "inst-p"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("revoked"));
  EXPECT_EQ(store_->GetIdentity("inst-d").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, RenewReplacesSerialAndValidityUnlessRevoked) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  ASSERT_TRUE(store_->RenewIdentity("inst-a", "beef", kNow, kNow + absl::Hours(2)).ok());
  auto got = *store_->GetIdentity("inst-a");
  EXPECT_EQ(got.serial_hex, "beef");
  EXPECT_EQ(got.not_after, kNow + absl::Hours(2));
  ASSERT_TRUE(store_->Revoke(RevocationKind::kInstance, "inst-a", "", kNow).ok());
  EXPECT_EQ(store_->RenewIdentity("inst-a", "cafe", kNow, kNow + absl::Hours(3)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetIdentity("inst-a")->serial_hex, "beef");
}

TEST_P(StoreConformanceTest, RevokingAnInstanceCascadesToDescendants) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-p")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-c", "inst-p")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-g", "inst-c")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-other")).ok());
  auto e = store_->Revoke(RevocationKind::kSubtree, "inst-c", "compromised", kNow);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->sequence, 1);
  EXPECT_THAT(e->instances, UnorderedElementsAre("inst-c", "inst-g"));
  EXPECT_EQ(e->expires_at, kNow + absl::Hours(1));
  EXPECT_EQ(store_->GetIdentity("inst-g")->revoked_sequence, 1);
  EXPECT_FALSE(store_->GetIdentity("inst-p")->revoked_sequence.has_value());
  auto again = *store_->Revoke(RevocationKind::kInstance, "inst-p", "", kNow);
  EXPECT_EQ(again.sequence, 2);
  EXPECT_THAT(again.instances, ElementsAre("inst-p"));  // children already revoked
}

TEST_P(StoreConformanceTest, RevokesByAgentNameAndPrincipal) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-1", "", "a/b/one", "p1")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-2", "", "a/b/one", "p2")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-3", "", "a/b/two", "p2")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-4", "inst-3", "a/b/kid", "p2")).ok());
  auto by_agent = *store_->Revoke(RevocationKind::kAgent, "a/b/one", "", kNow);
  EXPECT_THAT(by_agent.instances, UnorderedElementsAre("inst-1", "inst-2"));
  auto by_principal = *store_->Revoke(RevocationKind::kPrincipal, "p2", "", kNow);
  EXPECT_THAT(by_principal.instances, UnorderedElementsAre("inst-3", "inst-4"));
  auto nothing = *store_->Revoke(RevocationKind::kAgent, "a/b/none", "", kNow);
  EXPECT_TRUE(nothing.instances.empty());
  EXPECT_EQ(nothing.sequence, 3);
}

TEST_P(StoreConformanceTest, ExpiredInstancesAreNotRevokedAgain) {
  IdentityRecord old = Identity("inst-old");
  old.not_after = kNow - absl::Seconds(1);
  ASSERT_TRUE(store_->InsertIdentity(old).ok());
  auto e = *store_->Revoke(RevocationKind::kInstance, "inst-old", "", kNow);
  EXPECT_TRUE(e.instances.empty());
}

TEST_P(StoreConformanceTest, RevocationLogListsAfterSequenceAndSurvivesPruning) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  IdentityRecord brief = Identity("inst-b");
  brief.not_after = kNow + absl::Minutes(1);
  ASSERT_TRUE(store_->InsertIdentity(brief).ok());
  ASSERT_TRUE(store_->Revoke(RevocationKind::kInstance, "inst-b", "r1", kNow).ok());
  ASSERT_TRUE(store_->Revoke(RevocationKind::kInstance, "inst-a", "r2", kNow).ok());
  auto all = *store_->ListRevocations(0, 100);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].reason, "r1");
  EXPECT_EQ(all[1].kind, RevocationKind::kInstance);
  EXPECT_EQ(store_->ListRevocations(1, 100)->size(), 1u);
  EXPECT_EQ(*store_->PruneRevocations(kNow + absl::Minutes(2)), 1u);
  Reopen();
  auto left = *store_->ListRevocations(0, 100);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].sequence, 2);
  EXPECT_EQ(*store_->LastRevocationSequence(), 2);
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-c")).ok());
  EXPECT_EQ(store_->Revoke(RevocationKind::kInstance, "inst-c", "", kNow)->sequence, 3);
}

TEST_P(StoreConformanceTest, ListsIdentitiesByFilterNewestFirst) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-1", "", "a/b/one", "p1")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-2", "", "a/b/one", "p2")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-3", "", "a/b/two", "p2")).ok());
  ASSERT_TRUE(store_->Revoke(RevocationKind::kInstance, "inst-3", "", kNow).ok());
  auto ids = [](const std::vector<IdentityRecord>& rs) {
    std::vector<std::string> out;
    for (const auto& r : rs) out.push_back(r.instance_id);
    return out;
  };
  EXPECT_THAT(ids(*store_->ListIdentities({})), ElementsAre("inst-3", "inst-2", "inst-1"));
  EXPECT_THAT(ids(*store_->ListIdentities({.agent = "a/b/one"})), ElementsAre("inst-2", "inst-1"));
  EXPECT_THAT(ids(*store_->ListIdentities({.principal = "p2"})), ElementsAre("inst-3", "inst-2"));
  EXPECT_THAT(ids(*store_->ListIdentities({.principal = "p2", .live_at = kNow})),
              ElementsAre("inst-2"));
  EXPECT_THAT(ids(*store_->ListIdentities({.live_at = kNow + absl::Hours(2)})), ElementsAre());
  EXPECT_THAT(ids(*store_->ListIdentities({.limit = 1})), ElementsAre("inst-3"));
}

TEST_P(StoreConformanceTest, PolicyVersionsAreMonotonicAndImmutable) {
  EXPECT_EQ(store_->GetPolicy(0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store_->AppendPolicy("a = 1", "h1", kNow), 1);
  EXPECT_EQ(*store_->AppendPolicy("a = 2", "h2", kNow), 2);
  Reopen();
  EXPECT_EQ(*store_->AppendPolicy("a = 2", "h2", kNow), 3);
  EXPECT_EQ(store_->GetPolicy(0)->version, 3);
  EXPECT_EQ(store_->GetPolicy(1)->source, "a = 1");
  EXPECT_EQ(store_->GetPolicy(2)->sha256_hex, "h2");
  EXPECT_EQ(store_->GetPolicy(9).status().code(), absl::StatusCode::kNotFound);
  auto list = *store_->ListPolicies();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[2].version, 3);
}

TEST_P(StoreConformanceTest, TokensRoundTrip) {
  TokenRecord t{"tid1", "ci", {1, 2, 3}, false, kNow};
  ASSERT_TRUE(store_->InsertToken(t).ok());
  EXPECT_EQ(store_->InsertToken(t).code(), absl::StatusCode::kAlreadyExists);
  Reopen();
  auto tokens = *store_->ListTokens();
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].principal, "ci");
  EXPECT_EQ(tokens[0].secret_hash, (base::Bytes{1, 2, 3}));
  EXPECT_FALSE(tokens[0].admin);
}

TEST_P(StoreConformanceTest, ConcurrentWritersGetGapFreeSequences) {
  constexpr int kThreads = 8, kPerThread = 25;
  std::vector<std::thread> threads;
  std::vector<std::vector<int64_t>> seqs(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string id = absl::StrCat("inst-", t, "-", i);
        ASSERT_TRUE(store_->InsertIdentity(Identity(id)).ok());
        if (i % 2 == 0) {
          auto e = store_->Revoke(RevocationKind::kInstance, id, "", kNow);
          ASSERT_TRUE(e.ok()) << e.status();
          seqs[t].push_back(e->sequence);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<int64_t> all;
  for (const auto& s : seqs) all.insert(s.begin(), s.end());
  const size_t expected = kThreads * ((kPerThread + 1) / 2);
  ASSERT_EQ(all.size(), expected);
  EXPECT_EQ(*all.begin(), 1);
  EXPECT_EQ(*all.rbegin(), static_cast<int64_t>(expected));
  EXPECT_EQ(store_->ListIdentities({.limit = 10000})->size(), size_t{kThreads * kPerThread});
}

}  // namespace tw::store
