// A running TrustWarden server: the data directory (CA, bundle, admin token), the store,
// the Authority, the HTTPS API and the background upkeep (pruning, TLS certificate
// renewal). Thread-safe.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "base/clock.h"
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
  absl::Duration sth_interval = absl::Seconds(1);  // signed tree heads, when the tree grew
  double rate_per_principal = 0;                   // issuances per second; 0 = unlimited
  double rate_per_address = 0;                     // requests per second; 0 = unlimited
  double auth_failures_per_address = 5;            // failed authentications per second
  double ledger_events_per_instance = 200;         // agent events per second; 0 = unlimited
  size_t max_connections = 4096;                   // open at once
  size_t max_stream_subscribers = 10000;           // revocation streams in total
  int max_stream_subscribers_per_address = 256;
  absl::Duration max_instance_lifetime = absl::Hours(24);  // from creation, across renewals
};

// Reads a TOML config file over `config`: the keys above at top level, and the limits
// in a [limits] table. InvalidArgument naming the key for unknown keys or bad values.
absl::Status LoadServerConfig(const std::string& path, ServerConfig* config);

// Splits "HOST:PORT" ("[::1]:8443" for IPv6). InvalidArgument when malformed.
absl::Status SplitHostPort(absl::string_view listen, std::string* host, uint16_t* port);

class Server {
 public:
  // Creates the data directory on first start (CA, bundle.json, bundle.pem, admin token),
  // loads it afterwards, and starts serving. The server owns `store`.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerConfig& config, std::unique_ptr<store::Store> store,
      const base::Clock& clock = base::Clock::System());
  ~Server();

  uint16_t port() const;
  // The admin token when this start created it; empty otherwise.
  const std::string& new_admin_token() const { return new_admin_token_; }
  // Stops serving and waits for the background work. Idempotent.
  void Stop();

  struct Parts;

 private:
  Server() = default;
  void Upkeep();
  // Signs a tree head every config.sth_interval when the ledger grew.
  void SignTreeHeads();
  absl::Status RenewServerCertificate();

  std::unique_ptr<Parts> parts_;
  std::string new_admin_token_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread upkeep_;
  std::thread tree_heads_;
};

}  // namespace tw::server
