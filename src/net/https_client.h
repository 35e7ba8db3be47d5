// A small blocking HTTPS client (Boost.Beast) for the CLI, the SDK, tests and the load
// generator: one keep-alive connection, server verified against a trust bundle and by
// host name, optional client certificate (mTLS). Not thread-safe: one per thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/bytes.h"
#include "crypto/software_signer.h"

namespace tw::net {

struct ClientOptions {
  std::string server;            // https://HOST:PORT
  std::string ca_pem;            // trusted CA certificates (PEM)
  std::string client_chain_pem;  // optional client certificate chain, leaf first
  std::shared_ptr<const crypto::SoftwareSigner> client_key;  // its private key
  absl::Duration connect_timeout = absl::Seconds(5);         // TCP and TLS handshake
  absl::Duration timeout = absl::Seconds(30);                // each request, once connected
  // false: the server's certificate is not checked at all (ca_pem unused). Only for trust
  // bootstrap, whose caller checks what it fetched against a fingerprint it was given.
  bool verify_peer = true;
  // Trust the system's CA certificates too (OpenSSL's default paths, SSL_CERT_FILE): for
  // servers the Web PKI authenticates. ca_pem may then be empty.
  bool system_roots = false;
  // When set, the server is authenticated by this check of its certificate chain (leaf
  // first, DER) alone, instead of by OpenSSL's chain verification and its host name (e.g.
  // SPIFFE rules and an exact SPIFFE ID). Its error fails the connection.
  std::function<absl::Status(const std::vector<base::Bytes>& chain)> check_peer;
};

struct Response {
  int status = 0;
  std::string body;
  std::string content_type;
  std::string date;      // the Date header (RFC 9110 IMF-fixdate), when the server sent one
  std::string location;  // the Location header (a redirect's target), when sent
};

using Headers = std::vector<std::pair<std::string, std::string>>;

class HttpsClient {
 public:
  // InvalidArgument for a malformed URL or unusable PEM.
  static absl::StatusOr<std::unique_ptr<HttpsClient>> Create(const ClientOptions& options);
  ~HttpsClient();

  // Sends one request and reads the whole response. Unavailable when the server cannot
  // be reached or the TLS handshake fails; DeadlineExceeded on timeout.
  absl::StatusOr<Response> Request(absl::string_view method, absl::string_view target,
                                   absl::string_view body = {}, const Headers& headers = {});

  // Opens `target` as a text/event-stream and calls `on_data` with each chunk of body
  // text until it returns false, the server closes, or `timeout` passes without data.
  absl::Status Stream(absl::string_view target, const Headers& headers,
                      const std::function<bool(absl::string_view)>& on_data);
  // Ends a Stream() in progress, or the next one, from any thread: it returns Cancelled.
  void Cancel();

  struct Impl;

 private:
  explicit HttpsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses "https://HOST[:PORT][/]" (default port 443). InvalidArgument otherwise.
absl::Status ParseServerUrl(absl::string_view url, std::string* host, std::string* port);

}  // namespace tw::net
