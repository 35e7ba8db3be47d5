// The embedded store: one SQLite database in WAL mode. One writer thread commits every
// queued mutation in one transaction (group commit, synchronous=FULL) before any caller
// is acknowledged; reads run concurrently on a pool of read connections. Thread-safe.
// Its members are defined across sqlite/: the writer and the reader pool in db.cc,
// identities, revocations, policies and tokens in identities.cc, the ledger in ledger.cc.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "base/file.h"
#include "store/store.h"

namespace tw::store {

namespace sqlite {
class Db;
}  // namespace sqlite

class SqliteStore final : public Store {
 public:
  // Opens or creates the database at `path` (mode 0600) and applies pending schema
  // migrations. `exclusive` (a server) holds the lock file `path`.lock for the store's life,
  // so a second server on the same data refuses to start; tools that only read pass false.
  // Internal on I/O errors; FailedPrecondition when the schema is newer than this build,
  // or when another process holds the lock (naming its PID).
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                           bool exclusive = true);
  ~SqliteStore() override;

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
  struct Job;
  explicit SqliteStore(std::string path);
  // Runs `fn` inside the writer's next transaction; returns once that commit is durable.
  absl::Status Write(std::function<absl::Status(sqlite::Db&)> fn);
  // Runs `fn` on a pooled read connection.
  absl::Status Read(const std::function<absl::Status(sqlite::Db&)>& fn);
  // The same inside one read transaction (one consistent snapshot).
  absl::Status ReadSnapshot(const std::function<absl::Status(sqlite::Db&)>& fn);
  void WriterLoop();
  bool WriterHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }

  const std::string path_;
  std::optional<base::LockFile> lock_;
  std::unique_ptr<sqlite::Db> writer_db_;
  absl::Mutex mu_;
  std::deque<Job*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<sqlite::Db>> readers_ ABSL_GUARDED_BY(mu_);  // idle connections
  std::thread writer_;
};

}  // namespace tw::store
