#include "server/api.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/clock.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace tw::server {
namespace {

using nlohmann::json;

json NullableString(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

json IdentityJson(const store::IdentityRecord& r, const std::string& parent_spiffe_id) {
  return json{{"instance_id", r.instance_id},
              {"spiffe_id", r.spiffe_id},
              {"name", r.name},
              {"parent", NullableString(parent_spiffe_id)},
              {"principal", r.principal},
              {"policy_version", r.policy_version},
              {"serial", r.serial_hex},
              {"scope", r.scopes},
              {"trust_level", r.trust_level},
              {"not_before", base::Rfc3339(r.not_before)},
              {"not_after", base::Rfc3339(r.not_after)},
              {"created_at", base::Rfc3339(r.created_at)},
              {"revoked", r.revoked_sequence.has_value()},
              {"revoked_sequence", r.revoked_sequence ? json(*r.revoked_sequence) : json(nullptr)}};
}

// The reply to a creation or renewal: the record's fields, the SVID and the bundle (spliced
// in as already-serialized JSON).
HttpResponse IssuedResponse(int status, const IssuedIdentity& issued,
                            const std::string& parent_spiffe_id, const std::string& bundle_json) {
  const store::IdentityRecord& r = issued.record;
  json out{{"spiffe_id", r.spiffe_id},    {"instance_id", r.instance_id},
           {"svid_pem", issued.svid_pem}, {"expires_at", base::Rfc3339(r.not_after)},
           {"serial", r.serial_hex},      {"parent", NullableString(parent_spiffe_id)},
           {"principal", r.principal},    {"policy_version", r.policy_version},
           {"scope", r.scopes},           {"trust_level", r.trust_level}};
  std::string body = out.dump();
  body.insert(body.size() - 1, absl::StrCat(",\"bundle\":", bundle_json));
  return HttpResponse{status, std::move(body), "application/json"};
}

HttpResponse Json(int status, const json& body) {
  return HttpResponse{status, body.dump(), "application/json"};
}

absl::StatusOr<int64_t> ParseNumber(absl::string_view name, absl::string_view text) {
  int64_t n;
  if (!absl::SimpleAtoi(text, &n) || n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" must be a non-negative integer"));
  }
  return n;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] != '%') {
      out += in[i];
    } else {
      int hi = i + 2 < in.size() ? HexValue(in[i + 1]) : -1;
      int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) return absl::InvalidArgumentError("bad percent-escape in the URL");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return out;
}

}  // namespace

absl::Status ParseTarget(absl::string_view target, HttpRequest* out) {
  size_t q = target.find('?');
  out->path = std::string(target.substr(0, q));
  out->query.clear();
  if (q == absl::string_view::npos) return absl::OkStatus();
  for (absl::string_view pair : absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(pair, '=');
    TW_ASSIGN_OR_RETURN(std::string key, PercentDecode(kv.first));
    TW_ASSIGN_OR_RETURN(std::string value, PercentDecode(kv.second));
    if (!out->query.emplace(std::move(key), std::move(value)).second) {
      return absl::InvalidArgumentError("a query parameter is repeated");
    }
  }
  return absl::OkStatus();
}

std::string ErrorCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return "invalid_argument";
    case absl::StatusCode::kUnauthenticated:
      return "unauthenticated";
    case absl::StatusCode::kPermissionDenied:
      return "permission_denied";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kAlreadyExists:
      return "already_exists";
    case absl::StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case absl::StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case absl::StatusCode::kUnimplemented:
      return "method_not_allowed";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    default:
      return "internal";
  }
}

HttpResponse ErrorResponse(const absl::Status& status) {
  int http = 500;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      http = 400;
      break;
    case absl::StatusCode::kUnauthenticated:
      http = 401;
      break;
    case absl::StatusCode::kPermissionDenied:
      http = 403;
      break;
    case absl::StatusCode::kNotFound:
      http = 404;
      break;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      http = 409;
      break;
    case absl::StatusCode::kResourceExhausted:
      http = 429;
      break;
    case absl::StatusCode::kUnimplemented:
      http = 405;
      break;
    case absl::StatusCode::kUnavailable:
      http = 503;
      break;
    default:
      http = 500;
  }
  // Internal errors may carry store or library detail: say only that it failed.
  std::string message = http == 500 ? std::string("internal error") : std::string(status.message());
  return Json(http, json{{"error", {{"code", ErrorCode(status)}, {"message", message}}}});
}

std::string RevocationEntryJson(const store::RevocationEntry& e) {
  return json{{"sequence", e.sequence},
              {"kind", std::string(store::RevocationKindName(e.kind))},
              {"target", e.target},
              {"reason", e.reason},
              {"revoked_at", base::Rfc3339(e.revoked_at)},
              {"instances", e.instances},
              {"expires_at", base::Rfc3339(e.expires_at)}}
      .dump();
}

Api::Api(Authority& authority, store::Store& store, RevocationHub& hub, Metrics& metrics,
         ApiOptions options)
    : authority_(authority),
      store_(store),
      hub_(hub),
      metrics_(metrics),
      options_(options),
      address_limiter_(options.requests_per_address, options.requests_per_address),
      auth_failure_limiter_(options.auth_failures_per_address,
                            options.auth_failures_per_address * 5),
      bundle_json_(authority.ca().bundle().ToJson()) {}

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

HttpResponse Api::Handle(const HttpRequest& request) {
  metrics_.RecordRequest();
  absl::Status allowed = CheckAddress(request);
  absl::StatusOr<HttpResponse> response = allowed.ok() ? Route(request) : allowed;
  if (response.ok()) return *std::move(response);
  if (absl::IsUnauthenticated(response.status())) {
    auth_failure_limiter_.Allow(request.remote, options_.clock->Now());
  }
  metrics_.RecordError(ErrorCode(response.status()));
  return ErrorResponse(response.status());
}

absl::StatusOr<Caller> Api::Authenticate(const HttpRequest& request) {
  absl::string_view bearer;
  if (!request.authorization.empty()) {
    if (!auth_failure_limiter_.HasToken(request.remote, options_.clock->Now())) {
      return absl::ResourceExhaustedError("too many failed authentications from this address");
    }
    bearer = request.authorization;
    if (!absl::ConsumePrefix(&bearer, "Bearer ")) {
      return absl::UnauthenticatedError("the Authorization header must be \"Bearer TOKEN\"");
    }
  }
  return authority_.Authenticate(bearer, request.peer_chain);
}

absl::StatusOr<HttpResponse> Api::Route(const HttpRequest& r) {
  const std::string& path = r.path;
  const bool get = r.method == "GET", post = r.method == "POST";
  auto wrong_method = [] { return absl::UnimplementedError("method not allowed on this route"); };

  if (path == "/healthz") {
    if (!get) return wrong_method();
    return Json(200, json{{"status", "ok"}});
  }
  if (path == "/metrics") {
    if (!get) return wrong_method();
    return HttpResponse{200, metrics_.Render(), "text/plain; version=0.0.4"};
  }
  if (path == "/v1/bundle") {
    if (!get) return wrong_method();
    return HttpResponse{200, bundle_json_, "application/json"};
  }
  if (path == "/v1/revocations" && get) {
    int64_t after = 0;
    if (auto it = r.query.find("after"); it != r.query.end()) {
      TW_ASSIGN_OR_RETURN(after, ParseNumber("after", it->second));
    }
    const int64_t sequence = hub_.sequence();
    std::string body = "{\"entries\":[";
    bool first = true;
    for (const store::RevocationEntry& e : hub_.EntriesAfter(after, 1000)) {
      absl::StrAppend(&body, first ? "" : ",", RevocationEntryJson(e));
      first = false;
    }
    absl::StrAppend(&body, "],\"sequence\":", sequence, "}");
    return HttpResponse{200, std::move(body), "application/json"};
  }

  TW_ASSIGN_OR_RETURN(Caller caller, Authenticate(r));
  if (path == "/v1/identities" && post) {
    TW_ASSIGN_OR_RETURN(CreateIdentityRequest req, DecodeCreateIdentity(r.body));
    TW_ASSIGN_OR_RETURN(IssuedIdentity issued, authority_.CreateIdentity(caller, req));
    const bool delegated = caller.svid && caller.principal.empty();
    return IssuedResponse(201, issued, delegated ? caller.svid->spiffe_id.str() : "", bundle_json_);
  }
  if (path == "/v1/identities/renew") {
    if (!post) return wrong_method();
    TW_ASSIGN_OR_RETURN(std::string csr, DecodeRenew(r.body));
    TW_ASSIGN_OR_RETURN(IssuedIdentity issued, authority_.Renew(caller, csr));
    std::string parent;
    if (!issued.record.parent.empty()) {
      TW_ASSIGN_OR_RETURN(store::IdentityRecord p, store_.GetIdentity(issued.record.parent));
      parent = p.spiffe_id;
    }
    return IssuedResponse(200, issued, parent, bundle_json_);
  }
  if (path == "/v1/identities" && get) {
    TW_RETURN_IF_ERROR(authority_.RequireAdmin(caller));
    store::IdentityFilter filter;
    for (const auto& [key, value] : r.query) {
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
        return absl::InvalidArgumentError(absl::StrCat("unknown parameter \"", key, "\""));
      }
    }
    TW_ASSIGN_OR_RETURN(std::vector<store::IdentityRecord> records, store_.ListIdentities(filter));
    absl::flat_hash_map<std::string, std::string> spiffe_ids;
    for (const auto& rec : records) spiffe_ids[rec.instance_id] = rec.spiffe_id;
    json list = json::array();
    for (const auto& rec : records) {
      std::string parent;
      if (!rec.parent.empty()) {
        auto it = spiffe_ids.find(rec.parent);
        if (it != spiffe_ids.end()) {
          parent = it->second;
        } else {
          TW_ASSIGN_OR_RETURN(store::IdentityRecord p, store_.GetIdentity(rec.parent));
          parent = p.spiffe_id;
        }
      }
      list.push_back(IdentityJson(rec, parent));
    }
    return Json(200, json{{"identities", std::move(list)}});
  }
  if (absl::StartsWith(path, "/v1/identities/")) {
    if (!get) return wrong_method();
    TW_RETURN_IF_ERROR(authority_.RequireAdmin(caller));
    std::string id = path.substr(std::string("/v1/identities/").size());
    TW_RETURN_IF_ERROR(core::CheckInstanceId(id));
    TW_ASSIGN_OR_RETURN(store::IdentityRecord rec, store_.GetIdentity(id));
    std::string parent;
    if (!rec.parent.empty()) {
      TW_ASSIGN_OR_RETURN(store::IdentityRecord p, store_.GetIdentity(rec.parent));
      parent = p.spiffe_id;
    }
    return Json(200, IdentityJson(rec, parent));
  }
  if (path == "/v1/jwt-svids") {
    if (!post) return wrong_method();
    TW_ASSIGN_OR_RETURN(JwtRequest req, DecodeJwtRequest(r.body));
    TW_ASSIGN_OR_RETURN(MintedJwt jwt, authority_.MintJwt(caller, req));
    return Json(200, json{{"token", jwt.token}, {"expires_at", base::Rfc3339(jwt.expires_at)}});
  }
  if (path == "/v1/revocations") {
    if (!post) return wrong_method();
    TW_ASSIGN_OR_RETURN(RevokeRequest req, DecodeRevoke(r.body));
    TW_ASSIGN_OR_RETURN(store::RevocationEntry entry, authority_.Revoke(caller, req));
    return Json(200, json{{"sequence", entry.sequence}, {"revoked", entry.instances}});
  }
  if (path == "/v1/policies") {
    if (post) {
      TW_RETURN_IF_ERROR(authority_.RequireAdmin(caller));
      TW_ASSIGN_OR_RETURN(std::string source, DecodePolicy(r.body));
      TW_ASSIGN_OR_RETURN(policy::PolicyVersion v, authority_.ApplyPolicy(caller, source));
      return Json(201, json{{"version", v.version},
                            {"sha256", v.sha256_hex},
                            {"created_at", base::Rfc3339(v.created_at)}});
    }
    if (!get) return wrong_method();
    TW_RETURN_IF_ERROR(authority_.RequireAdmin(caller));
    TW_ASSIGN_OR_RETURN(std::vector<store::StoredPolicy> all, store_.ListPolicies());
    json list = json::array();
    for (const auto& p : all) {
      list.push_back(json{{"version", p.version},
                          {"sha256", p.sha256_hex},
                          {"created_at", base::Rfc3339(p.created_at)}});
    }
    return Json(200, json{{"policies", std::move(list)}});
  }
  if (absl::StartsWith(path, "/v1/policies/")) {
    if (!get) return wrong_method();
    TW_RETURN_IF_ERROR(authority_.RequireAdmin(caller));
    std::string which = path.substr(std::string("/v1/policies/").size());
    int64_t version = 0;
    if (which != "current") {
      TW_ASSIGN_OR_RETURN(version, ParseNumber("version", which));
      if (version == 0) return absl::NotFoundError("policy version 0 does not exist");
    }
    TW_ASSIGN_OR_RETURN(store::StoredPolicy p, store_.GetPolicy(version));
    TW_ASSIGN_OR_RETURN(policy::Policy parsed, policy::Policy::Parse(p.source));
    return Json(200, json{{"version", p.version},
                          {"sha256", p.sha256_hex},
                          {"created_at", base::Rfc3339(p.created_at)},
                          {"source", p.source},
                          {"policy", parsed.json()}});
  }
  if (path == "/v1/tokens") {
    if (!post) return wrong_method();
    TW_RETURN_IF_ERROR(authority_.RequireAdmin(caller));
    TW_ASSIGN_OR_RETURN(std::string principal, DecodeTokenRequest(r.body));
    TW_ASSIGN_OR_RETURN(std::string token, authority_.CreateToken(caller, principal));
    return Json(201, json{{"principal", principal}, {"token", token}});
  }
  return absl::NotFoundError(absl::StrCat("no route ", r.method, " ", path));
}

}  // namespace tw::server
