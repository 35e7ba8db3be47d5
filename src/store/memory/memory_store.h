// A Store kept in memory: the contract of store.h except durability (nothing outlives the
// object), for unit tests of the domain logic and as a reference backend. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "store/store.h"

namespace tw::store {

// Every Store method with the status codes, orders and time precision of store.h, and where
// store.h is silent, SqliteStore's (the reference). One reader/writer lock makes each call
// atomic; the callbacks of ReadLedgerTree and ExportLedger run on a snapshot without it
// held, so they may call back into the store.
class MemoryStore final : public Store {
 public:
  MemoryStore() = default;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  absl::Status InsertIdentity(const IdentityRecord& record, const LedgerAppend* audit) override;
  absl::Status RenewIdentity(const IdentityRecord& renewed, absl::string_view current_serial,
                             const LedgerAppend* audit) override;
  absl::StatusOr<IdentityRecord> GetIdentity(absl::string_view instance_id) override;
  absl::StatusOr<std::vector<IdentityRecord>> ListIdentities(const IdentityFilter& filter) override;
  absl::StatusOr<revocation::Entry> Revoke(revocation::Kind kind, absl::string_view target,
                                           absl::string_view reason, absl::Time now,
                                           const RevocationAudit& audit,
                                           absl::string_view revoked_by) override;
  absl::StatusOr<revocation::Entry> GetRevocation(int64_t sequence) override;
  absl::StatusOr<std::vector<revocation::Entry>> ListRevocations(int64_t after,
                                                                 size_t limit) override;
  absl::StatusOr<int64_t> LastRevocationSequence() override;
  absl::StatusOr<size_t> PruneRevocations(absl::Time now) override;
  absl::StatusOr<int64_t> AppendPolicy(absl::string_view source, absl::string_view sha256_hex,
                                       absl::Time created_at, const LedgerAppend* audit) override;
  absl::StatusOr<StoredPolicy> GetPolicy(int64_t version) override;
  absl::StatusOr<std::vector<StoredPolicy>> ListPolicies() override;
  absl::Status InsertToken(const TokenRecord& token, const LedgerAppend* audit) override;
  absl::StatusOr<std::vector<TokenRecord>> ListTokens() override;
  absl::Status RevokeToken(absl::string_view id, absl::Time now,
                           const LedgerAppend* audit) override;
  absl::Status PutFederation(const FederationRecord& record, const LedgerAppend* audit) override;
  absl::Status UpdateFederatedBundle(absl::string_view trust_domain, absl::string_view bundle_json,
                                     absl::Time refreshed_at, const LedgerAppend* audit) override;
  absl::StatusOr<std::vector<FederationRecord>> ListFederations() override;
  absl::Status DeleteFederation(absl::string_view trust_domain, const LedgerAppend* audit) override;
  absl::StatusOr<LedgerAppended> AppendLedger(const LedgerAppend& batch) override;
  absl::Status ReadLedgerTree(
      const std::function<absl::Status(uint64_t size, const ledger::NodeSource& nodes)>& fn)
      override;
  absl::StatusOr<std::vector<ledger::EntryRow>> LedgerEntries(uint64_t start,
                                                              uint64_t end) override;
  absl::StatusOr<ledger::EntryRow> LedgerEntryById(absl::string_view event_id) override;
  absl::StatusOr<std::vector<ledger::EntryRow>> QueryLedger(const LedgerQuery& query) override;
  absl::StatusOr<ledger::SignerRecord> LedgerSigner(const ledger::Hash& id) override;
  absl::Status InsertTreeHead(const ledger::TreeHead& head) override;
  absl::StatusOr<std::optional<ledger::TreeHead>> LatestTreeHead() override;
  absl::StatusOr<std::vector<ledger::TreeHead>> ListTreeHeads(
      std::optional<uint64_t> tree_size) override;
  absl::Status ExportLedger(ledger::ExportHeader header, uint64_t start, uint64_t end,
                            const LedgerSink& sink) override;

 private:
  class TreeSnapshot;
  // A checked ledger batch, ready to apply: the rows it adds and what to answer.
  struct LedgerPlan {
    std::optional<ledger::StoredSigner> new_signer;  // when its id is not stored yet
    std::vector<ledger::EntryRow> rows;              // the new rows, by index
    LedgerAppended appended;
  };

  // Checks `batch` against the ledger without changing anything (the first half of
  // AppendLedger): InvalidArgument or AlreadyExists as AppendLedger says.
  absl::StatusOr<LedgerPlan> PlanLedger(const LedgerAppend& batch) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // PlanLedger for a mutation's optional audit batch (an empty plan when null).
  absl::StatusOr<LedgerPlan> PlanAudit(const LedgerAppend* audit) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Stores a plan made under the same exclusive hold of mu_.
  void ApplyLedger(LedgerPlan plan) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Where identities_ holds `instance_id`; nullopt when unknown.
  std::optional<size_t> PositionOf(absl::string_view instance_id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // Identities in insertion order (the order SQLite's rowid gives), found by instance id
  // and by parent.
  std::vector<IdentityRecord> identities_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, size_t> identity_at_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<size_t>> children_at_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, revocation::Entry> revocations_ ABSL_GUARDED_BY(mu_);  // by sequence
  int64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<StoredPolicy> policies_ ABSL_GUARDED_BY(mu_);  // version i + 1 at i
  absl::flat_hash_map<std::string, TokenRecord> tokens_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, FederationRecord> federations_ ABSL_GUARDED_BY(mu_);  // by trust domain
  // The ledger only grows, and nothing in it changes once stored: a snapshot is its sizes.
  std::vector<ledger::EntryRow> rows_ ABSL_GUARDED_BY(mu_);  // row i has index i
  absl::flat_hash_map<std::string, uint64_t> row_of_event_ ABSL_GUARDED_BY(mu_);
  ledger::MemoryTree tree_ ABSL_GUARDED_BY(mu_);
  std::vector<ledger::StoredSigner> signers_ ABSL_GUARDED_BY(mu_);  // in insertion order
  absl::flat_hash_map<ledger::Hash, size_t> signer_at_ ABSL_GUARDED_BY(mu_);
  std::vector<ledger::TreeHead> tree_heads_ ABSL_GUARDED_BY(mu_);  // in insertion order
};

}  // namespace tw::store
