// HTTPS front end (Boost.Beast over OpenSSL): TLS 1.2/1.3 with optional client
// certificates, keep-alive, request size and time limits, and the revocation event stream.
// Handlers run on a worker pool, off the I/O threads. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/api.h"

namespace tw::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8443;  // 0: any free port
  int io_threads = 2;
  int worker_threads = 32;  // handlers block on signing and on durable commits
  size_t max_body_bytes = 1 << 20;
  absl::Duration request_timeout = absl::Seconds(10);  // to receive a whole request
  absl::Duration heartbeat = absl::Seconds(1);         // revocation stream comments
  size_t max_connections = 4096;                       // open at once; more are closed on accept
  size_t max_subscribers = 10000;                      // revocation streams in total
  int max_subscribers_per_address = 256;
  // Serves Api::HandleBundleEndpoint alone (no API routes, no revocation stream).
  bool bundle_endpoint = false;
};

class HttpServer {
 public:
  // `api`, `hub` and `metrics` must outlive the server.
  HttpServer(Api& api, revocation::Hub& hub, metrics::Metrics& metrics, HttpServerOptions options);
  ~HttpServer();

  // Binds, then serves on background threads with the given certificate chain (PEM,
  // leaf first) and private key (PEM). Unavailable when the address cannot be bound.
  absl::Status Start(absl::string_view chain_pem, absl::string_view key_pem);
  // Replaces the certificate for new connections.
  absl::Status SetCertificate(absl::string_view chain_pem, absl::string_view key_pem);
  uint16_t port() const;
  // Stops accepting, closes connections and joins the threads. Idempotent.
  void Stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tw::server
