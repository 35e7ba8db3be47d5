// The HTTP API of API.md over the Authority: routing, JSON encoding, status mapping,
// per-address limits. Transport-free (the HttpServer feeds it parsed requests); the
// revocation stream is served by the HttpServer. Thread-safe; Handle may block on the store.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/bytes.h"
#include "revocation/hub.h"
#include "server/authority.h"
#include "server/metrics.h"
#include "server/rate_limiter.h"
#include "store/store.h"

namespace tw::server {

struct HttpRequest {
  std::string method;
  std::string path;  // without the query
  std::map<std::string, std::string> query;
  std::string authorization;  // the Authorization header
  std::string last_event_id;  // the Last-Event-ID header
  std::string body;
  std::vector<base::Bytes> peer_chain;  // client certificate chain, leaf first
  std::string remote;                   // client address
  std::string request_id;               // for the logs
  std::optional<Caller> caller;         // authenticated already (by Preflight)
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

struct ApiOptions {
  const base::Clock* clock = &base::Clock::System();
  double requests_per_address = 0;       // per second; 0 = unlimited
  double auth_failures_per_address = 0;  // per second; 0 = unlimited
  LedgerService* ledger = nullptr;       // serves the ledger and audit routes when set
};

// Splits "path?a=1&b=2" into the path and percent-decoded parameters. InvalidArgument for
// bad escapes or a repeated parameter.
absl::Status ParseTarget(absl::string_view target, HttpRequest* out);

// The one place Status codes become HTTP: {"error":{"code","message"}}.
HttpResponse ErrorResponse(const absl::Status& status);
// The API error code of `status` ("invalid_argument", ...).
std::string ErrorCode(const absl::Status& status);

// One revocation log entry as JSON (the data of a stream event).
std::string RevocationEntryJson(const revocation::Entry& entry);

class Api {
 public:
  Api(Authority& authority, store::Store& store, revocation::Hub& hub, Metrics& metrics,
      ApiOptions options = {});

  HttpResponse Handle(const HttpRequest& request);

  // For GET /v1/revocations/stream: the sequence to resume after (the Last-Event-ID header
  // or the `after` parameter). InvalidArgument when malformed.
  static absl::StatusOr<int64_t> StreamStart(const HttpRequest& request);
  // The per-address request limit, shared with the stream route. ResourceExhausted.
  absl::Status CheckAddress(const HttpRequest& request);
  // Decides on the headers alone (`request` has no body yet) whether the request may go on:
  // the address limit, and on every route that is not public, credentials present and
  // valid; the caller it authenticated goes to `request.caller`, which Handle then uses.
  // Unauthenticated, PermissionDenied or ResourceExhausted otherwise.
  absl::Status Preflight(HttpRequest& request);
  // A page of the durable revocation log: entries after `after`, ascending, at most `limit`.
  absl::StatusOr<std::vector<revocation::Entry>> RevocationLog(int64_t after, size_t limit);

 private:
  absl::StatusOr<HttpResponse> Route(const HttpRequest& request);
  absl::StatusOr<HttpResponse> LedgerRoute(const HttpRequest& request, const Caller& caller);
  absl::StatusOr<HttpResponse> Trace(absl::string_view event_id);
  absl::StatusOr<Caller> Authenticate(const HttpRequest& request);

  Authority& authority_;
  store::Store& store_;
  revocation::Hub& hub_;
  Metrics& metrics_;
  const ApiOptions options_;
  RateLimiter address_limiter_;
  RateLimiter auth_failure_limiter_;
  const std::string bundle_json_;
};

}  // namespace tw::server
