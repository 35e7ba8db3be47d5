// The process's view of a server's revocation log: one Server-Sent Events subscription,
// resumed from the last sequence after a reconnect, with heartbeats proving it is live.
// Identities and verifiers consult it locally; none of its checks calls the server.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "net/https_client.h"
#include "sdk/revocation_stream.h"

namespace trustwarden::internal {

class RevocationWatcher {
 public:
  // The watcher shared by every identity and verifier of this process that trusts
  // `ca_pem` at `server`; started on first use and kept for the life of the process, so
  // identities come and go without resubscribing.
  static std::shared_ptr<RevocationWatcher> Shared(const std::string& server,
                                                   const std::string& ca_pem);

  // Subscribes from sequence 0 (every unpruned entry) on a thread of its own.
  RevocationWatcher(std::string server, std::string ca_pem);
  ~RevocationWatcher();
  RevocationWatcher(const RevocationWatcher&) = delete;
  RevocationWatcher& operator=(const RevocationWatcher&) = delete;

  bool IsRevoked(const std::string& instance_id) const;
  // OK when the stream delivered an event or heartbeat within `bound`; Unavailable with
  // the reason otherwise (fail closed).
  absl::Status CheckFresh(absl::Duration bound) const;
  // Waits until the stream has delivered anything, at most `timeout`; true if it has.
  bool WaitLive(absl::Duration timeout) const;
  // Waits until `instance_id` is known revoked, at most `timeout`; true if it is.
  bool WaitRevoked(const std::string& instance_id, absl::Duration timeout) const;
  // When this watcher learned that `instance_id` is revoked; nullopt if it has not.
  std::optional<absl::Time> LearnedAt(const std::string& instance_id) const;
  // The last sequence received.
  int64_t sequence() const;

 private:
  void Run();
  void Supervise();
  // Consumes stream text; returns false to drop the connection (see RevocationStreamReader).
  bool Consume(absl::string_view text);

  const std::string server_;
  const std::string ca_pem_;
  mutable std::shared_mutex mu_;  // shared by the readers of the state below
  mutable std::condition_variable_any changed_;
  RevocationStreamReader stream_;           // guarded by mu_
  tw::net::HttpsClient* client_ = nullptr;  // the connection being read, for Cancel()
  bool stopping_ = false;
  std::thread reader_;
  std::thread supervisor_;
};

}  // namespace trustwarden::internal
