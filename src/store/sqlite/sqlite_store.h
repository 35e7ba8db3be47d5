// The embedded store: one SQLite database in WAL mode. One writer thread commits every
// queued mutation in one transaction (group commit, synchronous=FULL) before any caller
// is acknowledged; reads run concurrently on a pool of read connections. Thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace tw::store {

class SqliteStore final : public Store {
 public:
  // Opens or creates the database at `path` (mode 0600) and applies pending schema
  // migrations. Internal on I/O errors; FailedPrecondition when the schema is newer than
  // this build.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;

  absl::Status InsertIdentity(const IdentityRecord& record) override;
  absl::Status RenewIdentity(absl::string_view instance_id, absl::string_view serial_hex,
                             absl::Time not_before, absl::Time not_after) override;
  absl::StatusOr<IdentityRecord> GetIdentity(absl::string_view instance_id) override;
  absl::StatusOr<std::vector<IdentityRecord>> ListIdentities(const IdentityFilter& filter) override;
  absl::StatusOr<RevocationEntry> Revoke(RevocationKind kind, absl::string_view target,
                                         absl::string_view reason, absl::Time now) override;
  absl::StatusOr<std::vector<RevocationEntry>> ListRevocations(int64_t after,
                                                               size_t limit) override;
  absl::StatusOr<int64_t> LastRevocationSequence() override;
  absl::StatusOr<size_t> PruneRevocations(absl::Time now) override;
  absl::StatusOr<int64_t> AppendPolicy(absl::string_view source, absl::string_view sha256_hex,
                                       absl::Time created_at) override;
  absl::StatusOr<StoredPolicy> GetPolicy(int64_t version) override;
  absl::StatusOr<std::vector<StoredPolicy>> ListPolicies() override;
  absl::Status InsertToken(const TokenRecord& token) override;
  absl::StatusOr<std::vector<TokenRecord>> ListTokens() override;

  class Db;  // one connection with its prepared statements

 private:
  struct Job;
  explicit SqliteStore(std::string path);
  // Runs `fn` inside the writer's next transaction; returns once that commit is durable.
  absl::Status Write(std::function<absl::Status(Db&)> fn);
  // Runs `fn` on a pooled read connection.
  absl::Status Read(const std::function<absl::Status(Db&)>& fn);
  void WriterLoop();

  const std::string path_;
  std::unique_ptr<Db> writer_db_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;                    // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_
  std::vector<std::unique_ptr<Db>> readers_;  // idle read connections, guarded by mu_
  std::thread writer_;
};

}  // namespace tw::store
