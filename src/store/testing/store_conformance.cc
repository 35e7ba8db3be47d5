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

// A batch of `n` events for the ledger (signatures are not the store's business).
LedgerAppend LedgerBatch(int n, const std::string& instance = "spiffe://td/a/b/c/inst-1",
                         const std::string& decision = "allow") {
  LedgerAppend batch;
  batch.signer = {{}, {ledger::SignerKind::kSvid, {1, 2, 3}}};
  batch.signer.id = batch.signer.signer.id();
  for (int i = 0; i < n; ++i) {
    ledger::Event e;
    e.id = ledger::NewEventId();
    e.time_ms = 1000 + i;
    e.type = "action";
    e.instance = instance;
    e.serial = "0a";
    e.principal = "ci";
    e.policy_version = 1;
    e.resource = absl::StrCat("db://r", i % 3);
    e.action = "read:x";
    e.decision = decision;
    if (decision == "deny") e.reason = "no";
    ledger::Entry entry;
    entry.signer_id = batch.signer.id;
    entry.signature = {9};
    entry.event = ledger::EncodeEvent(e);
    batch.entries.push_back(entry);
    batch.events.push_back(e);
  }
  return batch;
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
  if (!GetParam().durable) return;
  store_.reset();
  auto store = GetParam().open(dir_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

TEST_P(StoreConformanceTest, InsertedIdentityReadsBack) {
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
  EXPECT_EQ(store_->RenewIdentity(Identity("inst-none"), "01").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Revoke(revocation::Kind::kInstance, "inst-none", "", kNow).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, ChildNeedsKnownUnrevokedParent) {
  EXPECT_EQ(store_->InsertIdentity(Identity("inst-c", "inst-p")).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-p")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-c", "inst-p")).ok());
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-p", "", kNow).ok());
  absl::Status s = store_->InsertIdentity(Identity("inst-d", "inst-p"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("revoked"));
  EXPECT_EQ(store_->GetIdentity("inst-d").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, RenewReplacesCertificateAndGrantUnlessRevoked) {
  IdentityRecord original = Identity("inst-a");
  ASSERT_TRUE(store_->InsertIdentity(original).ok());
  IdentityRecord renewed = original;
  renewed.serial_hex = "beef";
  renewed.not_after = kNow + absl::Hours(2);
  renewed.scopes = {"read:x"};
  renewed.trust_level = "medium";
  renewed.policy_version = 4;
  ASSERT_TRUE(store_->RenewIdentity(renewed, original.serial_hex).ok());
  EXPECT_EQ(*store_->GetIdentity("inst-a"), renewed);
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-a", "", kNow).ok());
  IdentityRecord again = renewed;
  again.serial_hex = "cafe";
  EXPECT_EQ(store_->RenewIdentity(again, "beef").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetIdentity("inst-a")->serial_hex, "beef");
}

// Two renewals by the same certificate: the second finds it replaced.
TEST_P(StoreConformanceTest, RenewByAReplacedCertificateIsRefused) {
  IdentityRecord original = Identity("inst-a");
  ASSERT_TRUE(store_->InsertIdentity(original).ok());
  IdentityRecord first = original, second = original;
  first.serial_hex = "01";
  second.serial_hex = "02";
  ASSERT_TRUE(store_->RenewIdentity(first, original.serial_hex).ok());
  absl::Status s = store_->RenewIdentity(second, original.serial_hex);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("no longer the current"));
  EXPECT_EQ(store_->GetIdentity("inst-a")->serial_hex, "01");
}

TEST_P(StoreConformanceTest, RevocationRecordsItsInstantOnTheIdentity) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  const absl::Time at = kNow + absl::Milliseconds(1234);
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-a", "", at).ok());
  Reopen();
  auto got = *store_->GetIdentity("inst-a");
  ASSERT_TRUE(got.revoked_at.has_value());
  EXPECT_EQ(*got.revoked_at, at);
}

TEST_P(StoreConformanceTest, RevokingAnInstanceCascadesToDescendants) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-p")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-c", "inst-p")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-g", "inst-c")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-other")).ok());
  auto e = store_->Revoke(revocation::Kind::kSubtree, "inst-c", "compromised", kNow);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->sequence, 1);
  EXPECT_THAT(e->instances, UnorderedElementsAre("inst-c", "inst-g"));
  EXPECT_EQ(e->expires_at, kNow + absl::Hours(1));
  EXPECT_EQ(store_->GetIdentity("inst-g")->revoked_sequence, 1);
  EXPECT_FALSE(store_->GetIdentity("inst-p")->revoked_sequence.has_value());
  auto again = *store_->Revoke(revocation::Kind::kInstance, "inst-p", "", kNow);
  EXPECT_EQ(again.sequence, 2);
  EXPECT_THAT(again.instances, ElementsAre("inst-p"));  // children already revoked
}

TEST_P(StoreConformanceTest, RevokesByAgentNameAndPrincipal) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-1", "", "a/b/one", "p1")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-2", "", "a/b/one", "p2")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-3", "", "a/b/two", "p2")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-4", "inst-3", "a/b/kid", "p2")).ok());
  auto by_agent = *store_->Revoke(revocation::Kind::kAgent, "a/b/one", "", kNow);
  EXPECT_THAT(by_agent.instances, UnorderedElementsAre("inst-1", "inst-2"));
  auto by_principal = *store_->Revoke(revocation::Kind::kPrincipal, "p2", "", kNow);
  EXPECT_THAT(by_principal.instances, UnorderedElementsAre("inst-3", "inst-4"));
  auto nothing = *store_->Revoke(revocation::Kind::kAgent, "a/b/none", "", kNow);
  EXPECT_TRUE(nothing.instances.empty());
  EXPECT_EQ(nothing.sequence, 3);
}

TEST_P(StoreConformanceTest, ExpiredInstancesAreNotRevokedAgain) {
  IdentityRecord old = Identity("inst-old");
  old.not_after = kNow - absl::Seconds(1);
  ASSERT_TRUE(store_->InsertIdentity(old).ok());
  auto e = *store_->Revoke(revocation::Kind::kInstance, "inst-old", "", kNow);
  EXPECT_TRUE(e.instances.empty());
}

TEST_P(StoreConformanceTest, RevocationLogListsAfterSequenceAndSurvivesPruning) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  IdentityRecord brief = Identity("inst-b");
  brief.not_after = kNow + absl::Minutes(1);
  ASSERT_TRUE(store_->InsertIdentity(brief).ok());
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-b", "r1", kNow).ok());
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-a", "r2", kNow).ok());
  auto all = *store_->ListRevocations(0, 100);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].reason, "r1");
  EXPECT_EQ(all[1].kind, revocation::Kind::kInstance);
  EXPECT_EQ(store_->ListRevocations(1, 100)->size(), 1u);
  EXPECT_EQ(*store_->PruneRevocations(kNow + absl::Minutes(2)), 1u);
  Reopen();
  auto left = *store_->ListRevocations(0, 100);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].sequence, 2);
  EXPECT_EQ(*store_->LastRevocationSequence(), 2);
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-c")).ok());
  EXPECT_EQ(store_->Revoke(revocation::Kind::kInstance, "inst-c", "", kNow)->sequence, 3);
}

TEST_P(StoreConformanceTest, ListsIdentitiesByFilterNewestFirst) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-1", "", "a/b/one", "p1")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-2", "", "a/b/one", "p2")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-3", "", "a/b/two", "p2")).ok());
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-3", "", kNow).ok());
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
  TokenRecord expiring{
      "tid2", "audit", {4}, false, kNow + absl::Seconds(1), true, kNow + absl::Hours(1)};
  ASSERT_TRUE(store_->InsertToken(expiring).ok());
  Reopen();
  auto tokens = *store_->ListTokens();
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[0].principal, "ci");
  EXPECT_EQ(tokens[0].secret_hash, (base::Bytes{1, 2, 3}));
  EXPECT_FALSE(tokens[0].admin);
  EXPECT_FALSE(tokens[0].expires_at.has_value());
  EXPECT_FALSE(tokens[0].revoked_at.has_value());
  EXPECT_TRUE(tokens[1].auditor);
  EXPECT_EQ(tokens[1].expires_at, kNow + absl::Hours(1));
}

TEST_P(StoreConformanceTest, TokensAreRevokedOnce) {
  ASSERT_TRUE(store_->InsertToken(TokenRecord{"tid1", "ci", {1}, false, kNow}).ok());
  EXPECT_EQ(store_->RevokeToken("nope", kNow).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->RevokeToken("tid1", kNow + absl::Seconds(5)).ok());
  EXPECT_EQ(store_->RevokeToken("tid1", kNow).code(), absl::StatusCode::kFailedPrecondition);
  Reopen();
  EXPECT_EQ(store_->ListTokens()->at(0).revoked_at, kNow + absl::Seconds(5));
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
          auto e = store_->Revoke(revocation::Kind::kInstance, id, "", kNow);
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

TEST_P(StoreConformanceTest, LedgerAppendsLeavesAndSubtreesOfRfc9162) {
  ledger::MemoryTree expected;
  for (int round = 0; round < 5; ++round) {
    LedgerAppend batch = LedgerBatch(3);
    auto appended = store_->AppendLedger(batch);
    ASSERT_TRUE(appended.ok()) << appended.status();
    ASSERT_EQ(appended->indexes.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(appended->indexes[i], expected.size());
      ledger::Entry entry = batch.entries[i];
      entry.index = expected.size();
      expected.Append(ledger::LeafHash(ledger::EncodeEntry(entry)));
    }
    EXPECT_EQ(appended->tree_size, expected.size());
  }
  Reopen();
  ASSERT_TRUE(store_
                  ->ReadLedgerTree([&](uint64_t size, const ledger::NodeSource& nodes) {
                    EXPECT_EQ(size, 15u);
                    for (uint64_t n = 1; n <= size; ++n) {
                      EXPECT_EQ(*ledger::RootHash(nodes, n), *ledger::RootHash(expected, n));
                    }
                    EXPECT_EQ(*ledger::InclusionProof(nodes, 6, 15),
                              *ledger::InclusionProof(expected, 6, 15));
                    return absl::OkStatus();
                  })
                  .ok());
}

TEST_P(StoreConformanceTest, LedgerReplaysAreIdempotentAndConflictsRefused) {
  LedgerAppend batch = LedgerBatch(2);
  ASSERT_TRUE(store_->AppendLedger(LedgerBatch(1)).ok());
  auto first = store_->AppendLedger(batch);
  ASSERT_TRUE(first.ok());
  auto again = store_->AppendLedger(batch);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->indexes, first->indexes);
  EXPECT_EQ(again->tree_size, 3u);

  LedgerAppend conflict = LedgerBatch(2);
  conflict.events[1].id = batch.events[0].id;
  conflict.events[1].resource = "db://other";
  conflict.entries[1].event = ledger::EncodeEvent(conflict.events[1]);
  EXPECT_EQ(store_->AppendLedger(conflict).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->LedgerEntries(0, 100)->size(), 3u);  // nothing of the batch was written
}

TEST_P(StoreConformanceTest, LedgerAuditCommitsWithItsMutationOrNotAtAll) {
  LedgerAppend audit = LedgerBatch(1);
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a"), &audit).ok());
  EXPECT_TRUE(store_->LedgerEntryById(audit.events[0].id).ok());
  LedgerAppend lost = LedgerBatch(1);
  EXPECT_FALSE(store_->InsertIdentity(Identity("inst-a"), &lost).ok());
  EXPECT_EQ(store_->LedgerEntryById(lost.events[0].id).status().code(),
            absl::StatusCode::kNotFound);
  LedgerAppend conflicting = LedgerBatch(1);
  conflicting.events[0].id = audit.events[0].id;
  conflicting.events[0].resource = "db://other";
  conflicting.entries[0].event = ledger::EncodeEvent(conflicting.events[0]);
  EXPECT_FALSE(store_->InsertIdentity(Identity("inst-b"), &conflicting).ok());
  EXPECT_EQ(store_->GetIdentity("inst-b").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, LedgerQueriesFilterByEveryColumn) {
  ASSERT_TRUE(store_->AppendLedger(LedgerBatch(6, "spiffe://td/a/b/c/inst-1")).ok());
  ASSERT_TRUE(store_->AppendLedger(LedgerBatch(2, "spiffe://td/a/b/d/inst-2", "deny")).ok());
  EXPECT_EQ(store_->QueryLedger({.instance = "spiffe://td/a/b/c/inst-1"})->size(), 6u);
  EXPECT_EQ(store_->QueryLedger({.agent = "a/b/d"})->size(), 2u);
  EXPECT_EQ(store_->QueryLedger({.decision = "deny"})->size(), 2u);
  EXPECT_EQ(store_->QueryLedger({.resource = "db://r0"})->size(), 3u);
  EXPECT_EQ(store_->QueryLedger({.principal = "nobody"})->size(), 0u);
  EXPECT_EQ(store_->QueryLedger({.action = "read:x", .since_ms = 1002, .until_ms = 1005})->size(),
            3u);
  auto limited = store_->QueryLedger({.agent = "a/b/c", .limit = 2});
  ASSERT_EQ(limited->size(), 2u);
  EXPECT_EQ((*limited)[1].index, 1u);
  auto row = store_->LedgerEntryById((*limited)[1].event_id);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(*row, (*limited)[1]);
  EXPECT_EQ(ledger::DecodeEntry(row->entry)->index, 1u);

  LedgerAppend observed = LedgerBatch(1, "spiffe://td/a/b/gw/inst-9");
  observed.events[0].type = "observation";
  observed.events[0].caller = "spiffe://td/a/b/c/inst-1";
  observed.entries[0].event = ledger::EncodeEvent(observed.events[0]);
  ASSERT_TRUE(store_->AppendLedger(observed).ok());
  auto by_caller = *store_->QueryLedger({.caller = "spiffe://td/a/b/c/inst-1"});
  ASSERT_EQ(by_caller.size(), 1u);
  EXPECT_EQ(by_caller[0].instance, "spiffe://td/a/b/gw/inst-9");
  EXPECT_EQ(by_caller[0].caller, "spiffe://td/a/b/c/inst-1");
  EXPECT_EQ(store_->QueryLedger({.instance = "spiffe://td/a/b/c/inst-1"})->size(), 6u);
}

TEST_P(StoreConformanceTest, LatestTreeHeadIsTheLargestAndNewest) {
  EXPECT_FALSE(store_->LatestTreeHead()->has_value());
  ASSERT_TRUE(store_->InsertTreeHead({5, 10, {}, {1}}).ok());
  ASSERT_TRUE(store_->InsertTreeHead({9, 20, {}, {2}}).ok());
  ASSERT_TRUE(store_->InsertTreeHead({9, 30, {}, {3}}).ok());
  ASSERT_TRUE(store_->InsertTreeHead({7, 40, {}, {4}}).ok());
  auto latest = *store_->LatestTreeHead();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->tree_size, 9u);
  EXPECT_EQ(latest->timestamp_ms, 30);
}

TEST_P(StoreConformanceTest, LedgerTreeHeadsAndExportSegments) {
  ASSERT_TRUE(store_->AppendLedger(LedgerBatch(5)).ok());
  ledger::TreeHead head{5, 77, {}, {1}};
  ASSERT_TRUE(store_->InsertTreeHead(head).ok());
  ASSERT_TRUE(store_->InsertTreeHead(ledger::TreeHead{5, 78, {}, {2}}).ok());
  EXPECT_EQ(store_->ListTreeHeads()->size(), 2u);
  EXPECT_EQ(store_->ListTreeHeads(5)->front(), head);
  EXPECT_TRUE(store_->ListTreeHeads(4)->empty());

  std::vector<ledger::ExportRecord> records;
  auto sink = [&records](const ledger::ExportRecord& r) {
    records.push_back(r);
    return absl::OkStatus();
  };
  ASSERT_TRUE(store_->ExportLedger({.trust_domain = "td"}, 2, 100, sink).ok());
  auto header = std::get<ledger::ExportHeader>(records.at(0));
  EXPECT_EQ(header.tree_size, 5u);
  EXPECT_EQ(header.start, 2u);
  EXPECT_EQ(header.end, 5u);
  std::vector<std::string> shape;
  for (const auto& r : records) {
    if (auto* e = std::get_if<ledger::EntryRow>(&r)) shape.push_back(absl::StrCat("e", e->index));
    if (auto* n = std::get_if<ledger::NodeRecord>(&r)) {
      shape.push_back(absl::StrCat("n", n->id.level, "/", n->id.index));
    }
    if (std::holds_alternative<ledger::TreeHead>(r)) shape.push_back("h");
    if (std::holds_alternative<ledger::StoredSigner>(r)) shape.push_back("s");
  }
  EXPECT_THAT(shape,
              ElementsAre("s", "h", "h", "e2", "n0/2", "e3", "n0/3", "n1/1", "n2/0", "e4", "n0/4"));
}

}  // namespace tw::store
