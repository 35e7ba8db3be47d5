#include "server/encode.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/api_status.h"
#include "base/text.h"
#include "ledger/entry.h"
#include "ledger/merkle.h"

namespace tw::server {
namespace {

using nlohmann::json;

json NullableString(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

std::string B64(base::ByteView b) { return base::Base64UrlEncode(base::AsChars(b)); }

}  // namespace

json TimeOrNull(const std::optional<absl::Time>& t) {
  return t ? json(base::Rfc3339(*t)) : json(nullptr);
}

HttpResponse Json(int status, const json& body) {
  return HttpResponse{status, body.dump(-1, ' ', false, json::error_handler_t::replace),
                      "application/json"};
}

HttpResponse ErrorResponse(const absl::Status& status) {
  const base::ApiStatus& api = base::ApiStatusOf(status.code());
  // Internal errors may carry store or library detail: say only that it failed.
  const std::string message =
      api.http == 500 ? std::string("internal error") : std::string(status.message());
  return Json(api.http, json{{"error", {{"code", api.name}, {"message", message}}}});
}

json IdentityJson(const authority::IdentityView& identity) {
  const store::IdentityRecord& r = identity.record;
  json out{{"instance_id", r.instance_id},
           {"spiffe_id", r.spiffe_id},
           {"name", r.name},
           {"parent", NullableString(identity.parent_spiffe_id)},
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
  if (const std::optional<revocation::Entry>& e = identity.revocation) {
    // Revoked as the target itself, or through an ancestor the target reached.
    const absl::string_view as = e->kind == revocation::Kind::kAgent       ? r.name
                                 : e->kind == revocation::Kind::kPrincipal ? r.principal
                                                                           : r.instance_id;
    const bool self = e->target == as;
    out["revocation"] = json{{"sequence", e->sequence},
                             {"kind", std::string(revocation::KindName(e->kind))},
                             {"target", e->target},
                             {"reason", e->reason},
                             {"revoked_at", base::Rfc3339(e->revoked_at)},
                             {"revoked_by", NullableString(e->revoked_by)},
                             {"cascaded_from", self ? json(nullptr) : json(e->target)}};
  }
  return out;
}

HttpResponse IssuedResponse(int status, const authority::IssuedIdentity& issued,
                            const std::string& bundle_json) {
  const store::IdentityRecord& r = issued.record;
  json out{{"spiffe_id", r.spiffe_id},    {"instance_id", r.instance_id},
           {"svid_pem", issued.svid_pem}, {"expires_at", base::Rfc3339(r.not_after)},
           {"serial", r.serial_hex},      {"parent", NullableString(issued.parent_spiffe_id)},
           {"principal", r.principal},    {"policy_version", r.policy_version},
           {"scope", r.scopes},           {"trust_level", r.trust_level}};
  std::string body = out.dump();
  body.insert(body.size() - 1, absl::StrCat(",\"bundle\":", bundle_json));
  return HttpResponse{status, std::move(body), "application/json"};
}

json AuthorityJson(const ca::AuthorityInfo& a) {
  auto at = [](absl::Time t) {
    return t == absl::InfinitePast() ? json(nullptr) : json(base::Rfc3339(t));
  };
  return json{{"id", a.id},
              {"state", std::string(ca::AuthorityStateName(a.state))},
              {"ca_key", a.ca_key},
              {"jwt_key", a.jwt_key},
              {"serial", a.serial},
              {"root_fingerprint_sha256", a.fingerprint_sha256},
              {"jwt_key_id", a.jwt_key_id},
              {"not_after", at(a.not_after)},
              {"csr_pem", a.csr_pem.empty() ? json(nullptr) : json(a.csr_pem)},
              {"prepared_at", at(a.prepared_at)},
              {"activated_at", at(a.activated_at)},
              {"deactivated_at", at(a.deactivated_at)},
              {"signs_until", at(a.signs_until)}};
}

json FederationJson(const authority::Authority::Federation& f) {
  auto text = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return json{{"trust_domain", f.record.trust_domain},
              {"endpoint_url", f.record.endpoint_url},
              {"profile", f.record.profile},
              {"endpoint_spiffe_id", text(f.record.endpoint_spiffe_id)},
              {"bundle_sequence", f.bundle_sequence ? json(*f.bundle_sequence) : json(nullptr)},
              {"refreshed_at",
               f.record.refreshed_at ? json(base::Rfc3339(*f.record.refreshed_at)) : json(nullptr)},
              {"next_refresh", base::Rfc3339(f.next_refresh)},
              {"last_error", text(f.last_error)}};
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

std::string RevocationPageJson(const authority::RevocationPage& page) {
  std::string body = "{\"entries\":[";
  for (size_t i = 0; i < page.entries.size(); ++i) {
    absl::StrAppend(&body, i == 0 ? "" : ",", RevocationEntryJson(page.entries[i]));
  }
  absl::StrAppend(&body, "],\"sequence\":", page.sequence, ",\"next_after\":", page.next_after,
                  ",\"more\":", page.more ? "true" : "false", "}");
  return body;
}

json PolicyJson(const store::StoredPolicy& p) {
  return json{{"version", p.version},
              {"sha256", p.sha256_hex},
              {"created_at", base::Rfc3339(p.created_at)}};
}

json TokenJson(const store::TokenRecord& t) {
  return json{{"id", t.id},
              {"principal", t.principal},
              {"admin", t.admin},
              {"auditor", t.auditor},
              {"created_at", base::Rfc3339(t.created_at)},
              {"expires_at", TimeOrNull(t.expires_at)},
              {"revoked_at", TimeOrNull(t.revoked_at)}};
}

json TreeHeadJson(const ledger::TreeHead& h, const std::string& key_id) {
  return json{{"tree_size", h.tree_size},
              {"timestamp", h.timestamp_ms},
              {"root_hash", B64(h.root)},
              {"signature", B64(h.signature)},
              {"key_id", key_id}};
}

json HashListJson(const std::vector<ledger::Hash>& hashes) {
  json out = json::array();
  for (const ledger::Hash& h : hashes) out.push_back(B64(h));
  return out;
}

json EntryJson(const ledger::EntryRow& row) {
  json out{{"index", row.index}, {"event_id", row.event_id}, {"entry", B64(row.entry)}};
  if (auto entry = ledger::DecodeEntry(row.entry); entry.ok()) {
    out["event"] = json::parse(entry->event, nullptr, false);
  } else {
    out["event"] = nullptr;
  }
  return out;
}

std::string LeafHashJson(const ledger::EntryRow& row) { return B64(ledger::LeafHash(row.entry)); }

json TraceJson(const ledger::Trace& trace, const std::string& key_id) {
  json out = EntryJson(trace.row);
  json chain = json::array();
  for (const ledger::TraceHop& hop : trace.chain) {
    chain.push_back(json{{"instance_id", hop.record.instance_id},
                         {"spiffe_id", hop.record.spiffe_id},
                         {"principal", hop.record.principal},
                         {"policy_version", hop.record.policy_version},
                         {"parent", NullableString(hop.parent_spiffe_id)},
                         {"revoked", hop.record.revoked_sequence.has_value()}});
  }
  out["chain"] = std::move(chain);
  out["principal"] = trace.principal;
  out["policy"] =
      trace.policy ? json{{"version", trace.policy->version}, {"sha256", trace.policy->sha256_hex}}
                   : json(nullptr);
  out["input_digest"] = NullableString(trace.event.input_digest);
  out["payload_digest"] = NullableString(trace.event.payload_digest);
  out["decision"] = NullableString(trace.event.decision);
  out["reason"] = NullableString(trace.event.reason);
  const std::string leaf = LeafHashJson(trace.row);
  out["inclusion"] = json{{"verified", trace.verified},
                          {"tree_size", trace.head.tree_size},
                          {"root_hash", B64(trace.head.root)},
                          {"leaf_hash", leaf},
                          {"audit_path", HashListJson(trace.audit_path)},
                          {"tree_head", TreeHeadJson(trace.head, key_id)}};
  return out;
}

}  // namespace tw::server
