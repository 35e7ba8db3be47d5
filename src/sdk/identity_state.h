// The SDK's internals shared by its parts: the resolved connection, one identity's state
// and its ledger recorder. Not installed.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/bundle.h"
#include "core/x509_verifier.h"
#include "crypto/software_signer.h"
#include "ledger/event.h"
#include "net/https_client.h"
#include "nlohmann/json.hpp"
#include "sdk/revocation_watcher.h"
#include "sdk/spool.h"
#include "trustwarden/agent_identity.h"

namespace trustwarden::internal {

// Throws Error with the status's canonical code and message.
[[noreturn]] void Throw(const absl::Status& s);
template <typename T>
T Check(absl::StatusOr<T> v) {
  if (!v.ok()) Throw(v.status());
  return *std::move(v);
}
inline void Check(const absl::Status& s) {
  if (!s.ok()) Throw(s);
}

// A Connection with its defaults applied and its bundle loaded.
struct Endpoint {
  std::string server;
  std::string token;
  std::string ca_pem;  // the bundle's X.509 authorities
  std::shared_ptr<tw::core::BundleSet> bundles;
  std::vector<tw::core::TrustDomain> trust_domains;  // whose TrustWarden attributes count
  std::string spool_dir;
  absl::Duration max_staleness;
  std::shared_ptr<RevocationWatcher> watcher;  // null when not watching
};
// Starts (or joins) the process's revocation watcher of the server when `watch`.
Endpoint Resolve(const Connection& connection, bool watch = true);

// POSTs `body` and returns the reply's JSON; throws Error with the server's code and
// message.
nlohmann::json Post(tw::net::HttpsClient& client, const std::string& target,
                    const std::string& body, const std::string& token = "");

// The instance id of a TrustWarden SPIFFE ID (its last path segment).
std::string InstanceOf(const tw::core::SpiffeId& id);

}  // namespace trustwarden::internal

namespace trustwarden {

// One instance: its key and certificate (replaced together on renewal), the renewer, and
// the ledger recorder (group commit to the server, the spool while it is unreachable).
struct AgentIdentity::State {
  internal::Endpoint endpoint;
  mutable std::mutex mu;
  std::condition_variable cv;
  // The key lives only in its signer: TLS contexts borrow its OpenSSL key object.
  std::shared_ptr<const tw::crypto::SoftwareSigner> key;  // guarded by mu, with the below
  std::string svid_pem;
  std::optional<tw::core::VerifiedX509Svid> svid;  // set once created
  absl::Time issued_at;  // when the current certificate arrived (notBefore is backdated)
  std::string instance_id;
  std::map<std::string, std::pair<std::string, absl::Time>> jwts;  // by audience
  bool revoked = false;
  bool closed = false;
  bool detached = false;
  bool stopping = false;
  bool spool_pending = false;  // the spool holds records
  bool spool_kick = false;     // records were just spooled: the renewer starts shipping
  std::thread renewer;
  std::unique_ptr<tw::crypto::SoftwareSigner> renewal_key;  // the renewer's, until it succeeds

  // The key and certificate at one moment, for one signed request.
  struct Credential {
    std::shared_ptr<const tw::crypto::SoftwareSigner> key;
    std::string svid_pem;
    tw::core::VerifiedX509Svid svid;
  };
  Credential Current() const;
  std::unique_ptr<tw::net::HttpsClient> Client(const Credential& c) const;
  // Revoked by the server, as the flag or the revocation stream says.
  bool IsRevoked() const;

  void Adopt(const nlohmann::json& reply, std::unique_ptr<tw::crypto::SoftwareSigner> new_key);
  void Renew();
  void RenewLoop();
  absl::Time RenewalTime(std::mt19937_64& rng) const;
  void StopRenewal();

  // An event about this instance, as of the credential `c`.
  static tw::ledger::Event SubjectEvent(const Credential& c, std::string type);
  // Signs `event` with `c`'s key and stores it durably: in the ledger, or in the spool
  // when the server is unreachable. Concurrent calls are signed and sent as one batch.
  void Record(const Credential& c, const tw::ledger::Event& event);
  // Record(), except that the server refusing the instance marks it revoked and returns
  // false instead of throwing.
  bool RecordUnlessRefused(const Credential& c, const tw::ledger::Event& event);
  // Delivers spooled records (this instance's, and those a crashed process left).
  void ShipSpool();

 private:
  struct Pending {
    std::string bytes;             // the encoded event
    const Credential* credential;  // signs it; the caller waits, keeping it alive
    bool done = false;
    std::string error_code, error_message;
  };
  void ShipBatch(const Credential& c, const std::vector<Pending*>& batch);
  // The kept-alive ledger connection of credential `c`. Called with ship_mu held.
  tw::net::HttpsClient& LedgerClient(const Credential& c);
  void Send(const Credential& c, const std::string& body, const std::string& record);
  size_t Deliver(internal::Spool& spool, const Credential& c);

  std::mutex queue_mu;
  std::deque<Pending*> queue;  // guarded by queue_mu
  std::mutex ship_mu;          // held by the batch leader; guards the below
  std::unique_ptr<tw::net::HttpsClient> ledger_client;
  std::string ledger_client_serial;
  std::unique_ptr<internal::Spool> spool;
};

}  // namespace trustwarden

namespace trustwarden::internal {

// Reaches an identity's state from the SDK's other parts.
struct Access {
  static const std::shared_ptr<AgentIdentity::State>& Of(const AgentIdentity& a) {
    return a.state_;
  }
};

}  // namespace trustwarden::internal
