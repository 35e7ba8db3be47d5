// A running TrustWarden server: the services (server/services.h) behind the HTTPS listener,
// and the background upkeep (revocation pruning and gap filling, tree heads, TLS certificate
// renewal); the config file and the keys it names. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "ca/rotating_ca.h"
#include "crypto/signer.h"
#include "server/http_server.h"
#include "store/store.h"

namespace tw::server {

struct ServerConfig {
  std::string trust_domain = "trustwarden";
  std::string listen = "127.0.0.1:8443";
  std::string data_dir = "./trustwarden-data";
  std::string store;  // "sqlite:PATH"; empty: sqlite in the data dir
  std::string log_level = "info";
  int threads = 0;          // I/O threads; 0: one per core
  int worker_threads = 32;  // request handlers
  size_t max_body_bytes = 1 << 20;
  absl::Duration request_timeout = absl::Seconds(10);
  absl::Duration sth_interval = absl::Seconds(1);      // signed tree heads, when the tree grew
  absl::Duration rotate_every = absl::ZeroDuration();  // CA rotation on a schedule; 0: by hand
  // The bundle's spiffe_refresh_hint: how often verifiers and federated domains refresh
  // it; a prepared authority is published for three of them before it may sign.
  absl::Duration bundle_refresh_hint = absl::Minutes(5);
  double rate_per_principal = 0;            // issuances per second; 0 = unlimited
  double rate_per_address = 0;              // requests per second; 0 = unlimited
  double auth_failures_per_address = 5;     // failed authentications per second
  double ledger_events_per_instance = 200;  // agent events per second; 0 = unlimited
  size_t max_connections = 4096;            // open at once
  size_t max_stream_subscribers = 10000;    // revocation streams in total
  int max_stream_subscribers_per_address = 256;
  absl::Duration max_instance_lifetime = absl::Hours(24);  // from creation, across renewals
  // Where the signing keys live (crypto/signer_factory.h); empty: the data directory's
  // files (ca.key.pem, jwt.key.pem, ledger.key.pem), created on first start.
  std::string ca_key, jwt_key, ledger_key;
  // Upstream mode: the CA certificate `ca sign-intermediate` made for the CA key, then the
  // chain up to the root (PEM file), installed when the data directory has no CA yet.
  std::string upstream_chain;
  // The SPIFFE bundle endpoint's HOST:PORT (port 0: any free one); empty: none. It serves
  // the bundle with the certificate chain and key of these PEM files (profile https_web),
  // or when they are empty with the server's own X.509-SVID (profile https_spiffe).
  std::string bundle_endpoint, bundle_endpoint_cert, bundle_endpoint_key;
};

// What the server signs with: the CA (X.509- and JWT-SVIDs) and the ledger key (tree heads
// and the server's own events, ECDSA P-256).
struct ServerKeys {
  std::unique_ptr<ca::RotatingCa> ca;
  std::unique_ptr<crypto::Signer> ledger;
};

// Creates the data directory on first start (a CA and a ledger key in software, unless
// the config names keys elsewhere), then opens the keys the config names. FailedPrecondition
// when the CA is another trust domain's or the ledger key is not P-256.
absl::StatusOr<ServerKeys> OpenServerKeys(const ServerConfig& config, const base::Clock& clock);

// Reads a TOML config file over `config`: the keys above at top level, the limits in a
// [limits] table and the key URIs in a [keys] table (ca, jwt, ledger). InvalidArgument naming the
// key for unknown keys or bad values.
absl::Status LoadServerConfig(const std::string& path, ServerConfig* config);

// Splits "HOST:PORT" ("[::1]:8443" for IPv6). InvalidArgument when malformed.
absl::Status SplitHostPort(absl::string_view listen, std::string* host, uint16_t* port);

class Server {
 public:
  // Starts serving with `store` and `keys` (the server owns both), writing the admin token
  // to the data directory when it creates one.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerConfig& config, std::unique_ptr<store::Store> store, ServerKeys keys,
      const base::Clock& clock = base::Clock::System());
  ~Server();

  uint16_t port() const;
  // The bundle endpoint's port; 0 when the server has none.
  uint16_t bundle_endpoint_port() const;
  // The admin token when this start created it; empty otherwise.
  const std::string& new_admin_token() const { return new_admin_token_; }
  // Stops serving and waits for the background work. Idempotent.
  void Stop();

  struct Parts;

 private:
  Server() = default;
  // Waits `timeout` or until Stop; true when stopping.
  bool WaitForStop(absl::Duration timeout);
  void Upkeep();
  // Signs a tree head every config.sth_interval when the ledger grew.
  void SignTreeHeads();
  // Fetches the bundles of federated trust domains as their refresh hints fall due.
  void RefreshFederations();
  absl::Status RenewServerCertificate();

  std::unique_ptr<Parts> parts_;
  std::string new_admin_token_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread upkeep_;
  std::thread tree_heads_;
  std::thread federations_;
};

}  // namespace tw::server
