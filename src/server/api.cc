#include "server/api.h"

#include <boost/url/parse.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "core/certificate.h"
#include "ledger/merkle.h"
#include "server/encode.h"
#include "server/requests.h"
#include "spdlog/spdlog.h"

namespace tw::server {
namespace {

using authority::Caller;
using nlohmann::json;

constexpr uint64_t kMaxEntries = 1000;        // per /v1/ledger/entries page
constexpr int64_t kMaxRevocationPage = 1000;  // per GET /v1/revocations
constexpr uint64_t kMaxExport = 10000;        // per /v1/ledger/export segment

absl::StatusOr<int64_t> ParseNumber(absl::string_view name, absl::string_view text) {
  int64_t n;
  if (!absl::SimpleAtoi(text, &n) || n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" must be a non-negative integer"));
  }
  return n;
}

// RFC 3339 ("2026-11-23T10:00:00Z") or Unix milliseconds.
absl::StatusOr<int64_t> ParseTimeMs(absl::string_view name, absl::string_view text) {
  int64_t ms;
  if (absl::SimpleAtoi(text, &ms)) return ms;
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" must be an RFC 3339 time or Unix milliseconds"));
  }
  return absl::ToUnixMillis(t);
}

// The optional non-negative integer parameter `name`.
absl::StatusOr<std::optional<uint64_t>> Number(const HttpRequest& r, const char* name) {
  auto it = r.query.find(name);
  if (it == r.query.end()) return std::optional<uint64_t>();
  TW_ASSIGN_OR_RETURN(int64_t n, ParseNumber(name, it->second));
  return std::optional<uint64_t>(static_cast<uint64_t>(n));
}

absl::StatusOr<uint64_t> Required(const HttpRequest& r, const char* name) {
  TW_ASSIGN_OR_RETURN(std::optional<uint64_t> n, Number(r, name));
  if (!n) return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is required"));
  return *n;
}

absl::Status UnknownParameter(absl::string_view key) {
  return absl::InvalidArgumentError(absl::StrCat("unknown parameter ", base::Quote(key)));
}

}  // namespace

absl::Status ParseTarget(absl::string_view target, HttpRequest* out) {
  out->path.clear();
  out->query.clear();
  // RFC 9112 §3.2: origin-form, or absolute-form (which a server must accept).
  const boost::core::string_view text(target.data(), target.size());
  auto parsed = absl::StartsWith(target, "/") ? boost::urls::parse_origin_form(text)
                                              : boost::urls::parse_absolute_uri(text);
  if (!parsed) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request target ", base::Quote(target), " is not a valid URI"));
  }
  out->path = parsed->path();
  if (out->path.empty()) out->path = "/";
  if (!base::IsUtf8(out->path)) {
    return absl::InvalidArgumentError("the request path is not UTF-8 once percent-decoded");
  }
  for (boost::urls::param p : parsed->params()) {  // decoded, '+' as a space
    std::string key = std::move(p.key), value = std::move(p.value);
    if (!base::IsUtf8(key) || !base::IsUtf8(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter ", base::Quote(key), " is not UTF-8 once percent-decoded"));
    }
    auto [it, inserted] = out->query.emplace(std::move(key), std::move(value));
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter ", base::Quote(it->first), " is repeated"));
    }
  }
  return absl::OkStatus();
}

struct Api::Call {
  const HttpRequest& http;
  const Caller& caller;
  absl::string_view tail;  // what the pattern's '*' matched
};

using Access = Api::Access;

const Api::Route Api::kRoutes[] = {
    {"GET", "/healthz", Access::kPublic, &Api::Health},
    {"GET", "/metrics", Access::kPublic, &Api::MetricsText},
    {"GET", "/v1/bundle", Access::kPublic, &Api::Bundle},
    {"POST", "/v1/identities", Access::kCaller, &Api::CreateIdentity},
    {"GET", "/v1/identities", Access::kAdmin, &Api::ListIdentities},
    {"POST", "/v1/identities/renew", Access::kCaller, &Api::Renew},
    {"GET", "/v1/identities/*", Access::kAdmin, &Api::GetIdentity},
    {"POST", "/v1/jwt-svids", Access::kCaller, &Api::MintJwt},
    {"GET", "/v1/revocations", Access::kPublic, &Api::ListRevocations},
    {"POST", "/v1/revocations", Access::kCaller, &Api::Revoke},
    {"POST", "/v1/policies", Access::kAdmin, &Api::ApplyPolicy},
    {"GET", "/v1/policies", Access::kAdmin, &Api::ListPolicies},
    {"GET", "/v1/policies/*", Access::kAdmin, &Api::GetPolicy},
    {"GET", "/v1/tokens", Access::kAdmin, &Api::ListTokens},
    {"GET", "/v1/ca", Access::kAdmin, &Api::CaStatus},
    {"GET", "/v1/ca/history", Access::kAuditor, &Api::CaHistory},
    {"POST", "/v1/ca/prepare", Access::kAdmin, &Api::CaPrepare},
    {"POST", "/v1/ca/activate", Access::kAdmin, &Api::CaActivate},
    {"POST", "/v1/ca/retire", Access::kAdmin, &Api::CaRetire},
    {"POST", "/v1/ca/revoke-authority", Access::kAdmin, &Api::CaRevokeAuthority},
    {"GET", "/v1/bundles", Access::kPublic, &Api::BundleMap},
    {"GET", "/v1/federation", Access::kAdmin, &Api::ListFederations},
    {"GET", "/v1/federation/grants", Access::kPublic, &Api::ForeignGrants},
    {"POST", "/v1/federation", Access::kAdmin, &Api::AddFederation},
    {"DELETE", "/v1/federation/*", Access::kAdmin, &Api::RemoveFederation},
    {"POST", "/v1/federation/*", Access::kAdmin, &Api::RefreshFederation},
    {"GET", "/v1/tokens/self", Access::kCaller, &Api::TokenSelf},
    {"POST", "/v1/tokens", Access::kAdmin, &Api::CreateToken},
    {"DELETE", "/v1/tokens/*", Access::kAdmin, &Api::RevokeToken},
    {"GET", "/v1/ledger/key", Access::kPublic, &Api::LedgerKey, true},
    {"POST", "/v1/ledger/events", Access::kSigned, &Api::AppendEvents, true},
    {"POST", "/v1/ledger/sth", Access::kAdmin, &Api::SignTreeHead, true},
    {"GET", "/v1/ledger/sth", Access::kAuditor, &Api::GetTreeHead, true},
    {"GET", "/v1/ledger/sths", Access::kAuditor, &Api::ListTreeHeads, true},
    {"GET", "/v1/ledger/proof/inclusion", Access::kAuditor, &Api::InclusionProof, true},
    {"GET", "/v1/ledger/proof/consistency", Access::kAuditor, &Api::ConsistencyProof, true},
    {"GET", "/v1/ledger/entries", Access::kAuditor, &Api::Entries, true},
    {"GET", "/v1/ledger/export", Access::kAuditor, &Api::Export, true},
    {"GET", "/v1/audit/events", Access::kAuditor, &Api::QueryEvents, true},
    {"GET", "/v1/audit/trace/*", Access::kAuditor, &Api::Trace, true},
};

Api::Api(authority::Authority& authority, metrics::Metrics& metrics, ApiOptions options)
    : authority_(authority),
      metrics_(metrics),
      options_(options),
      address_limiter_(options.requests_per_address, options.requests_per_address),
      auth_failure_limiter_(options.auth_failures_per_address,
                            options.auth_failures_per_address * 5) {}

int64_t Api::BundleSequence() const { return authority_.ca().bundle()->sequence().value_or(0); }

std::string Api::FederationVersion() const { return authority_.FederationVersion(); }

std::string Api::BundleJson() const {
  std::shared_ptr<const core::Bundle> bundle = authority_.ca().bundle();
  absl::MutexLock lock(&bundle_mu_);
  if (bundle != bundle_) {
    bundle_json_ = bundle->ToJson();
    bundle_ = std::move(bundle);
  }
  return bundle_json_;
}

absl::StatusOr<int64_t> Api::StreamStart(const HttpRequest& request) {
  if (!request.last_event_id.empty()) return ParseNumber("Last-Event-ID", request.last_event_id);
  auto it = request.query.find("after");
  return it == request.query.end() ? int64_t{0} : ParseNumber("after", it->second);
}

absl::Status Api::CheckAddress(const HttpRequest& request) {
  if (!address_limiter_.Allow(request.remote, options_.clock->Now())) {
    return absl::ResourceExhaustedError("too many requests from this address");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<const Api::Route*, absl::string_view>> Api::Find(
    const HttpRequest& r) const {
  // Exact patterns first, so that a wildcard never takes a path a fixed route owns.
  for (bool wildcard : {false, true}) {
    bool path_known = false;
    for (const Route& route : kRoutes) {
      if (route.ledger && options_.ledger == nullptr) continue;
      absl::string_view pattern = route.pattern, tail;
      const bool has_wildcard = absl::ConsumeSuffix(&pattern, "*");
      if (has_wildcard != wildcard) continue;
      if (wildcard ? !absl::StartsWith(r.path, pattern) : r.path != pattern) continue;
      if (wildcard) tail = absl::string_view(r.path).substr(pattern.size());
      path_known = true;
      if (route.method == r.method) return std::make_pair(&route, tail);
    }
    if (path_known) return absl::UnimplementedError("method not allowed on this route");
  }
  return absl::NotFoundError(
      absl::StrCat("no route ", absl::CHexEscape(r.method), " ", base::Quote(r.path)));
}

absl::StatusOr<Caller> Api::Authenticate(const HttpRequest& request) {
  absl::string_view bearer = request.authorization;
  absl::StatusOr<Caller> caller =
      absl::UnauthenticatedError("the Authorization header must be \"Bearer TOKEN\"");
  if (bearer.empty() || absl::ConsumePrefix(&bearer, "Bearer ")) {
    caller = authority_.Authenticate(bearer, request.peer_chain);
  }
  // Wrong credentials count against the address, absent ones do not; a valid token is
  // never refused, however many wrong ones came from the same address.
  if (absl::IsUnauthenticated(caller.status()) &&
      !auth_failure_limiter_.Allow(request.remote, options_.clock->Now())) {
    return absl::ResourceExhaustedError("too many failed authentications from this address");
  }
  return caller;
}

absl::StatusOr<Caller> Api::Admit(const Route& route, const HttpRequest& request) {
  if (route.access == Access::kPublic) return Caller{};
  TW_ASSIGN_OR_RETURN(Caller caller, request.caller ? absl::StatusOr<Caller>(*request.caller)
                                                    : Authenticate(request));
  if (route.access == Access::kSigned) return caller;
  if (caller.principal.empty() && !caller.svid) {
    if (absl::IsPermissionDenied(caller.svid_error)) return caller.svid_error;
    return absl::UnauthenticatedError(
        "this route needs a token (Authorization: Bearer, e.g. $TRUSTWARDEN_TOKEN) or an "
        "agent's SVID as client certificate");
  }
  if (route.access == Access::kAdmin) TW_RETURN_IF_ERROR(authority_.RequireAdmin(caller));
  if (route.access == Access::kAuditor) TW_RETURN_IF_ERROR(authority_.RequireAuditor(caller));
  return caller;
}

absl::Status Api::Preflight(HttpRequest& request) {
  absl::Status s;
  if (!address_limiter_.HasToken(request.remote, options_.clock->Now())) {
    s = absl::ResourceExhaustedError("too many requests from this address");
  } else if (auto found = Find(request); found.ok() && found->first->access != Access::kPublic) {
    absl::StatusOr<Caller> caller = Admit(*found->first, request);
    if (caller.ok()) {
      request.caller = *std::move(caller);
    } else {
      s = caller.status();
    }
  }
  if (!s.ok()) {
    address_limiter_.Allow(request.remote, options_.clock->Now());  // refusals count too
    metrics_.RecordRequest();
    metrics_.RecordError(s.code());
  }
  return s;
}

HttpResponse Api::Handle(const HttpRequest& request) {
  metrics_.RecordRequest();
  absl::Status allowed = CheckAddress(request);
  absl::StatusOr<HttpResponse> response = absl::InternalError("unset");
  try {
    response = allowed.ok() ? Dispatch(request) : allowed;
  } catch (const std::exception& e) {
    // Our code does not throw; a library did (an allocation, a JSON type error).
    spdlog::error("request_id={} handler threw: {}", request.request_id,
                  base::Quote(e.what(), 512));
    response = absl::InternalError("handler threw");
  }
  if (response.ok()) return *std::move(response);
  metrics_.RecordError(response.status().code());
  return ErrorResponse(response.status());
}

HttpResponse Api::HandleBundleEndpoint(const HttpRequest& request) {
  metrics_.RecordRequest();
  absl::Status refused = CheckAddress(request);
  if (refused.ok() && request.path != "/") {
    refused = absl::NotFoundError("the bundle endpoint serves / alone");
  } else if (refused.ok() && request.method != "GET") {
    refused = absl::UnimplementedError("the bundle endpoint answers GET alone");
  }
  if (!refused.ok()) {
    metrics_.RecordError(refused.code());
    return ErrorResponse(refused);
  }
  return HttpResponse{200, BundleJson(), "application/json"};
}

absl::StatusOr<HttpResponse> Api::Dispatch(const HttpRequest& request) {
  TW_ASSIGN_OR_RETURN(auto found, Find(request));
  const auto [route, tail] = found;
  TW_ASSIGN_OR_RETURN(Caller caller, Admit(*route, request));
  return (this->*route->handler)(Call{request, caller, tail});
}

// Public routes.

absl::StatusOr<HttpResponse> Api::Health(const Call&) { return Json(200, json{{"status", "ok"}}); }

absl::StatusOr<HttpResponse> Api::MetricsText(const Call&) {
  return HttpResponse{200, metrics_.Render(), "text/plain; version=0.0.4"};
}

absl::StatusOr<HttpResponse> Api::Bundle(const Call&) {
  return HttpResponse{200, BundleJson(), "application/json"};
}

absl::StatusOr<HttpResponse> Api::ListRevocations(const Call& c) {
  int64_t after = 0, limit = kMaxRevocationPage;
  for (const auto& [key, value] : c.http.query) {
    if (key == "after") {
      TW_ASSIGN_OR_RETURN(after, ParseNumber("after", value));
    } else if (key == "limit") {
      TW_ASSIGN_OR_RETURN(limit, ParseNumber("limit", value));
      limit = std::clamp<int64_t>(limit, 1, kMaxRevocationPage);
    } else {
      return UnknownParameter(key);
    }
  }
  TW_ASSIGN_OR_RETURN(authority::RevocationPage page,
                      authority_.Revocations(after, static_cast<size_t>(limit)));
  return HttpResponse{200, RevocationPageJson(page), "application/json"};
}

absl::StatusOr<HttpResponse> Api::LedgerKey(const Call&) {
  const ledger::Service& ledger = *options_.ledger;
  return Json(
      200, json{{"key_id", ledger.key_id()},
                {"public_key_pem", core::PemEncode("PUBLIC KEY", ledger.public_key().spki_der())}});
}

// Identities, JWT-SVIDs, revocations.

absl::StatusOr<HttpResponse> Api::CreateIdentity(const Call& c) {
  TW_ASSIGN_OR_RETURN(authority::CreateIdentityRequest req, DecodeCreateIdentity(c.http.body));
  TW_ASSIGN_OR_RETURN(authority::IssuedIdentity issued, authority_.CreateIdentity(c.caller, req));
  return IssuedResponse(201, issued, BundleJson());
}

absl::StatusOr<HttpResponse> Api::Renew(const Call& c) {
  TW_ASSIGN_OR_RETURN(std::string csr, DecodeRenew(c.http.body));
  TW_ASSIGN_OR_RETURN(authority::IssuedIdentity issued, authority_.Renew(c.caller, csr));
  return IssuedResponse(200, issued, BundleJson());
}

absl::StatusOr<HttpResponse> Api::ListIdentities(const Call& c) {
  store::IdentityFilter filter;
  for (const auto& [key, value] : c.http.query) {
    if (key == "agent") {
      TW_RETURN_IF_ERROR(core::AgentName::Parse(value).status());
      filter.agent = value;
    } else if (key == "principal") {
      filter.principal = value;
    } else if (key == "live") {
      if (value != "true" && value != "false") {
        return absl::InvalidArgumentError("\"live\" must be true or false");
      }
      if (value == "true") filter.live_at = options_.clock->Now();
    } else if (key == "limit") {
      TW_ASSIGN_OR_RETURN(int64_t limit, ParseNumber("limit", value));
      filter.limit = static_cast<size_t>(std::min<int64_t>(limit, 10000));
    } else {
      return UnknownParameter(key);
    }
  }
  TW_ASSIGN_OR_RETURN(std::vector<authority::IdentityView> identities,
                      authority_.ListIdentities(c.caller, filter));
  json list = json::array();
  for (const authority::IdentityView& identity : identities) list.push_back(IdentityJson(identity));
  return Json(200, json{{"identities", std::move(list)}});
}

absl::StatusOr<HttpResponse> Api::GetIdentity(const Call& c) {
  TW_ASSIGN_OR_RETURN(authority::IdentityView identity, authority_.GetIdentity(c.caller, c.tail));
  return Json(200, IdentityJson(identity));
}

absl::StatusOr<HttpResponse> Api::MintJwt(const Call& c) {
  TW_ASSIGN_OR_RETURN(authority::JwtRequest req, DecodeJwtRequest(c.http.body));
  TW_ASSIGN_OR_RETURN(authority::MintedJwt jwt, authority_.MintJwt(c.caller, req));
  return Json(200, json{{"token", jwt.token}, {"expires_at", base::Rfc3339(jwt.expires_at)}});
}

absl::StatusOr<HttpResponse> Api::Revoke(const Call& c) {
  TW_ASSIGN_OR_RETURN(authority::RevokeRequest req, DecodeRevoke(c.http.body));
  TW_ASSIGN_OR_RETURN(revocation::Entry entry, authority_.Revoke(c.caller, req));
  return Json(200, json{{"sequence", entry.sequence}, {"revoked", entry.instances}});
}

// Policies and tokens (admin).

absl::StatusOr<HttpResponse> Api::ApplyPolicy(const Call& c) {
  TW_ASSIGN_OR_RETURN(std::string source, DecodePolicy(c.http.body));
  TW_ASSIGN_OR_RETURN(authority::AppliedPolicy applied, authority_.ApplyPolicy(c.caller, source));
  const policy::PolicyVersion& v = applied.version;
  json out =
      PolicyJson({.version = v.version, .sha256_hex = v.sha256_hex, .created_at = v.created_at});
  out["unchanged"] = applied.unchanged;
  return Json(applied.unchanged ? 200 : 201, out);
}

absl::StatusOr<HttpResponse> Api::ListPolicies(const Call& c) {
  TW_ASSIGN_OR_RETURN(std::vector<store::StoredPolicy> all, authority_.ListPolicies(c.caller));
  json list = json::array();
  for (const store::StoredPolicy& p : all) list.push_back(PolicyJson(p));
  return Json(200, json{{"policies", std::move(list)}});
}

absl::StatusOr<HttpResponse> Api::GetPolicy(const Call& c) {
  int64_t version = 0;
  if (c.tail != "current") {
    TW_ASSIGN_OR_RETURN(version, ParseNumber("version", c.tail));
    if (version == 0) return absl::NotFoundError("policy version 0 does not exist");
  }
  TW_ASSIGN_OR_RETURN(store::StoredPolicy p, authority_.GetPolicy(c.caller, version));
  TW_ASSIGN_OR_RETURN(policy::Policy parsed, policy::Policy::Parse(p.source));
  json out = PolicyJson(p);
  out["source"] = p.source;
  out["policy"] = parsed.json();
  return Json(200, out);
}

absl::StatusOr<HttpResponse> Api::ListTokens(const Call& c) {
  TW_ASSIGN_OR_RETURN(std::vector<store::TokenRecord> tokens, authority_.ListTokens(c.caller));
  json list = json::array();
  for (const store::TokenRecord& t : tokens) list.push_back(TokenJson(t));
  return Json(200, json{{"tokens", std::move(list)}});
}

absl::StatusOr<HttpResponse> Api::CaStatus(const Call& c) {
  TW_ASSIGN_OR_RETURN(std::vector<ca::AuthorityInfo> authorities, authority_.CaStatus(c.caller));
  json list = json::array();
  for (const ca::AuthorityInfo& a : authorities) list.push_back(AuthorityJson(a));
  return Json(200, json{{"bundle_sequence", authority_.ca().bundle()->sequence().value_or(0)},
                        {"authorities", std::move(list)}});
}

absl::StatusOr<HttpResponse> Api::CaHistory(const Call&) {
  return HttpResponse{200, authority_.ca().history()->ToJson(), "application/json"};
}

absl::StatusOr<HttpResponse> Api::CaPrepare(const Call& c) {
  TW_ASSIGN_OR_RETURN(ca::AuthorityInfo a, authority_.PrepareAuthority(c.caller));
  return Json(201, AuthorityJson(a));
}

absl::StatusOr<HttpResponse> Api::CaActivate(const Call& c) {
  TW_ASSIGN_OR_RETURN(ActivateRequest r, DecodeActivate(c.http.body));
  TW_ASSIGN_OR_RETURN(ca::AuthorityInfo a,
                      authority_.ActivateAuthority(c.caller, r.force, r.chain_pem));
  return Json(200, AuthorityJson(a));
}

absl::StatusOr<HttpResponse> Api::CaRetire(const Call& c) {
  TW_ASSIGN_OR_RETURN(std::optional<int64_t> id, DecodeRetire(c.http.body));
  TW_ASSIGN_OR_RETURN(std::vector<int64_t> retired, authority_.RetireAuthority(c.caller, id));
  return Json(200, json{{"retired", retired}, {"state", "retired"}});
}

absl::StatusOr<HttpResponse> Api::BundleMap(const Call&) {
  std::vector<core::Bundle> bundles = {*authority_.ca().bundle()};
  for (core::Bundle& b : authority_.FederatedBundles()) bundles.push_back(std::move(b));
  return HttpResponse{200, core::BundleMapJson(bundles), "application/json"};
}

absl::StatusOr<HttpResponse> Api::ForeignGrants(const Call&) {
  std::shared_ptr<const policy::PolicyVersion> p = authority_.current_policy();
  return Json(200, json{{"policy_version", p->version},
                        {"grants", core::ForeignGrantsJson(p->policy->foreign_grants())}});
}

absl::StatusOr<HttpResponse> Api::ListFederations(const Call& c) {
  TW_ASSIGN_OR_RETURN(auto federations, authority_.ListFederations(c.caller));
  json list = json::array();
  for (const auto& f : federations) list.push_back(FederationJson(f));
  return Json(200, json{{"federations", std::move(list)}});
}

absl::StatusOr<HttpResponse> Api::AddFederation(const Call& c) {
  TW_ASSIGN_OR_RETURN(FederationRequest r, DecodeFederation(c.http.body));
  TW_ASSIGN_OR_RETURN(
      federation::Relationship relationship,
      federation::MakeRelationship(r.trust_domain, r.endpoint_url, r.profile, r.endpoint_spiffe_id,
                                   authority_.ca().trust_domain()));
  std::optional<core::Bundle> initial;
  if (!r.bundle.empty()) {
    absl::StatusOr<core::Bundle> parsed = core::Bundle::Parse(r.bundle, relationship.trust_domain);
    if (!parsed.ok() || parsed->x509_authorities().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bundle: not a bundle of ", r.trust_domain, " with an X.509 authority",
                       parsed.ok() ? "" : absl::StrCat(": ", parsed.status().message())));
    }
    initial = *std::move(parsed);
  }
  TW_ASSIGN_OR_RETURN(auto added,
                      authority_.AddFederation(c.caller, relationship, std::move(initial)));
  return Json(201, FederationJson(added));
}

absl::StatusOr<HttpResponse> Api::RemoveFederation(const Call& c) {
  TW_RETURN_IF_ERROR(authority_.RemoveFederation(c.caller, c.tail));
  return Json(200, json{{"trust_domain", std::string(c.tail)}, {"removed", true}});
}

absl::StatusOr<HttpResponse> Api::RefreshFederation(const Call& c) {
  absl::string_view td = c.tail;
  if (!absl::ConsumeSuffix(&td, "/refresh") || td.empty() || absl::StrContains(td, '/')) {
    return absl::NotFoundError("POST /v1/federation/TD/refresh");
  }
  TW_ASSIGN_OR_RETURN(auto refreshed, authority_.RefreshFederation(c.caller, td));
  return Json(200, FederationJson(refreshed));
}

absl::StatusOr<HttpResponse> Api::CaRevokeAuthority(const Call& c) {
  TW_ASSIGN_OR_RETURN(int64_t id, DecodeAuthorityId(c.http.body));
  TW_RETURN_IF_ERROR(authority_.RevokeAuthority(c.caller, id));
  return Json(200, json{{"id", id}, {"state", "revoked"}});
}

absl::StatusOr<HttpResponse> Api::TokenSelf(const Call& c) {
  const Caller& caller = c.caller;
  if (caller.token_id.empty()) return absl::UnauthenticatedError("this route needs a token");
  return Json(200, json{{"id", caller.token_id},
                        {"principal", caller.principal},
                        {"admin", caller.admin},
                        {"auditor", caller.auditor},
                        {"expires_at", TimeOrNull(caller.token_expires_at)}});
}

absl::StatusOr<HttpResponse> Api::CreateToken(const Call& c) {
  TW_ASSIGN_OR_RETURN(TokenRequest req, DecodeTokenRequest(c.http.body));
  TW_ASSIGN_OR_RETURN(
      authority::CreatedToken created,
      authority_.CreateToken(c.caller, req.principal, req.auditor, req.ttl, req.force));
  return Json(201, json{{"id", created.id},
                        {"principal", req.principal},
                        {"token", created.token},
                        {"auditor", req.auditor},
                        {"expires_at", TimeOrNull(created.expires_at)}});
}

absl::StatusOr<HttpResponse> Api::RevokeToken(const Call& c) {
  TW_RETURN_IF_ERROR(authority_.RevokeToken(c.caller, c.tail));
  return Json(200, json{{"id", std::string(c.tail)}, {"revoked", true}});
}

// The ledger and forensic queries.

absl::StatusOr<HttpResponse> Api::AppendEvents(const Call& c) {
  ledger::Service& ledger = *options_.ledger;
  TW_ASSIGN_OR_RETURN(LedgerEventsRequest req, DecodeLedgerEvents(c.http.body));
  store::LedgerAppended appended;
  if (req.chain.empty()) {
    // The batch is signed by the caller's own SVID (mTLS).
    if (!c.caller.svid || c.http.peer_chain.empty()) {
      if (!c.caller.svid_error.ok()) return c.caller.svid_error;
      return absl::UnauthenticatedError(
          "ledger events need the writer's SVID (mTLS), or the signer's \"chain\"");
    }
    TW_ASSIGN_OR_RETURN(appended, ledger.AppendSigned(*c.caller.svid, c.http.peer_chain[0],
                                                      req.events, req.signature));
  } else {
    // A batch delivered later (an agent's spool): its signer's chain must have been valid
    // when issued; the events must fall within its lifetime and, if it has been revoked
    // since, before the revocation.
    auto chain = core::Certificate::ParseChain(req.chain);
    if (!chain.ok() || chain->empty()) {
      return absl::InvalidArgumentError("\"chain\" is not a PEM certificate chain");
    }
    std::vector<base::ByteView> ders;
    for (const core::Certificate& cert : *chain) ders.emplace_back(cert.der());
    TW_ASSIGN_OR_RETURN(authority::Authority::LateSigner signer, authority_.VerifyLateSigner(ders));
    TW_ASSIGN_OR_RETURN(appended, ledger.AppendSigned(signer.svid, ders[0], req.events,
                                                      req.signature, signer.revoked_at));
  }
  return Json(200, json{{"indexes", appended.indexes}, {"tree_size", appended.tree_size}});
}

absl::StatusOr<HttpResponse> Api::SignTreeHead(const Call&) {
  TW_ASSIGN_OR_RETURN(ledger::TreeHead head, options_.ledger->SignTreeHead());
  return Json(201, TreeHeadJson(head, options_.ledger->key_id()));
}

absl::StatusOr<HttpResponse> Api::GetTreeHead(const Call& c) {
  ledger::Service& ledger = *options_.ledger;
  TW_ASSIGN_OR_RETURN(std::optional<uint64_t> size, Number(c.http, "tree_size"));
  TW_ASSIGN_OR_RETURN(ledger::TreeHead head,
                      size ? ledger.TreeHeadOfSize(*size) : ledger.LatestTreeHead());
  return Json(200, TreeHeadJson(head, ledger.key_id()));
}

absl::StatusOr<HttpResponse> Api::ListTreeHeads(const Call&) {
  TW_ASSIGN_OR_RETURN(std::vector<ledger::TreeHead> heads, options_.ledger->TreeHeads());
  json list = json::array();
  for (const ledger::TreeHead& h : heads) {
    list.push_back(TreeHeadJson(h, options_.ledger->key_id()));
  }
  return Json(200, json{{"tree_heads", std::move(list)}});
}

absl::StatusOr<HttpResponse> Api::InclusionProof(const Call& c) {
  ledger::Service& ledger = *options_.ledger;
  TW_ASSIGN_OR_RETURN(uint64_t index, Required(c.http, "index"));
  TW_ASSIGN_OR_RETURN(uint64_t size, Required(c.http, "size"));
  TW_ASSIGN_OR_RETURN(std::vector<ledger::Hash> proof, ledger.InclusionProof(index, size));
  TW_ASSIGN_OR_RETURN(ledger::EntryPage page, ledger.Entries(index, index + 1));
  if (page.rows.empty()) return absl::NotFoundError(absl::StrCat("no entry ", index));
  return Json(200, json{{"index", index},
                        {"tree_size", size},
                        {"leaf_hash", LeafHashJson(page.rows[0])},
                        {"audit_path", HashListJson(proof)}});
}

absl::StatusOr<HttpResponse> Api::ConsistencyProof(const Call& c) {
  TW_ASSIGN_OR_RETURN(uint64_t first, Required(c.http, "first"));
  TW_ASSIGN_OR_RETURN(uint64_t second, Required(c.http, "second"));
  TW_ASSIGN_OR_RETURN(std::vector<ledger::Hash> proof,
                      options_.ledger->ConsistencyProof(first, second));
  return Json(200, json{{"first", first}, {"second", second}, {"proof", HashListJson(proof)}});
}

absl::StatusOr<HttpResponse> Api::Entries(const Call& c) {
  TW_ASSIGN_OR_RETURN(uint64_t start, Required(c.http, "start"));
  TW_ASSIGN_OR_RETURN(std::optional<uint64_t> end, Number(c.http, "end"));
  const uint64_t stop = std::min(end.value_or(start + kMaxEntries), start + kMaxEntries);
  if (stop < start) return absl::InvalidArgumentError("\"end\" is before \"start\"");
  TW_ASSIGN_OR_RETURN(ledger::EntryPage page, options_.ledger->Entries(start, stop));
  json list = json::array();
  for (const ledger::EntryRow& row : page.rows) list.push_back(EntryJson(row));
  return Json(200, json{{"entries", std::move(list)}, {"tree_size", page.tree_size}});
}

absl::StatusOr<HttpResponse> Api::Export(const Call& c) {
  TW_ASSIGN_OR_RETURN(uint64_t start, Required(c.http, "start"));
  TW_ASSIGN_OR_RETURN(std::optional<uint64_t> end, Number(c.http, "end"));
  const uint64_t stop = std::min(end.value_or(start + kMaxExport), start + kMaxExport);
  TW_ASSIGN_OR_RETURN(std::string body, options_.ledger->Export(start, stop));
  return HttpResponse{200, std::move(body), "application/octet-stream"};
}

absl::StatusOr<HttpResponse> Api::QueryEvents(const Call& c) {
  store::LedgerQuery q;
  for (const auto& [key, value] : c.http.query) {
    if (key == "instance") {
      q.instance = value;
    } else if (key == "caller") {
      q.caller = value;
    } else if (key == "agent") {
      q.agent = value;
    } else if (key == "principal") {
      q.principal = value;
    } else if (key == "resource") {
      q.resource = value;
    } else if (key == "action") {
      q.action = value;
    } else if (key == "type") {
      q.type = value;
    } else if (key == "decision") {
      if (value != "allow" && value != "deny") {
        return absl::InvalidArgumentError("\"decision\" must be allow or deny");
      }
      q.decision = value;
    } else if (key == "since" || key == "until") {
      TW_ASSIGN_OR_RETURN(int64_t ms, ParseTimeMs(key, value));
      (key == "since" ? q.since_ms : q.until_ms) = ms;
    } else if (key == "limit") {
      TW_ASSIGN_OR_RETURN(int64_t limit, ParseNumber("limit", value));
      q.limit = static_cast<size_t>(std::clamp<int64_t>(limit, 1, 10000));
    } else {
      return UnknownParameter(key);
    }
  }
  TW_ASSIGN_OR_RETURN(std::vector<ledger::EntryRow> rows, options_.ledger->Query(std::move(q)));
  json list = json::array();
  for (const ledger::EntryRow& row : rows) list.push_back(EntryJson(row));
  return Json(200, json{{"events", std::move(list)}});
}

absl::StatusOr<HttpResponse> Api::Trace(const Call& c) {
  TW_ASSIGN_OR_RETURN(ledger::Trace trace, options_.ledger->TraceEvent(c.tail));
  return Json(200, TraceJson(trace, options_.ledger->key_id()));
}

}  // namespace tw::server
