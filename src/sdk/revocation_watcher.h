// The process's view of a server's revocation log: one Server-Sent Events subscription,
// resumed from the last sequence after a reconnect, with heartbeats proving it is live.
// Identities and verifiers consult it locally; none of its checks calls the server.
// Thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "core/bundle.h"
#include "core/foreign_grant.h"
#include "net/https_client.h"
#include "sdk/revocation_stream.h"

namespace trustwarden::internal {

class RevocationWatcher {
 public:
  // The watcher shared by every identity and verifier of this process that trusts
  // `ca_pem` at `server` and measures staleness on `clock`; started on first use and kept
  // for the life of the process (so must `clock` be), so identities come and go without
  // resubscribing.
  static std::shared_ptr<RevocationWatcher> Shared(const std::string& server,
                                                   const std::string& ca_pem,
                                                   const tw::base::Clock& clock);

  // Subscribes from sequence 0 (every unpruned entry) on a thread of its own, ended at
  // destruction or when the process exits. The stream's silence is measured on `clock`;
  // reconnections wait in real time.
  RevocationWatcher(std::string server, std::string ca_pem,
                    const tw::base::Clock& clock = tw::base::Clock::Monotonic());
  ~RevocationWatcher();

  // Keeps `bundles` (a SPIFFE bundle of trust domain `td` with a spiffe_sequence; a PEM
  // bundle stays as it is) up to date: when a heartbeat announces a newer bundle (a CA
  // rotation), the watcher fetches GET /v1/bundle over TLS verified with the authorities it
  // trusts, and puts it in every followed set it is newer than; its own stream then trusts
  // the new authorities too. Followers are held weakly.
  //
  // Federation: the followed sets also hold the bundle of every trust domain the server
  // federates with (GET /v1/bundles, fetched again whenever a heartbeat's federation
  // version changes), each bound to its own trust domain, and lose a domain the server no
  // longer federates with.
  void Follow(const std::shared_ptr<tw::core::BundleSet>& bundles, const tw::core::TrustDomain& td)
      ABSL_LOCKS_EXCLUDED(follow_mu_);
  // What the server's policy lets agents of federated trust domains do on our resources
  // (GET /v1/federation/grants, kept as the bundles are); empty before the first fetch.
  std::shared_ptr<const std::vector<tw::core::ForeignGrant>> ForeignGrants() const
      ABSL_LOCKS_EXCLUDED(follow_mu_);
  // Waits until the stream has delivered anything, or its first connection ended without,
  // at most `timeout`; true if it delivered.
  bool WaitConnected(absl::Duration timeout) const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until the federated bundles and grants announced when the stream connected have
  // been fetched, at most `timeout`; true if they have. False at once when the stream's
  // first connection failed.
  bool WaitFederation(absl::Duration timeout) const ABSL_LOCKS_EXCLUDED(follow_mu_);
  RevocationWatcher(const RevocationWatcher&) = delete;
  RevocationWatcher& operator=(const RevocationWatcher&) = delete;

  bool IsRevoked(const std::string& instance_id) const ABSL_LOCKS_EXCLUDED(mu_);
  // OK when the stream delivered an event or heartbeat within `bound`; Unavailable with
  // the reason otherwise (fail closed).
  absl::Status CheckFresh(absl::Duration bound) const ABSL_LOCKS_EXCLUDED(mu_);
  // CheckFresh(bound) and IsRevoked(instance_id) under one lock, as a verification asks
  // them each time.
  struct Standing {
    absl::Status fresh;
    bool revoked;
  };
  Standing StandingOf(const std::string& instance_id, absl::Duration bound) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until the stream has delivered anything, at most `timeout`; true if it has.
  bool WaitLive(absl::Duration timeout) const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until `instance_id` is known revoked, at most `timeout`; true if it is.
  bool WaitRevoked(const std::string& instance_id, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // When this watcher learned that `instance_id` is revoked (wall clock); nullopt if it
  // has not.
  std::optional<absl::Time> LearnedAt(const std::string& instance_id) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // The last sequence received.
  int64_t sequence() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Status FreshLocked(absl::Duration bound) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Ends both threads and waits for them; idempotent (the destructor or the process's exit).
  void Stop() ABSL_LOCKS_EXCLUDED(stop_mu_, mu_);
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  void Supervise() ABSL_LOCKS_EXCLUDED(mu_);
  // Consumes stream text; returns false to drop the connection (see RevocationStreamReader).
  bool Consume(absl::string_view text) ABSL_LOCKS_EXCLUDED(mu_);
  // Fetches and hands out the bundle a heartbeat announced, when a follower is older.
  void RefreshBundle() ABSL_LOCKS_EXCLUDED(mu_, follow_mu_);
  // Fetches the federated bundles and grants when the announced federation version is not
  // the one fetched (again a second after a failure), and hands the bundles out.
  void RefreshFederation() ABSL_LOCKS_EXCLUDED(mu_, follow_mu_);
  // Registers the client of a fetch for Stop() to cancel; false when stopping.
  bool StartFetch(tw::net::HttpsClient* client) ABSL_LOCKS_EXCLUDED(mu_);
  void EndFetch() ABSL_LOCKS_EXCLUDED(mu_);

  std::string CaPem() const ABSL_LOCKS_EXCLUDED(follow_mu_);

  const std::string server_;
  mutable absl::Mutex follow_mu_;
  std::string ca_pem_ ABSL_GUARDED_BY(follow_mu_);  // what the stream's connections trust
  struct Follower {
    std::weak_ptr<tw::core::BundleSet> bundles;
    tw::core::TrustDomain td;
  };
  std::vector<Follower> followers_ ABSL_GUARDED_BY(follow_mu_);
  // Puts `federated_` into the followed set `f`, keeping its own trust domain's bundle.
  void Distribute(const Follower& f) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(follow_mu_);
  uint64_t fetched_sequence_ ABSL_GUARDED_BY(follow_mu_) = 0;
  std::string fetched_federation_ ABSL_GUARDED_BY(follow_mu_);  // the version fetched
  std::vector<tw::core::Bundle> federated_ ABSL_GUARDED_BY(follow_mu_);
  std::shared_ptr<const std::vector<tw::core::ForeignGrant>> grants_ ABSL_GUARDED_BY(follow_mu_);
  const tw::base::Clock& clock_;
  // Readers share it: verifiers on every core consult the stream at once. The threads
  // sleep on stopping_, not on it: a waiter on a Mutex slows every unlock.
  mutable absl::Mutex mu_;
  RevocationStreamReader stream_ ABSL_GUARDED_BY(mu_);
  tw::net::HttpsClient* client_ ABSL_GUARDED_BY(mu_) = nullptr;    // being read, for Cancel()
  int64_t connections_ended_ ABSL_GUARDED_BY(mu_) = 0;             // or failed to be made
  tw::net::HttpsClient* fetching_ ABSL_GUARDED_BY(mu_) = nullptr;  // a bundle fetch, for Stop()
  absl::Time federation_retry_at_ = absl::InfinitePast();          // the supervisor's alone
  absl::Notification stopping_;
  absl::Mutex stop_mu_;  // one Stop() at a time
  std::thread reader_;
  std::thread supervisor_;
  std::optional<uint64_t> exit_stop_;  // this watcher's stop at process exit
};

}  // namespace trustwarden::internal
