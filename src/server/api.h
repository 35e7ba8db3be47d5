// The HTTP API of API.md over the authority and the ledger service: a route table (method,
// path pattern, who may call it, handler), per-address limits and JSON encoding. Transport-
// free (the HttpServer feeds it parsed requests; the revocation stream is the HttpServer's).
// Thread-safe; Handle may block on the store.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "authority/authority.h"
#include "base/clock.h"
#include "base/rate_limiter.h"
#include "ledger/service.h"
#include "metrics/metrics.h"
#include "server/http_message.h"

namespace tw::server {

struct ApiOptions {
  const base::Clock* clock = &base::Clock::System();
  double requests_per_address = 0;       // per second; 0 = unlimited
  double auth_failures_per_address = 0;  // per second; 0 = unlimited
  ledger::Service* ledger = nullptr;     // serves the ledger and audit routes when set
};

class Api {
 public:
  // Who may call a route.
  enum class Access {
    kPublic,   // anyone
    kSigned,   // anyone: the body authenticates itself (credentials are checked if sent)
    kCaller,   // a principal's token or an agent's SVID; the handler decides the rest
    kAuditor,  // an admin or auditor token
    kAdmin,    // an admin token
  };
  struct Call;  // a request being handled, with its caller
  using Handler = absl::StatusOr<HttpResponse> (Api::*)(const Call&);
  struct Route {
    absl::string_view method;
    absl::string_view pattern;  // a trailing '*' matches the rest of the path
    Access access;
    Handler handler;
    bool ledger = false;  // only when a ledger service is configured
  };

  // `authority` and `metrics` must outlive the Api.
  Api(authority::Authority& authority, metrics::Metrics& metrics, ApiOptions options = {});

  HttpResponse Handle(const HttpRequest& request);
  // The SPIFFE bundle endpoint (SPIFFE Federation §4-5), on a listener of its own: GET /
  // answers the published bundle as application/json, to anyone (no credentials are
  // asked for); another path is 404, another method 405.
  HttpResponse HandleBundleEndpoint(const HttpRequest& request);

  // For GET /v1/revocations/stream: the sequence to resume after (the Last-Event-ID header
  // or the `after` parameter). InvalidArgument when malformed.
  static absl::StatusOr<int64_t> StreamStart(const HttpRequest& request);
  // The per-address request limit, shared with the stream route. ResourceExhausted.
  absl::Status CheckAddress(const HttpRequest& request);
  // Decides on the headers alone (`request` has no body yet) whether the request may go on:
  // the address limit, and the route's access with the credentials presented; the caller it
  // authenticated goes to `request.caller`, which Handle then uses. Unauthenticated,
  // PermissionDenied or ResourceExhausted otherwise; an unknown route goes on (to its 404).
  absl::Status Preflight(HttpRequest& request);
  // The durable revocation log after `after`, at most `limit` (a stream's backlog).
  absl::StatusOr<std::vector<revocation::Entry>> RevocationLog(int64_t after, size_t limit) {
    return authority_.RevocationLog(after, limit);
  }
  // The published bundle's spiffe_sequence (the revocation stream's heartbeats carry it).
  int64_t BundleSequence() const;
  // Authority::FederationVersion() (the heartbeats carry it too).
  std::string FederationVersion() const;

 private:
  // The route of `request` and the part of its path the pattern's '*' matched. NotFound
  // for an unknown path, Unimplemented for a known path with another method.
  absl::StatusOr<std::pair<const Route*, absl::string_view>> Find(const HttpRequest& r) const;
  // The caller of `request` when `route` lets it through.
  absl::StatusOr<authority::Caller> Admit(const Route& route, const HttpRequest& request);
  absl::StatusOr<authority::Caller> Authenticate(const HttpRequest& request);
  absl::StatusOr<HttpResponse> Dispatch(const HttpRequest& request);

  absl::StatusOr<HttpResponse> Health(const Call& c);
  absl::StatusOr<HttpResponse> MetricsText(const Call& c);
  absl::StatusOr<HttpResponse> Bundle(const Call& c);
  absl::StatusOr<HttpResponse> CreateIdentity(const Call& c);
  absl::StatusOr<HttpResponse> Renew(const Call& c);
  absl::StatusOr<HttpResponse> ListIdentities(const Call& c);
  absl::StatusOr<HttpResponse> GetIdentity(const Call& c);
  absl::StatusOr<HttpResponse> MintJwt(const Call& c);
  absl::StatusOr<HttpResponse> ListRevocations(const Call& c);
  absl::StatusOr<HttpResponse> Revoke(const Call& c);
  absl::StatusOr<HttpResponse> ApplyPolicy(const Call& c);
  absl::StatusOr<HttpResponse> ListPolicies(const Call& c);
  absl::StatusOr<HttpResponse> GetPolicy(const Call& c);
  absl::StatusOr<HttpResponse> ListTokens(const Call& c);
  absl::StatusOr<HttpResponse> TokenSelf(const Call& c);
  absl::StatusOr<HttpResponse> CaStatus(const Call& c);
  absl::StatusOr<HttpResponse> CaHistory(const Call& c);
  absl::StatusOr<HttpResponse> CaPrepare(const Call& c);
  absl::StatusOr<HttpResponse> CaActivate(const Call& c);
  absl::StatusOr<HttpResponse> CaRetire(const Call& c);
  absl::StatusOr<HttpResponse> CaRevokeAuthority(const Call& c);
  absl::StatusOr<HttpResponse> BundleMap(const Call& c);
  absl::StatusOr<HttpResponse> ForeignGrants(const Call& c);
  absl::StatusOr<HttpResponse> ListFederations(const Call& c);
  absl::StatusOr<HttpResponse> AddFederation(const Call& c);
  absl::StatusOr<HttpResponse> RemoveFederation(const Call& c);
  absl::StatusOr<HttpResponse> RefreshFederation(const Call& c);
  absl::StatusOr<HttpResponse> CreateToken(const Call& c);
  absl::StatusOr<HttpResponse> RevokeToken(const Call& c);
  absl::StatusOr<HttpResponse> LedgerKey(const Call& c);
  absl::StatusOr<HttpResponse> AppendEvents(const Call& c);
  absl::StatusOr<HttpResponse> SignTreeHead(const Call& c);
  absl::StatusOr<HttpResponse> GetTreeHead(const Call& c);
  absl::StatusOr<HttpResponse> ListTreeHeads(const Call& c);
  absl::StatusOr<HttpResponse> InclusionProof(const Call& c);
  absl::StatusOr<HttpResponse> ConsistencyProof(const Call& c);
  absl::StatusOr<HttpResponse> Entries(const Call& c);
  absl::StatusOr<HttpResponse> Export(const Call& c);
  absl::StatusOr<HttpResponse> QueryEvents(const Call& c);
  absl::StatusOr<HttpResponse> Trace(const Call& c);

  static const Route kRoutes[];

  authority::Authority& authority_;
  metrics::Metrics& metrics_;
  const ApiOptions options_;
  base::RateLimiter address_limiter_;
  base::RateLimiter auth_failure_limiter_;
  // The published bundle as JSON, made again when a rotation changed it.
  std::string BundleJson() const;
  mutable absl::Mutex bundle_mu_;
  mutable std::shared_ptr<const core::Bundle> bundle_ ABSL_GUARDED_BY(bundle_mu_);
  mutable std::string bundle_json_ ABSL_GUARDED_BY(bundle_mu_);
};

}  // namespace tw::server
