// Stores an identity's ledger events durably, signed by its own key: concurrent events
// are signed and sent as one batch (group commit), and while the server is unreachable
// they go to the spool, delivered in order later. Not installed; thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ledger/event.h"
#include "net/https_client.h"
#include "sdk/endpoint.h"
#include "sdk/spool.h"

namespace trustwarden::internal {

// An event of `type` about the instance of `c` (its signer), at `time`.
tw::ledger::Event SubjectEvent(const Credential& c, std::string type, absl::Time time);

class LedgerRecorder {
 public:
  // Records for instance `instance_id` of `endpoint` (which must outlive the recorder),
  // spooling to the endpoint's spool directory; calls `spooled` whenever it has spooled
  // a record, which then waits for ShipSpool().
  LedgerRecorder(const Endpoint& endpoint, std::string instance_id, std::function<void()> spooled);
  LedgerRecorder(const LedgerRecorder&) = delete;
  LedgerRecorder& operator=(const LedgerRecorder&) = delete;

  // Signs `event` with `c`'s key and stores it: in the ledger, or durably in the spool when
  // the server is unreachable (or records wait there already, to keep their order).
  // Concurrent calls are signed and sent as one batch; `c` must stay alive until this
  // returns. InvalidArgument for a malformed event; the server's refusal as it gave it
  // (PermissionDenied: the instance is revoked); Unavailable when neither the server nor
  // the spool takes it.
  absl::Status Record(const Credential& c, const tw::ledger::Event& event)
      ABSL_LOCKS_EXCLUDED(ship_mu_, queue_mu_);
  // Delivers spooled records with `c`: this instance's, and those a crashed process left.
  // True while some of this instance's remain.
  bool ShipSpool(const Credential& c) ABSL_LOCKS_EXCLUDED(ship_mu_);

 private:
  struct Pending {
    std::string bytes;             // the encoded event
    const Credential* credential;  // signs it; the caller waits, keeping it alive
    bool done = false;             // with `result`, guarded by queue_mu_
    absl::Status result;
  };
  // Signs and sends `batch` (one credential's events), then gives each its result.
  void ShipBatch(const std::vector<Pending*>& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ship_mu_)
      ABSL_LOCKS_EXCLUDED(queue_mu_);
  absl::Status SignAndSend(const Credential& c, const std::vector<std::string>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ship_mu_);
  // `body` to the server when nothing waits in the spool; `record` to the spool when the
  // server cannot be reached.
  absl::Status Send(const Credential& c, const std::string& body, const std::string& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ship_mu_);
  // The kept-alive ledger connection of credential `c`.
  absl::StatusOr<tw::net::HttpsClient*> LedgerClient(const Credential& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ship_mu_);
  // Sends `spool`'s records in order until one fails to go through; drops those delivered
  // (or found delivered already).
  void Deliver(Spool& spool, const Credential& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ship_mu_);

  const Endpoint& endpoint_;
  const std::string instance_id_;
  const std::function<void()> spooled_;

  absl::Mutex ship_mu_;  // held by the batch leader
  std::unique_ptr<tw::net::HttpsClient> ledger_client_ ABSL_GUARDED_BY(ship_mu_);
  std::string ledger_client_serial_ ABSL_GUARDED_BY(ship_mu_);
  std::unique_ptr<Spool> spool_ ABSL_GUARDED_BY(ship_mu_);

  absl::Mutex queue_mu_ ABSL_ACQUIRED_AFTER(ship_mu_);
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(queue_mu_);
};

}  // namespace trustwarden::internal
