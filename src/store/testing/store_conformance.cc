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

// A batch of one event with the id of `stored` and other bytes.
// A revocation audit that stores `batch`, whatever was revoked.
RevocationAudit Fixed(LedgerAppend batch) {
  return [batch = std::move(batch)](const revocation::Entry&, const std::vector<IdentityRecord>&) {
    return batch;
  };
}

LedgerAppend ConflictWith(const ledger::Event& stored) {
  LedgerAppend batch = LedgerBatch(1);
  batch.events[0].id = stored.id;
  batch.events[0].resource = "db://other";
  batch.entries[0].event = ledger::EncodeEvent(batch.events[0]);
  return batch;
}

std::vector<std::string> InstanceIds(const std::vector<IdentityRecord>& records) {
  std::vector<std::string> out;
  for (const IdentityRecord& r : records) out.push_back(r.instance_id);
  return out;
}

// One word per record of an export segment: "header <size> [<start>, <end>)", "s" (a
// signer), "h<size>" (a tree head), "e<index>" (an entry), "n<level>/<index>" (a node).
std::string ShapeOf(const ledger::ExportRecord& r) {
  if (auto* h = std::get_if<ledger::ExportHeader>(&r)) {
    return absl::StrCat("header ", h->tree_size, " [", h->start, ", ", h->end, ")");
  }
  if (auto* h = std::get_if<ledger::TreeHead>(&r)) return absl::StrCat("h", h->tree_size);
  if (auto* e = std::get_if<ledger::EntryRow>(&r)) return absl::StrCat("e", e->index);
  if (auto* n = std::get_if<ledger::NodeRecord>(&r)) {
    return absl::StrCat("n", n->id.level, "/", n->id.index);
  }
  return "s";
}

std::vector<std::string> ExportShape(Store& store, uint64_t start, uint64_t end) {
  std::vector<std::string> shape;
  absl::Status s = store.ExportLedger({.trust_domain = "td"}, start, end,
                                      [&shape](const ledger::ExportRecord& r) {
                                        shape.push_back(ShapeOf(r));
                                        return absl::OkStatus();
                                      });
  EXPECT_TRUE(s.ok()) << s;
  return shape;
}

}  // namespace

void StoreConformanceTest::SetUp() {
  auto store = GetParam().open(dir_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

void StoreConformanceTest::TearDown() { store_.reset(); }

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
  EXPECT_EQ(store_->Revoke(revocation::Kind::kSubtree, "inst-none", "", kNow).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(*store_->LastRevocationSequence(), 0);
}

TEST_P(StoreConformanceTest, InsertedIdentityStartsUnrevoked) {
  IdentityRecord r = Identity("inst-a");
  r.revoked_sequence = 7;
  r.revoked_at = kNow;
  ASSERT_TRUE(store_->InsertIdentity(r).ok());
  IdentityRecord got = *store_->GetIdentity("inst-a");
  EXPECT_FALSE(got.revoked_sequence.has_value());
  EXPECT_FALSE(got.revoked_at.has_value());
  EXPECT_TRUE(store_->InsertIdentity(Identity("inst-c", "inst-a")).ok());
}

TEST_P(StoreConformanceTest, TimesAreKeptToTheSecond) {
  const absl::Time odd = kNow + absl::Milliseconds(750);
  IdentityRecord r = Identity("inst-a");
  r.not_before = odd - absl::Seconds(30);
  r.not_after = odd + absl::Hours(1);
  r.created_at = odd;
  ASSERT_TRUE(store_->InsertIdentity(r).ok());
  ASSERT_TRUE(
      store_->InsertToken(TokenRecord{"tid1", "ci", {1}, false, odd, false, odd + absl::Hours(1)})
          .ok());
  ASSERT_TRUE(store_->RevokeToken("tid1", odd).ok());
  ASSERT_TRUE(store_->AppendPolicy("a = 1", "h1", odd).ok());
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-a", "", odd).ok());
  Reopen();
  IdentityRecord got = *store_->GetIdentity("inst-a");
  EXPECT_EQ(got.not_before, kNow - absl::Seconds(30));
  EXPECT_EQ(got.not_after, kNow + absl::Hours(1));
  EXPECT_EQ(got.created_at, kNow);
  TokenRecord token = store_->ListTokens()->at(0);
  EXPECT_EQ(token.created_at, kNow);
  EXPECT_EQ(token.expires_at, kNow + absl::Hours(1));
  EXPECT_EQ(token.revoked_at, kNow);
  EXPECT_EQ(store_->GetPolicy(1)->created_at, kNow);
  revocation::Entry entry = store_->ListRevocations(0, 10)->at(0);
  EXPECT_EQ(entry.revoked_at, kNow);
  EXPECT_EQ(entry.expires_at, kNow + absl::Hours(1));
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

TEST_P(StoreConformanceTest, RenewLeavesTheRestOfTheRecord) {
  IdentityRecord original = Identity("inst-p");
  ASSERT_TRUE(store_->InsertIdentity(original).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-other")).ok());
  IdentityRecord renewed = Identity("inst-p", "inst-other", "x/y/z", "someone");
  renewed.spiffe_id = "spiffe://td/x/y/z/inst-p";
  renewed.depth = 4;
  renewed.created_at = kNow + absl::Hours(5);
  renewed.serial_hex = "beef";
  ASSERT_TRUE(store_->RenewIdentity(renewed, original.serial_hex).ok());
  IdentityRecord expected = original;
  expected.serial_hex = "beef";
  EXPECT_EQ(*store_->GetIdentity("inst-p"), expected);
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

TEST_P(StoreConformanceTest, RevocationInstantIsKeptToTheMillisecond) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  const absl::Time at = kNow + absl::Microseconds(1'234'567);
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-a", "", at).ok());
  Reopen();
  EXPECT_EQ(store_->GetIdentity("inst-a")->revoked_at, kNow + absl::Milliseconds(1234));
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

TEST_P(StoreConformanceTest, RevocationAuditSeesTheEntryAndTheRevokedRecordsInItsTransaction) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-p")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-c", "inst-p")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-g", "inst-c")).ok());
  std::vector<std::string> seen;
  int64_t sequence = 0;
  RevocationAudit audit = [&](const revocation::Entry& entry,
                              const std::vector<IdentityRecord>& revoked) {
    sequence = entry.sequence;
    for (const IdentityRecord& r : revoked) seen.push_back(r.instance_id + "@" + r.spiffe_id);
    return LedgerBatch(static_cast<int>(revoked.size()));
  };
  auto e = store_->Revoke(revocation::Kind::kSubtree, "inst-c", "why", kNow, audit,
                          "spiffe://td/a/b/c/inst-p");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(sequence, e->sequence);
  ASSERT_EQ(seen.size(), e->instances.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i], e->instances[i] + "@" + store_->GetIdentity(e->instances[i])->spiffe_id);
  }
  EXPECT_EQ(store_->LedgerEntries(0, UINT64_MAX)->size(), 2u);
  auto stored = store_->GetRevocation(e->sequence);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->revoked_by, "spiffe://td/a/b/c/inst-p");
  EXPECT_EQ(stored->reason, "why");
  EXPECT_THAT(stored->instances, UnorderedElementsAre("inst-c", "inst-g"));
  EXPECT_EQ(store_->GetRevocation(e->sequence + 1).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, AFailingRevocationAuditRevokesNothing) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  RevocationAudit failing = [](const revocation::Entry&,
                               const std::vector<IdentityRecord>&) -> absl::StatusOr<LedgerAppend> {
    return absl::UnavailableError("signer away");
  };
  EXPECT_EQ(
      store_->Revoke(revocation::Kind::kInstance, "inst-a", "", kNow, failing).status().code(),
      absl::StatusCode::kUnavailable);
  EXPECT_FALSE(store_->GetIdentity("inst-a")->revoked_sequence.has_value());
  EXPECT_EQ(*store_->LastRevocationSequence(), 0);
  EXPECT_EQ(store_->Revoke(revocation::Kind::kInstance, "inst-a", "", kNow)->sequence, 1);
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
}

TEST_P(StoreConformanceTest, RevokingNothingIsRefusedAndUsesNoSequence) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-1", "", "a/b/one", "p1")).ok());
  IdentityRecord old = Identity("inst-old", "", "a/b/old", "p1");
  old.not_after = kNow - absl::Seconds(1);
  ASSERT_TRUE(store_->InsertIdentity(old).ok());
  LedgerAppend audit = LedgerBatch(1);
  for (auto [kind, target] : std::vector<std::pair<revocation::Kind, std::string>>{
           {revocation::Kind::kAgent, "a/b/none"},
           {revocation::Kind::kPrincipal, "nobody"},
           {revocation::Kind::kInstance, "inst-old"},  // expired
           {revocation::Kind::kAgent, "a/b/old"}}) {
    EXPECT_EQ(store_->Revoke(kind, target, "", kNow, Fixed(audit)).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << target;
  }
  EXPECT_EQ(*store_->LastRevocationSequence(), 0);
  EXPECT_TRUE(store_->LedgerEntries(0, UINT64_MAX)->empty());  // nor its audit event
  ASSERT_EQ(store_->Revoke(revocation::Kind::kInstance, "inst-1", "", kNow)->sequence, 1);
  EXPECT_EQ(store_->Revoke(revocation::Kind::kInstance, "inst-1", "", kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);  // already revoked
  EXPECT_EQ(*store_->LastRevocationSequence(), 1);
}

TEST_P(StoreConformanceTest, RevokingByAgentOrPrincipalReachesOtherNamesBelow) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-1", "", "a/b/one", "p1")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-2", "inst-1", "a/b/two", "p2")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-3", "", "a/b/three", "p3")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-4", "inst-3", "a/b/four", "p4")).ok());
  EXPECT_THAT(store_->Revoke(revocation::Kind::kAgent, "a/b/one", "", kNow)->instances,
              UnorderedElementsAre("inst-1", "inst-2"));
  EXPECT_THAT(store_->Revoke(revocation::Kind::kPrincipal, "p3", "", kNow)->instances,
              UnorderedElementsAre("inst-3", "inst-4"));
}

TEST_P(StoreConformanceTest, RevocationCascadesThroughExpiredDescendants) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-p")).ok());
  IdentityRecord expired = Identity("inst-c", "inst-p");
  expired.not_after = kNow - absl::Seconds(1);
  ASSERT_TRUE(store_->InsertIdentity(expired).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-g", "inst-c")).ok());
  auto e = *store_->Revoke(revocation::Kind::kSubtree, "inst-p", "", kNow);
  EXPECT_THAT(e.instances, UnorderedElementsAre("inst-p", "inst-g"));
  EXPECT_FALSE(store_->GetIdentity("inst-c")->revoked_sequence.has_value());
}

TEST_P(StoreConformanceTest, RevocationWithARefusedAuditLeavesNoTrace) {
  LedgerAppend first = LedgerBatch(1);
  ASSERT_TRUE(store_->AppendLedger(first).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  LedgerAppend conflicting = ConflictWith(first.events[0]);
  EXPECT_EQ(store_->Revoke(revocation::Kind::kInstance, "inst-a", "", kNow, Fixed(conflicting))
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(store_->GetIdentity("inst-a")->revoked_sequence.has_value());
  EXPECT_EQ(*store_->LastRevocationSequence(), 0);
  EXPECT_TRUE(store_->ListRevocations(0, 10)->empty());
  EXPECT_EQ(store_->Revoke(revocation::Kind::kInstance, "inst-a", "", kNow)->sequence, 1);
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

TEST_P(StoreConformanceTest, RevocationLogListsAtMostLimit) {
  for (int i = 0; i < 3; ++i) {
    const std::string id = absl::StrCat("inst-", i);
    ASSERT_TRUE(store_->InsertIdentity(Identity(id)).ok());
    ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, id, "", kNow).ok());
  }
  auto first = *store_->ListRevocations(0, 2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1].sequence, 2);
  auto rest = *store_->ListRevocations(2, 2);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].sequence, 3);
}

TEST_P(StoreConformanceTest, PruningKeepsEntriesExpiringAtNow) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-a", "", kNow).ok());
  EXPECT_EQ(*store_->PruneRevocations(kNow + absl::Hours(1)), 0u);
  EXPECT_EQ(*store_->PruneRevocations(kNow + absl::Hours(1) + absl::Seconds(1)), 1u);
  EXPECT_TRUE(store_->ListRevocations(0, 10)->empty());
}

TEST_P(StoreConformanceTest, ListsIdentitiesByFilterNewestFirst) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-1", "", "a/b/one", "p1")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-2", "", "a/b/one", "p2")).ok());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-3", "", "a/b/two", "p2")).ok());
  ASSERT_TRUE(store_->Revoke(revocation::Kind::kInstance, "inst-3", "", kNow).ok());
  auto ids = [](const absl::StatusOr<std::vector<IdentityRecord>>& rs) { return InstanceIds(*rs); };
  EXPECT_THAT(ids(store_->ListIdentities({})), ElementsAre("inst-3", "inst-2", "inst-1"));
  EXPECT_THAT(ids(store_->ListIdentities({.agent = "a/b/one"})), ElementsAre("inst-2", "inst-1"));
  EXPECT_THAT(ids(store_->ListIdentities({.principal = "p2"})), ElementsAre("inst-3", "inst-2"));
  EXPECT_THAT(ids(store_->ListIdentities({.principal = "p2", .live_at = kNow})),
              ElementsAre("inst-2"));
  EXPECT_THAT(ids(store_->ListIdentities({.live_at = kNow + absl::Hours(2)})), ElementsAre());
  EXPECT_THAT(ids(store_->ListIdentities({.limit = 1})), ElementsAre("inst-3"));
}

TEST_P(StoreConformanceTest, LiveAtIncludesNotBeforeAndExcludesNotAfter) {
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  const IdentityRecord r = *store_->GetIdentity("inst-a");
  auto live_at = [this](absl::Time t) {
    return InstanceIds(*store_->ListIdentities({.live_at = t}));
  };
  EXPECT_THAT(live_at(r.not_before), ElementsAre("inst-a"));
  EXPECT_THAT(live_at(r.not_after - absl::Seconds(1)), ElementsAre("inst-a"));
  EXPECT_THAT(live_at(r.not_after), ElementsAre());
  EXPECT_THAT(live_at(r.not_before - absl::Seconds(1)), ElementsAre());
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
  EXPECT_EQ(store_->GetPolicy(-1).status().code(), absl::StatusCode::kNotFound);
  auto list = *store_->ListPolicies();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[2].version, 3);
  EXPECT_EQ(list[0].sha256_hex, "h1");
  EXPECT_TRUE(list[0].source.empty());
}

TEST_P(StoreConformanceTest, FederationsRoundTripByTrustDomain) {
  FederationRecord energy{"energy.city",    "https://energy.city:8445/",
                          "https_spiffe",   "spiffe://energy.city/trustwarden/server",
                          R"({"keys":[]})", kNow};
  FederationRecord traffic{"traffic.city", "https://bundle.traffic.city/", "https_web", "", ""};
  ASSERT_TRUE(store_->PutFederation(traffic).ok());
  ASSERT_TRUE(store_->PutFederation(energy).ok());
  Reopen();
  std::vector<FederationRecord> list = *store_->ListFederations();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].trust_domain, "energy.city");
  EXPECT_EQ(list[0].endpoint_spiffe_id, "spiffe://energy.city/trustwarden/server");
  EXPECT_EQ(list[0].bundle_json, R"({"keys":[]})");
  EXPECT_EQ(list[0].refreshed_at, kNow);
  EXPECT_EQ(list[1].profile, "https_web");
  EXPECT_FALSE(list[1].refreshed_at.has_value());
  // Put replaces; an update keeps the relationship and changes its bundle.
  traffic.endpoint_url = "https://bundle2.traffic.city/";
  ASSERT_TRUE(store_->PutFederation(traffic).ok());
  ASSERT_TRUE(store_->UpdateFederatedBundle("traffic.city", "{}", kNow + absl::Seconds(5)).ok());
  list = *store_->ListFederations();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1].endpoint_url, "https://bundle2.traffic.city/");
  EXPECT_EQ(list[1].bundle_json, "{}");
  EXPECT_EQ(list[1].refreshed_at, kNow + absl::Seconds(5));
  // Removed: gone, and a refresh that finishes afterwards does not bring it back.
  ASSERT_TRUE(store_->DeleteFederation("traffic.city").ok());
  EXPECT_EQ(store_->DeleteFederation("traffic.city").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->UpdateFederatedBundle("traffic.city", "{}", kNow).code(),
            absl::StatusCode::kNotFound);
  Reopen();
  list = *store_->ListFederations();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].trust_domain, "energy.city");
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

TEST_P(StoreConformanceTest, TokensListByCreationThenId) {
  ASSERT_TRUE(store_->InsertToken(TokenRecord{"tid-b", "ci", {1}, false, kNow}).ok());
  ASSERT_TRUE(
      store_->InsertToken(TokenRecord{"tid-c", "ci", {1}, false, kNow - absl::Seconds(1)}).ok());
  ASSERT_TRUE(store_->InsertToken(TokenRecord{"tid-a", "ci", {1}, false, kNow}).ok());
  std::vector<TokenRecord> tokens = *store_->ListTokens();
  std::vector<std::string> ids;
  for (const TokenRecord& t : tokens) ids.push_back(t.id);
  EXPECT_THAT(ids, ElementsAre("tid-c", "tid-a", "tid-b"));
}

TEST_P(StoreConformanceTest, InsertedTokenStartsUnrevoked) {
  TokenRecord t{"tid1", "ci", {1}, false, kNow};
  t.revoked_at = kNow;
  ASSERT_TRUE(store_->InsertToken(t).ok());
  EXPECT_FALSE(store_->ListTokens()->at(0).revoked_at.has_value());
  EXPECT_TRUE(store_->RevokeToken("tid1", kNow).ok());
}

TEST_P(StoreConformanceTest, EmptyValuesAreStoredAsEmpty) {
  ASSERT_TRUE(store_->InsertToken(TokenRecord{"tid1", "ci", {}, false, kNow}).ok());
  EXPECT_TRUE(store_->ListTokens()->at(0).secret_hash.empty());
  ASSERT_TRUE(store_->InsertTreeHead({0, 1, {}, {}}).ok());
  EXPECT_TRUE((*store_->LatestTreeHead())->signature.empty());
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a")).ok());
  ASSERT_TRUE(
      store_->Revoke(revocation::Kind::kInstance, "inst-a", absl::string_view(), kNow).ok());
  EXPECT_EQ(store_->ListRevocations(0, 1)->at(0).reason, "");
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

  LedgerAppend conflict = LedgerBatch(1);
  LedgerAppend other = ConflictWith(batch.events[0]);
  conflict.entries.push_back(other.entries[0]);
  conflict.events.push_back(other.events[0]);
  EXPECT_EQ(store_->AppendLedger(conflict).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->LedgerEntries(0, 100)->size(), 3u);  // nothing of the batch was written
}

TEST_P(StoreConformanceTest, PartlyReplayedBatchAppendsOnlyItsNewEvents) {
  LedgerAppend old = LedgerBatch(1);
  ASSERT_TRUE(store_->AppendLedger(old).ok());
  LedgerAppend mixed = LedgerBatch(2);
  mixed.events[0] = old.events[0];
  mixed.entries[0] = old.entries[0];
  auto appended = store_->AppendLedger(mixed);
  ASSERT_TRUE(appended.ok()) << appended.status();
  EXPECT_THAT(appended->indexes, ElementsAre(0u, 1u));
  EXPECT_EQ(appended->tree_size, 2u);
  EXPECT_EQ(store_->LedgerEntryById(mixed.events[1].id)->index, 1u);
}

TEST_P(StoreConformanceTest, EventRepeatedInOneBatchKeepsOneIndex) {
  LedgerAppend batch = LedgerBatch(2);
  batch.events[1] = batch.events[0];
  batch.entries[1] = batch.entries[0];
  auto appended = store_->AppendLedger(batch);
  ASSERT_TRUE(appended.ok()) << appended.status();
  EXPECT_THAT(appended->indexes, ElementsAre(0u, 0u));
  EXPECT_EQ(appended->tree_size, 1u);
}

TEST_P(StoreConformanceTest, EventRepeatedInOneBatchWithOtherBytesIsRefused) {
  LedgerAppend batch = LedgerBatch(1);
  LedgerAppend other = ConflictWith(batch.events[0]);
  batch.entries.push_back(other.entries[0]);
  batch.events.push_back(other.events[0]);
  EXPECT_EQ(store_->AppendLedger(batch).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(store_->LedgerEntries(0, 100)->empty());
}

TEST_P(StoreConformanceTest, BatchWithMoreEntriesThanEventsIsRefused) {
  LedgerAppend batch = LedgerBatch(2);
  batch.events.pop_back();
  EXPECT_EQ(store_->AppendLedger(batch).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AppendPolicy("a = 1", "h1", kNow, &batch).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetPolicy(0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->LedgerEntries(0, 100)->empty());
}

TEST_P(StoreConformanceTest, LedgerSignersAreStoredOncePerId) {
  LedgerAppend a = LedgerBatch(1), b = LedgerBatch(1), c = LedgerBatch(1);
  c.signer.signer = {ledger::SignerKind::kLedgerKey, {4, 5}};
  c.signer.id = c.signer.signer.id();
  c.entries[0].signer_id = c.signer.id;
  for (const LedgerAppend* batch : {&a, &b, &c}) ASSERT_TRUE(store_->AppendLedger(*batch).ok());
  auto svid = store_->LedgerSigner(a.signer.id);
  ASSERT_TRUE(svid.ok()) << svid.status();
  EXPECT_EQ(svid->kind, ledger::SignerKind::kSvid);
  EXPECT_EQ(svid->der, (base::Bytes{1, 2, 3}));
  EXPECT_EQ(store_->LedgerSigner(c.signer.id)->kind, ledger::SignerKind::kLedgerKey);
  EXPECT_EQ(store_->LedgerSigner(ledger::Hash{}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ExportShape(*store_, 0, 0), ElementsAre("header 3 [0, 0)", "s", "s"));
}

TEST_P(StoreConformanceTest, LedgerEntriesReadsAnyRange) {
  ASSERT_TRUE(store_->AppendLedger(LedgerBatch(3)).ok());
  EXPECT_EQ(store_->LedgerEntries(0, UINT64_MAX)->size(), 3u);
  EXPECT_EQ(store_->LedgerEntries(1, 2)->at(0).index, 1u);
  EXPECT_TRUE(store_->LedgerEntries(2, 1)->empty());
  EXPECT_TRUE(store_->LedgerEntries(3, UINT64_MAX)->empty());
  EXPECT_TRUE(store_->LedgerEntries(UINT64_MAX - 1, UINT64_MAX)->empty());
}

TEST_P(StoreConformanceTest, ConcurrentLedgerAppendsGetContiguousIndexes) {
  constexpr int kThreads = 4, kBatches = 10, kPerBatch = 3;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kBatches; ++i) {
        ASSERT_TRUE(store_->AppendLedger(LedgerBatch(kPerBatch)).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  constexpr uint64_t kTotal = kThreads * kBatches * kPerBatch;
  auto rows = *store_->LedgerEntries(0, kTotal + 1);
  ASSERT_EQ(rows.size(), kTotal);
  ledger::MemoryTree expected;
  for (uint64_t i = 0; i < kTotal; ++i) {
    EXPECT_EQ(rows[i].index, i);
    expected.Append(ledger::LeafHash(rows[i].entry));
  }
  ASSERT_TRUE(store_
                  ->ReadLedgerTree([&](uint64_t size, const ledger::NodeSource& nodes) {
                    EXPECT_EQ(size, kTotal);
                    EXPECT_EQ(*ledger::RootHash(nodes, size), expected.Root());
                    return absl::OkStatus();
                  })
                  .ok());
}

TEST_P(StoreConformanceTest, LedgerTreeSnapshotIgnoresLaterAppends) {
  ASSERT_TRUE(store_->AppendLedger(LedgerBatch(3)).ok());
  ASSERT_TRUE(store_
                  ->ReadLedgerTree([&](uint64_t size, const ledger::NodeSource& nodes) {
                    EXPECT_EQ(size, 3u);
                    absl::StatusOr<ledger::Hash> root = ledger::RootHash(nodes, 3);
                    EXPECT_TRUE(root.ok());
                    EXPECT_TRUE(store_->AppendLedger(LedgerBatch(3)).ok());
                    EXPECT_EQ(ledger::RootHash(nodes, 3), root);
                    EXPECT_EQ(nodes.Node({0, 3}).status().code(), absl::StatusCode::kNotFound);
                    EXPECT_EQ(nodes.Node({2, 0}).status().code(), absl::StatusCode::kNotFound);
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(store_
                  ->ReadLedgerTree([](uint64_t size, const ledger::NodeSource& nodes) {
                    EXPECT_EQ(size, 6u);
                    EXPECT_TRUE(nodes.Node({2, 0}).ok());
                    return absl::OkStatus();
                  })
                  .ok());
}

TEST_P(StoreConformanceTest, LedgerAuditCommitsWithItsMutationOrNotAtAll) {
  LedgerAppend audit = LedgerBatch(1);
  ASSERT_TRUE(store_->InsertIdentity(Identity("inst-a"), &audit).ok());
  EXPECT_TRUE(store_->LedgerEntryById(audit.events[0].id).ok());
  LedgerAppend lost = LedgerBatch(1);
  EXPECT_FALSE(store_->InsertIdentity(Identity("inst-a"), &lost).ok());
  EXPECT_EQ(store_->LedgerEntryById(lost.events[0].id).status().code(),
            absl::StatusCode::kNotFound);
  LedgerAppend conflicting = ConflictWith(audit.events[0]);
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
  auto by_type = *store_->QueryLedger({.type = "observation"});
  ASSERT_EQ(by_type.size(), 1u);
  EXPECT_EQ(by_type[0].index, 8u);
  EXPECT_EQ(store_->QueryLedger({.type = "action"})->size(), 8u);
  EXPECT_TRUE(store_->QueryLedger({.limit = 0})->empty());
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
  ASSERT_TRUE(store_->InsertTreeHead({9, 30, {}, {5}}).ok());
  EXPECT_EQ((*store_->LatestTreeHead())->signature, (base::Bytes{5}));
}

TEST_P(StoreConformanceTest, TreeHeadsAscendBySizeTimeThenInsertion) {
  ASSERT_TRUE(store_->InsertTreeHead({7, 20, {}, {1}}).ok());
  ASSERT_TRUE(store_->InsertTreeHead({5, 30, {}, {2}}).ok());
  ASSERT_TRUE(store_->InsertTreeHead({7, 10, {}, {3}}).ok());
  ASSERT_TRUE(store_->InsertTreeHead({7, 10, {}, {4}}).ok());
  auto order = [](const absl::StatusOr<std::vector<ledger::TreeHead>>& heads) {
    std::vector<uint8_t> out;
    for (const ledger::TreeHead& h : *heads) out.push_back(h.signature.at(0));
    return out;
  };
  EXPECT_THAT(order(store_->ListTreeHeads()), ElementsAre(2, 3, 4, 1));
  EXPECT_THAT(order(store_->ListTreeHeads(7)), ElementsAre(3, 4, 1));
}

TEST_P(StoreConformanceTest, LedgerTreeHeadsAndExportSegments) {
  ASSERT_TRUE(store_->AppendLedger(LedgerBatch(5)).ok());
  ledger::TreeHead head{5, 77, {}, {1}};
  ASSERT_TRUE(store_->InsertTreeHead(head).ok());
  ASSERT_TRUE(store_->InsertTreeHead(ledger::TreeHead{5, 78, {}, {2}}).ok());
  EXPECT_EQ(store_->ListTreeHeads()->size(), 2u);
  EXPECT_EQ(store_->ListTreeHeads(5)->front(), head);
  EXPECT_TRUE(store_->ListTreeHeads(4)->empty());

  EXPECT_THAT(ExportShape(*store_, 2, 100),
              ElementsAre("header 5 [2, 5)", "s", "h5", "h5", "e2", "n0/2", "e3", "n0/3", "n1/1",
                          "n2/0", "e4", "n0/4"));
  ledger::ExportHeader header;
  ASSERT_TRUE(store_
                  ->ExportLedger({.trust_domain = "td", .ledger_key = {7}}, 0, 0,
                                 [&header](const ledger::ExportRecord& r) {
                                   if (auto* h = std::get_if<ledger::ExportHeader>(&r)) header = *h;
                                   return absl::OkStatus();
                                 })
                  .ok());
  EXPECT_EQ(header.trust_domain, "td");
  EXPECT_EQ(header.ledger_key, (base::Bytes{7}));
}

TEST_P(StoreConformanceTest, ExportClampsTheSegmentToTheTree) {
  ASSERT_TRUE(store_->AppendLedger(LedgerBatch(2)).ok());
  ASSERT_TRUE(store_->InsertTreeHead({0, 5, {}, {1}}).ok());
  ASSERT_TRUE(store_->InsertTreeHead({1, 6, {}, {2}}).ok());
  ASSERT_TRUE(store_->InsertTreeHead({2, 7, {}, {3}}).ok());
  EXPECT_THAT(ExportShape(*store_, 0, 1),
              ElementsAre("header 2 [0, 1)", "s", "h0", "h1", "e0", "n0/0"));
  EXPECT_THAT(ExportShape(*store_, 1, 9),
              ElementsAre("header 2 [1, 2)", "s", "h2", "e1", "n0/1", "n1/0"));
  EXPECT_THAT(ExportShape(*store_, 5, 9), ElementsAre("header 2 [2, 2)", "s"));
}

TEST_P(StoreConformanceTest, ExportIsOneSnapshot) {
  ASSERT_TRUE(store_->AppendLedger(LedgerBatch(2)).ok());
  std::vector<std::string> shape;
  ASSERT_TRUE(store_
                  ->ExportLedger({}, 0, 100,
                                 [&](const ledger::ExportRecord& r) -> absl::Status {
                                   shape.push_back(ShapeOf(r));
                                   if (shape.size() > 1) return absl::OkStatus();
                                   return store_->AppendLedger(LedgerBatch(2)).status();
                                 })
                  .ok());
  EXPECT_THAT(shape, ElementsAre("header 2 [0, 2)", "s", "e0", "n0/0", "e1", "n0/1", "n1/0"));
  EXPECT_EQ(store_->LedgerEntries(0, 100)->size(), 4u);
}

}  // namespace tw::store
