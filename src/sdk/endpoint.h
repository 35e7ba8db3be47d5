// How the SDK reaches its server: a Connection resolved (environment defaults applied, the
// bundle loaded), the credential an identity presents over mTLS, JSON POSTs, and a pool of
// kept-alive connections for creation with a token. Not installed; thread-safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "core/bundle.h"
#include "core/x509_verifier.h"
#include "crypto/software_signer.h"
#include "net/https_client.h"
#include "nlohmann/json.hpp"
#include "sdk/revocation_watcher.h"
#include "trustwarden/connection.h"

namespace trustwarden::internal {

// A Connection with its defaults applied and its bundle loaded.
struct Endpoint {
  std::string server;
  std::string token;
  // The trust bundle; a watched endpoint's follows CA rotations (RevocationWatcher::Follow).
  std::shared_ptr<tw::core::BundleSet> bundles;
  std::vector<tw::core::TrustDomain> trust_domains;  // whose TrustWarden attributes count
  std::string spool_dir;
  absl::Duration max_staleness;
  std::shared_ptr<RevocationWatcher> watcher;  // null when not watching
  // The watchers of federated trust domains' revocation streams, by trust domain name
  // (Connection::federated_revocations), and the sets holding their CAs as they rotate.
  std::map<std::string, std::shared_ptr<RevocationWatcher>, std::less<>> foreign_watchers;
  std::vector<std::shared_ptr<tw::core::BundleSet>> foreign_cas;
};

// The watcher whose revocation stream speaks for `id`: our server's for our trust
// domain, a followed federated domain's for its own, null for any other.
const RevocationWatcher* WatcherFor(const Endpoint& endpoint, const tw::core::SpiffeId& id);

// `value` when given, else the environment variable `name` when set and not empty, else
// `fallback`.
std::string Env(const std::string& value, const char* name, absl::string_view fallback);

// The X.509 authorities of the endpoint's own trust domain now, PEM: what its server is
// authenticated by.
std::string CaPem(const Endpoint& endpoint);
// The X.509 authorities of every trust domain the endpoint trusts now (its own and the
// federated ones), PEM: for a TLS stack that checks a peer's chain before our peer check
// binds it to its own domain's bundle (Python's ssl). Never for reaching the server.
std::string TrustedPem(const Endpoint& endpoint);

// `connection` with empty members taken from the environment (TRUSTWARDEN_SERVER, ...) or
// the defaults, and its bundle read. InvalidArgument when the bundle has no X.509
// authority; the error of reading or parsing it otherwise. No revocation watcher.
absl::StatusOr<Endpoint> Resolve(const Connection& connection);
// Resolve(), joined to the process's revocation watcher of the server that measures the
// stream's staleness on `stream_clock` (started on first use).
absl::StatusOr<Endpoint> ResolveWatched(const Connection& connection,
                                        const tw::base::Clock& stream_clock);

// An identity's key and certificate at one moment, for one signed request.
struct Credential {
  // The key lives only in its signer: TLS contexts borrow its OpenSSL key object.
  std::shared_ptr<const tw::crypto::SoftwareSigner> key;
  std::string svid_pem;  // leaf first
  tw::core::VerifiedX509Svid svid;
};

// A new connection to the endpoint's server, presenting `credential` (mTLS) unless null.
absl::StatusOr<std::unique_ptr<tw::net::HttpsClient>> Connect(const Endpoint& endpoint,
                                                              const Credential* credential);

// `value` as JSON text. InvalidArgument when one of its strings is not UTF-8.
absl::StatusOr<std::string> EncodeJson(const nlohmann::json& value);
// The member `key` of a JSON object when it is a string.
std::optional<std::string> StringMember(const nlohmann::json& object, const std::string& key);

// POSTs `body` (JSON text), with the bearer `token` unless empty, and returns the reply
// object of a 2xx. The server's error as ServerError(code, "server: message") when it
// sent one; Unavailable for another reply or when it cannot be reached.
absl::StatusOr<nlohmann::json> PostText(tw::net::HttpsClient& client, const std::string& target,
                                        const std::string& body, const std::string& token = "");
// PostText() of `body` encoded.
absl::StatusOr<nlohmann::json> Post(tw::net::HttpsClient& client, const std::string& target,
                                    const nlohmann::json& body, const std::string& token = "");

// The instance id of a TrustWarden SPIFFE ID (its last path segment).
std::string InstanceOf(const tw::core::SpiffeId& id);

// Kept-alive server connections without a client certificate (creation with a token),
// reused across creations: a TLS handshake per identity would double its cost.
class ConnectionPool {
 public:
  // The process's pool (never destroyed).
  static ConnectionPool& Process();

  // An idle connection to the endpoint's server, or a new one.
  absl::StatusOr<std::unique_ptr<tw::net::HttpsClient>> Take(const Endpoint& endpoint)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Keeps `client`, which served a request well, for the next Take() (up to 8 a server).
  void Give(const Endpoint& endpoint, std::unique_ptr<tw::net::HttpsClient> client)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  // By server and CA.
  std::map<std::pair<std::string, std::string>, std::vector<std::unique_ptr<tw::net::HttpsClient>>>
      idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trustwarden::internal
