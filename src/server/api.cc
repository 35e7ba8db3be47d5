#include "server/api.h"

#include <boost/url/parse.hpp>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/clock.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "core/certificate.h"
#include "core/spiffe_id.h"
#include "ledger/entry.h"
#include "ledger/merkle.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

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

constexpr uint64_t kMaxEntries = 1000;        // per /v1/ledger/entries page
constexpr int64_t kMaxRevocationPage = 1000;  // per GET /v1/revocations
constexpr uint64_t kMaxExport = 10000;        // per /v1/ledger/export segment

std::string B64(base::ByteView b) { return base::Base64UrlEncode(base::AsChars(b)); }

json HashList(const std::vector<ledger::Hash>& hashes) {
  json out = json::array();
  for (const ledger::Hash& h : hashes) out.push_back(B64(h));
  return out;
}

json TreeHeadJson(const ledger::TreeHead& h, const std::string& key_id) {
  return json{{"tree_size", h.tree_size},
              {"timestamp", h.timestamp_ms},
              {"root_hash", B64(h.root)},
              {"signature", B64(h.signature)},
              {"key_id", key_id}};
}

// One ledger row: its index, id, entry bytes and decoded event.
json EntryJson(const ledger::EntryRow& row) {
  json out{{"index", row.index}, {"event_id", row.event_id}, {"entry", B64(row.entry)}};
  if (auto entry = ledger::DecodeEntry(row.entry); entry.ok()) {
    out["event"] = json::parse(entry->event, nullptr, false);
  } else {
    out["event"] = nullptr;
  }
  return out;
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

// Text stored or echoed is checked to be UTF-8 on the way in; should anything slip
// through, it is replaced rather than thrown on.
HttpResponse Json(int status, const json& body) {
  return HttpResponse{status, body.dump(-1, ' ', false, json::error_handler_t::replace),
                      "application/json"};
}

absl::StatusOr<int64_t> ParseNumber(absl::string_view name, absl::string_view text) {
  int64_t n;
  if (!absl::SimpleAtoi(text, &n) || n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" must be a non-negative integer"));
  }
  return n;
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

std::string RevocationEntryJson(const revocation::Entry& e) {
  return json{{"sequence", e.sequence},
              {"kind", std::string(revocation::KindName(e.kind))},
              {"target", e.target},
              {"reason", e.reason},
              {"revoked_at", base::Rfc3339(e.revoked_at)},
              {"instances", e.instances},
              {"expires_at", base::Rfc3339(e.expires_at)}}
      .dump();
}

Api::Api(Authority& authority, store::Store& store, revocation::Hub& hub, Metrics& metrics,
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

absl::StatusOr<std::vector<revocation::Entry>> Api::RevocationLog(int64_t after, size_t limit) {
  return store_.ListRevocations(after, limit);
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

namespace {

// Routes that need a token or an SVID. The rest are public, unknown (404), or ledger
// events, whose body may authenticate itself with its signer's chain.
bool NeedsCredentials(const HttpRequest& r) {
  const absl::string_view p = r.path;
  if (p == "/v1/revocations") return r.method != "GET";
  if (p == "/v1/ledger/events" || p == "/v1/ledger/key") return false;
  for (absl::string_view prefix : {"/v1/identities", "/v1/jwt-svids", "/v1/policies", "/v1/tokens",
                                   "/v1/audit/", "/v1/ledger/"}) {
    if (absl::StartsWith(p, prefix)) return true;
  }
  return false;
}

}  // namespace

absl::Status Api::Preflight(HttpRequest& request) {
  absl::Status s;
  if (!address_limiter_.HasToken(request.remote, options_.clock->Now())) {
    s = absl::ResourceExhaustedError("too many requests from this address");
  } else if (NeedsCredentials(request)) {
    absl::StatusOr<Caller> caller = Authenticate(request);
    if (!caller.ok()) {
      s = caller.status();
    } else if (caller->principal.empty() && !caller->svid) {
      s = !caller->svid_error.ok() && absl::IsPermissionDenied(caller->svid_error)
              ? caller->svid_error
              : absl::UnauthenticatedError(
                    "this route needs a token (Authorization: Bearer, e.g. $TRUSTWARDEN_TOKEN) "
                    "or an agent's SVID as client certificate");
    } else {
      request.caller = *std::move(caller);
    }
  }
  if (!s.ok()) {
    address_limiter_.Allow(request.remote, options_.clock->Now());  // refusals count too
    metrics_.RecordRequest();
    metrics_.RecordError(ErrorCode(s));
  }
  return s;
}

HttpResponse Api::Handle(const HttpRequest& request) {
  metrics_.RecordRequest();
  absl::Status allowed = CheckAddress(request);
  absl::StatusOr<HttpResponse> response = absl::InternalError("unset");
  try {
    response = allowed.ok() ? Route(request) : allowed;
  } catch (const std::exception& e) {
    // Our code does not throw; a library did (an allocation, a JSON type error).
    spdlog::error("request_id={} handler threw: {}", request.request_id,
                  base::Quote(e.what(), 512));
    response = absl::InternalError("handler threw");
  }
  if (response.ok()) return *std::move(response);
  metrics_.RecordError(ErrorCode(response.status()));
  return ErrorResponse(response.status());
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
    int64_t after = 0, limit = kMaxRevocationPage;
    for (const auto& [key, value] : r.query) {
      if (key == "after") {
        TW_ASSIGN_OR_RETURN(after, ParseNumber("after", value));
      } else if (key == "limit") {
        TW_ASSIGN_OR_RETURN(limit, ParseNumber("limit", value));
        limit = std::clamp<int64_t>(limit, 1, kMaxRevocationPage);
      } else {
        return absl::InvalidArgumentError(absl::StrCat("unknown parameter ", base::Quote(key)));
      }
    }
    // A page of the durable log up to what the hub has published; `next_after` resumes
    // after it (past pruned sequences too), `more` says whether to.
    const int64_t sequence = hub_.sequence();
    TW_ASSIGN_OR_RETURN(std::vector<revocation::Entry> page,
                        RevocationLog(after, static_cast<size_t>(limit)));
    std::erase_if(page, [sequence](const auto& e) { return e.sequence > sequence; });
    const bool more = page.size() == static_cast<size_t>(limit) && page.back().sequence < sequence;
    const int64_t next = more ? page.back().sequence : std::max(after, sequence);
    std::string body = "{\"entries\":[";
    bool first = true;
    for (const revocation::Entry& e : page) {
      absl::StrAppend(&body, first ? "" : ",", RevocationEntryJson(e));
      first = false;
    }
    absl::StrAppend(&body, "],\"sequence\":", sequence, ",\"next_after\":", next,
                    ",\"more\":", more ? "true" : "false", "}");
    return HttpResponse{200, std::move(body), "application/json"};
  }

  if (path == "/v1/ledger/key" && options_.ledger != nullptr) {
    if (!get) return wrong_method();
    return Json(200,
                json{{"key_id", options_.ledger->key_id()},
                     {"public_key_pem",
                      core::PemEncode("PUBLIC KEY", options_.ledger->public_key().spki_der())}});
  }

  TW_ASSIGN_OR_RETURN(Caller caller,
                      r.caller ? absl::StatusOr<Caller>(*r.caller) : Authenticate(r));
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
        return absl::InvalidArgumentError(absl::StrCat("unknown parameter ", base::Quote(key)));
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
    TW_ASSIGN_OR_RETURN(revocation::Entry entry, authority_.Revoke(caller, req));
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
    if (get) {
      TW_ASSIGN_OR_RETURN(std::vector<store::TokenRecord> tokens, authority_.ListTokens(caller));
      json list = json::array();
      for (const store::TokenRecord& t : tokens) {
        list.push_back(json{
            {"id", t.id},
            {"principal", t.principal},
            {"admin", t.admin},
            {"auditor", t.auditor},
            {"created_at", base::Rfc3339(t.created_at)},
            {"expires_at", t.expires_at ? json(base::Rfc3339(*t.expires_at)) : json(nullptr)},
            {"revoked_at", t.revoked_at ? json(base::Rfc3339(*t.revoked_at)) : json(nullptr)}});
      }
      return Json(200, json{{"tokens", std::move(list)}});
    }
    if (!post) return wrong_method();
    TW_RETURN_IF_ERROR(authority_.RequireAdmin(caller));
    TW_ASSIGN_OR_RETURN(TokenRequest req, DecodeTokenRequest(r.body));
    TW_ASSIGN_OR_RETURN(CreatedToken created,
                        authority_.CreateToken(caller, req.principal, req.auditor, req.ttl));
    return Json(
        201, json{{"id", created.id},
                  {"principal", req.principal},
                  {"token", created.token},
                  {"auditor", req.auditor},
                  {"expires_at",
                   created.expires_at ? json(base::Rfc3339(*created.expires_at)) : json(nullptr)}});
  }
  if (absl::StartsWith(path, "/v1/tokens/")) {
    if (r.method != "DELETE") return wrong_method();
    const std::string id = path.substr(std::strlen("/v1/tokens/"));
    TW_RETURN_IF_ERROR(authority_.RevokeToken(caller, id));
    return Json(200, json{{"id", id}, {"revoked", true}});
  }
  if (options_.ledger != nullptr &&
      (absl::StartsWith(path, "/v1/ledger/") || absl::StartsWith(path, "/v1/audit/"))) {
    return LedgerRoute(r, caller);
  }
  return absl::NotFoundError(
      absl::StrCat("no route ", absl::CHexEscape(r.method), " ", base::Quote(path)));
}

absl::StatusOr<HttpResponse> Api::LedgerRoute(const HttpRequest& r, const Caller& caller) {
  LedgerService& ledger = *options_.ledger;
  const std::string& path = r.path;
  const bool get = r.method == "GET", post = r.method == "POST";
  auto number = [&r](const char* name) -> absl::StatusOr<std::optional<uint64_t>> {
    auto it = r.query.find(name);
    if (it == r.query.end()) return std::optional<uint64_t>();
    TW_ASSIGN_OR_RETURN(int64_t n, ParseNumber(name, it->second));
    return std::optional<uint64_t>(static_cast<uint64_t>(n));
  };
  auto required = [&number](const char* name) -> absl::StatusOr<uint64_t> {
    TW_ASSIGN_OR_RETURN(std::optional<uint64_t> n, number(name));
    if (!n) return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is required"));
    return *n;
  };

  if (path == "/v1/ledger/events") {
    if (!post) return absl::UnimplementedError("method not allowed on this route");
    TW_ASSIGN_OR_RETURN(LedgerEventsRequest req, DecodeLedgerEvents(r.body));
    if (req.chain.empty()) {
      // The batch is signed by the caller's own SVID (mTLS).
      if (!caller.svid || r.peer_chain.empty()) {
        if (!caller.svid_error.ok()) return caller.svid_error;
        return absl::UnauthenticatedError(
            "ledger events need the writer's SVID (mTLS), or the signer's \"chain\"");
      }
      TW_ASSIGN_OR_RETURN(
          store::LedgerAppended appended,
          ledger.AppendSigned(*caller.svid, r.peer_chain[0], req.events, req.signature));
      return Json(200, json{{"indexes", appended.indexes}, {"tree_size", appended.tree_size}});
    }
    // A batch delivered later (an agent's spool): its signer's chain must have been valid
    // when issued; the events must fall within its lifetime and, if it has been revoked
    // since, before the revocation.
    auto chain = core::Certificate::ParseChain(req.chain);
    if (!chain.ok() || chain->empty()) {
      return absl::InvalidArgumentError("\"chain\" is not a PEM certificate chain");
    }
    std::vector<base::ByteView> ders;
    for (const core::Certificate& c : *chain) ders.emplace_back(c.der());
    TW_ASSIGN_OR_RETURN(Authority::LateSigner signer, authority_.VerifyLateSigner(ders));
    TW_ASSIGN_OR_RETURN(
        store::LedgerAppended appended,
        ledger.AppendSigned(signer.svid, ders[0], req.events, req.signature, signer.revoked_at));
    return Json(200, json{{"indexes", appended.indexes}, {"tree_size", appended.tree_size}});
  }
  if (path == "/v1/ledger/sth" && post) {
    TW_RETURN_IF_ERROR(authority_.RequireAdmin(caller));
    TW_ASSIGN_OR_RETURN(ledger::TreeHead head, ledger.SignTreeHead());
    return Json(201, TreeHeadJson(head, ledger.key_id()));
  }
  TW_RETURN_IF_ERROR(authority_.RequireAuditor(caller));
  if (!get) return absl::UnimplementedError("method not allowed on this route");
  if (path == "/v1/ledger/sth") {
    TW_ASSIGN_OR_RETURN(std::optional<uint64_t> size, number("tree_size"));
    if (!size) {
      TW_ASSIGN_OR_RETURN(ledger::TreeHead head, ledger.LatestTreeHead());
      return Json(200, TreeHeadJson(head, ledger.key_id()));
    }
    TW_ASSIGN_OR_RETURN(std::vector<ledger::TreeHead> heads, store_.ListTreeHeads(*size));
    if (heads.empty()) {
      return absl::NotFoundError(absl::StrCat("no tree head of size ", *size));
    }
    return Json(200, TreeHeadJson(heads.back(), ledger.key_id()));
  }
  if (path == "/v1/ledger/sths") {
    TW_ASSIGN_OR_RETURN(std::vector<ledger::TreeHead> heads, store_.ListTreeHeads());
    json list = json::array();
    for (const ledger::TreeHead& h : heads) list.push_back(TreeHeadJson(h, ledger.key_id()));
    return Json(200, json{{"tree_heads", std::move(list)}});
  }
  if (path == "/v1/ledger/proof/inclusion") {
    TW_ASSIGN_OR_RETURN(uint64_t index, required("index"));
    TW_ASSIGN_OR_RETURN(uint64_t size, required("size"));
    TW_ASSIGN_OR_RETURN(std::vector<ledger::Hash> proof, ledger.InclusionProof(index, size));
    TW_ASSIGN_OR_RETURN(std::vector<ledger::EntryRow> rows, store_.LedgerEntries(index, index + 1));
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("no entry ", index));
    return Json(200, json{{"index", index},
                          {"tree_size", size},
                          {"leaf_hash", B64(ledger::LeafHash(rows[0].entry))},
                          {"audit_path", HashList(proof)}});
  }
  if (path == "/v1/ledger/proof/consistency") {
    TW_ASSIGN_OR_RETURN(uint64_t first, required("first"));
    TW_ASSIGN_OR_RETURN(uint64_t second, required("second"));
    TW_ASSIGN_OR_RETURN(std::vector<ledger::Hash> proof, ledger.ConsistencyProof(first, second));
    return Json(200, json{{"first", first}, {"second", second}, {"proof", HashList(proof)}});
  }
  if (path == "/v1/ledger/entries") {
    TW_ASSIGN_OR_RETURN(uint64_t start, required("start"));
    TW_ASSIGN_OR_RETURN(std::optional<uint64_t> end, number("end"));
    uint64_t stop = std::min(end.value_or(start + kMaxEntries), start + kMaxEntries);
    if (stop < start) return absl::InvalidArgumentError("\"end\" is before \"start\"");
    TW_ASSIGN_OR_RETURN(std::vector<ledger::EntryRow> rows, store_.LedgerEntries(start, stop));
    json list = json::array();
    for (const ledger::EntryRow& row : rows) list.push_back(EntryJson(row));
    uint64_t size = 0;
    TW_RETURN_IF_ERROR(store_.ReadLedgerTree([&size](uint64_t s, const ledger::NodeSource&) {
      size = s;
      return absl::OkStatus();
    }));
    return Json(200, json{{"entries", std::move(list)}, {"tree_size", size}});
  }
  if (path == "/v1/ledger/export") {
    TW_ASSIGN_OR_RETURN(uint64_t start, required("start"));
    TW_ASSIGN_OR_RETURN(std::optional<uint64_t> end, number("end"));
    uint64_t stop = std::min(end.value_or(start + kMaxExport), start + kMaxExport);
    std::string body;
    ledger::ExportWriter writer([&body](base::ByteView b) {
      body.append(reinterpret_cast<const char*>(b.data()), b.size());
      return absl::OkStatus();
    });
    TW_RETURN_IF_ERROR(store_.ExportLedger(
        ledger.ExportHeaderTemplate(), start, stop,
        [&writer](const ledger::ExportRecord& record) { return writer.Write(record); }));
    return HttpResponse{200, std::move(body), "application/octet-stream"};
  }
  if (path == "/v1/audit/events") {
    store::LedgerQuery q;
    for (const auto& [key, value] : r.query) {
      if (key == "instance" || key == "caller") {
        // A SPIFFE ID, or the instance id of one of ours.
        std::string& id = key == "instance" ? q.instance : q.caller;
        id = value;
        if (!absl::StartsWith(value, "spiffe://")) {
          auto record = store_.GetIdentity(value);
          if (absl::IsNotFound(record.status())) return Json(200, json{{"events", json::array()}});
          TW_RETURN_IF_ERROR(record.status());
          id = record->spiffe_id;
        }
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
        return absl::InvalidArgumentError(absl::StrCat("unknown parameter ", base::Quote(key)));
      }
    }
    TW_ASSIGN_OR_RETURN(std::vector<ledger::EntryRow> rows, store_.QueryLedger(q));
    json list = json::array();
    for (const ledger::EntryRow& row : rows) list.push_back(EntryJson(row));
    return Json(200, json{{"events", std::move(list)}});
  }
  if (absl::StartsWith(path, "/v1/audit/trace/")) {
    return Trace(absl::string_view(path).substr(std::strlen("/v1/audit/trace/")));
  }
  return absl::NotFoundError(
      absl::StrCat("no route ", absl::CHexEscape(r.method), " ", base::Quote(path)));
}

absl::StatusOr<HttpResponse> Api::Trace(absl::string_view event_id) {
  LedgerService& ledger = *options_.ledger;
  if (event_id.empty() || event_id.size() > 64 ||
      event_id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != event_id.npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("event id ", base::Quote(event_id), " is malformed"));
  }
  TW_ASSIGN_OR_RETURN(ledger::EntryRow row, store_.LedgerEntryById(event_id));
  TW_ASSIGN_OR_RETURN(ledger::Entry entry, ledger::DecodeEntry(row.entry));
  TW_ASSIGN_OR_RETURN(ledger::Event event, ledger::DecodeEvent(entry.event));
  json out = EntryJson(row);
  // The instance, then its parents up to the root agent.
  json chain = json::array();
  std::string principal = event.principal;
  int64_t policy_version = event.policy_version;
  if (auto id = core::SpiffeId::FromString(event.instance); id.ok() && !id->segments().empty()) {
    std::string at(id->segments().back());
    for (int hops = 0; !at.empty() && hops < 64; ++hops) {
      auto record = store_.GetIdentity(at);
      if (!record.ok()) break;
      std::string parent;
      if (!record->parent.empty()) {
        if (auto p = store_.GetIdentity(record->parent); p.ok()) parent = p->spiffe_id;
      }
      chain.push_back(json{{"instance_id", record->instance_id},
                           {"spiffe_id", record->spiffe_id},
                           {"principal", record->principal},
                           {"policy_version", record->policy_version},
                           {"parent", NullableString(parent)},
                           {"revoked", record->revoked_sequence.has_value()}});
      if (principal.empty()) principal = record->principal;
      if (policy_version == 0) policy_version = record->policy_version;
      at = record->parent;
    }
  }
  out["chain"] = std::move(chain);
  out["principal"] = principal;
  out["policy"] = nullptr;
  if (policy_version > 0) {
    if (auto p = store_.GetPolicy(policy_version); p.ok()) {
      out["policy"] = json{{"version", p->version}, {"sha256", p->sha256_hex}};
    }
  }
  out["input_digest"] = NullableString(event.input_digest);
  out["payload_digest"] = NullableString(event.payload_digest);
  out["decision"] = NullableString(event.decision);
  out["reason"] = NullableString(event.reason);
  // Prove the entry against a signed tree head that covers it (signed now if none does).
  auto head = ledger.LatestTreeHead();
  if (!head.ok() || head->tree_size <= row.index) {
    TW_ASSIGN_OR_RETURN(head, ledger.SignTreeHead());
  }
  TW_ASSIGN_OR_RETURN(std::vector<ledger::Hash> proof,
                      ledger.InclusionProof(row.index, head->tree_size));
  bool verified = ledger::VerifyTreeHead(ledger.public_key(), *head).ok() &&
                  ledger::VerifyInclusion(row.index, head->tree_size, ledger::LeafHash(row.entry),
                                          proof, head->root)
                      .ok();
  out["inclusion"] =
      json{{"verified", verified},          {"tree_size", head->tree_size},
           {"root_hash", B64(head->root)},  {"leaf_hash", B64(ledger::LeafHash(row.entry))},
           {"audit_path", HashList(proof)}, {"tree_head", TreeHeadJson(*head, ledger.key_id())}};
  return Json(200, out);
}

}  // namespace tw::server
