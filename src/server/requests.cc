#include "server/requests.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "core/json.h"

namespace tw::server {
namespace {

using nlohmann::json;

constexpr size_t kMaxBody = 256 * 1024;
constexpr size_t kMaxLedgerBody = 1 << 20;  // a full batch of events

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(base::Quote(field), ": ", why));
}

absl::StatusOr<std::string> GetString(const std::string& name, json& value, size_t max = 4096) {
  if (!value.is_string()) return Invalid(name, "must be a string");
  std::string s = value.get<std::string>();
  if (s.size() > max) return Invalid(name, absl::StrCat("longer than ", max, " bytes"));
  return s;
}

absl::StatusOr<std::vector<std::string>> GetStrings(const std::string& name, json& value,
                                                    size_t max_items = 64) {
  if (!value.is_array()) return Invalid(name, "must be an array of strings");
  if (value.size() > max_items) return Invalid(name, absl::StrCat("more than ", max_items));
  std::vector<std::string> out;
  for (json& item : value) {
    if (!item.is_string()) return Invalid(name, "must be an array of strings");
    out.push_back(item.get<std::string>());
    if (out.back().size() > 1024) return Invalid(name, "an item is longer than 1024 bytes");
  }
  return out;
}

absl::StatusOr<absl::Duration> GetDuration(const std::string& name, json& value) {
  TW_ASSIGN_OR_RETURN(std::string s, GetString(name, value, 32));
  auto d = core::ParseDuration(s);
  if (!d.ok()) return Invalid(name, d.status().message());
  return *d;
}

absl::Status Unknown(const std::string& name) { return Invalid(name, "unknown field"); }

}  // namespace

absl::StatusOr<authority::CreateIdentityRequest> DecodeCreateIdentity(absl::string_view body) {
  authority::CreateIdentityRequest r;
  bool has_name = false, has_csr = false;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        if (name == "name") {
          TW_ASSIGN_OR_RETURN(std::string s, GetString(name, value, 256));
          auto parsed = core::AgentName::Parse(s);
          if (!parsed.ok()) return Invalid(name, parsed.status().message());
          r.name = *std::move(parsed);
          has_name = true;
        } else if (name == "scope") {
          TW_ASSIGN_OR_RETURN(std::vector<std::string> s, GetStrings(name, value));
          auto parsed = core::ParseScopes(s);
          if (!parsed.ok()) return Invalid(name, parsed.status().message());
          r.scopes = *std::move(parsed);
        } else if (name == "ttl") {
          TW_ASSIGN_OR_RETURN(r.ttl, GetDuration(name, value));
        } else if (name == "trust_level") {
          TW_ASSIGN_OR_RETURN(std::string s, GetString(name, value, 32));
          auto level = core::ParseTrustLevel(s);
          if (!level.ok()) return Invalid(name, level.status().message());
          r.trust_level = *level;
        } else if (name == "csr") {
          TW_ASSIGN_OR_RETURN(r.csr, GetString(name, value, 64 * 1024));
          has_csr = true;
        } else {
          return Unknown(name);
        }
        return absl::OkStatus();
      },
      kMaxBody));
  if (!has_name) return Invalid("name", "is required");
  if (!has_csr) return Invalid("csr", "is required");
  return r;
}

absl::StatusOr<std::string> DecodeRenew(absl::string_view body) {
  std::optional<std::string> csr;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        if (name != "csr") return Unknown(name);
        TW_ASSIGN_OR_RETURN(csr, GetString(name, value, 64 * 1024));
        return absl::OkStatus();
      },
      kMaxBody));
  if (!csr) return Invalid("csr", "is required");
  return *std::move(csr);
}

absl::StatusOr<authority::JwtRequest> DecodeJwtRequest(absl::string_view body) {
  authority::JwtRequest r;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        if (name == "audience") {
          TW_ASSIGN_OR_RETURN(r.audience, GetStrings(name, value, 16));
          for (const std::string& a : r.audience) {
            if (a.empty()) return Invalid(name, "an audience is empty");
          }
        } else if (name == "ttl") {
          TW_ASSIGN_OR_RETURN(r.ttl, GetDuration(name, value));
        } else {
          return Unknown(name);
        }
        return absl::OkStatus();
      },
      kMaxBody));
  if (r.audience.empty()) return Invalid("audience", "at least one audience is required");
  return r;
}

absl::StatusOr<authority::RevokeRequest> DecodeRevoke(absl::string_view body) {
  std::optional<authority::RevokeRequest> r;
  std::string reason;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        if (name == "reason") {
          TW_ASSIGN_OR_RETURN(reason, GetString(name, value, 1024));
          return absl::OkStatus();
        }
        revocation::Kind kind;
        if (name == "instance") {
          kind = revocation::Kind::kInstance;
        } else if (name == "agent") {
          kind = revocation::Kind::kAgent;
        } else if (name == "subtree") {
          kind = revocation::Kind::kSubtree;
        } else if (name == "principal") {
          kind = revocation::Kind::kPrincipal;
        } else {
          return Unknown(name);
        }
        if (r) return Invalid(name, "give exactly one of instance, agent, subtree, principal");
        TW_ASSIGN_OR_RETURN(std::string target, GetString(name, value, 256));
        absl::Status ok;
        if (kind == revocation::Kind::kAgent) {
          ok = core::AgentName::Parse(target).status();
        } else if (kind == revocation::Kind::kPrincipal) {
          ok = authority::CheckPrincipalName(target);
        } else {
          ok = core::CheckInstanceId(target);
        }
        if (!ok.ok()) return Invalid(name, ok.message());
        r = authority::RevokeRequest{kind, std::move(target), {}};
        return absl::OkStatus();
      },
      kMaxBody));
  if (!r) return Invalid("instance", "give one of instance, agent, subtree, principal");
  r->reason = std::move(reason);
  return *std::move(r);
}

absl::StatusOr<std::string> DecodePolicy(absl::string_view body) {
  std::optional<std::string> source;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        if (name != "source") return Unknown(name);
        TW_ASSIGN_OR_RETURN(source, GetString(name, value, 200 * 1024));
        return absl::OkStatus();
      },
      kMaxBody));
  if (!source) return Invalid("source", "is required");
  return *std::move(source);
}

absl::StatusOr<ActivateRequest> DecodeActivate(absl::string_view body) {
  ActivateRequest r;
  if (body.empty()) return r;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        if (name == "force") {
          if (!value.is_boolean()) return Invalid(name, "must be true or false");
          r.force = value.get<bool>();
        } else if (name == "chain") {
          if (!value.is_string() || value.get_ref<const std::string&>().empty()) {
            return Invalid(name, "must be the PEM certificates of the chain");
          }
          r.chain_pem = value.get<std::string>();
        } else {
          return Unknown(name);
        }
        return absl::OkStatus();
      },
      kMaxBody));
  return r;
}

absl::StatusOr<std::optional<int64_t>> DecodeRetire(absl::string_view body) {
  std::optional<int64_t> id;
  if (body.empty()) return id;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        if (name != "id") return Unknown(name);
        if (!value.is_number_integer() || value.get<int64_t>() < 1) {
          return Invalid(name, "must be an authority id (a whole number from 1)");
        }
        id = value.get<int64_t>();
        return absl::OkStatus();
      },
      kMaxBody));
  return id;
}

absl::StatusOr<int64_t> DecodeAuthorityId(absl::string_view body) {
  TW_ASSIGN_OR_RETURN(std::optional<int64_t> id, DecodeRetire(body));
  if (!id) return Invalid("id", "is required");
  return *id;
}

absl::StatusOr<TokenRequest> DecodeTokenRequest(absl::string_view body) {
  std::optional<std::string> principal;
  TokenRequest out;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        if (name == "auditor") {
          if (!value.is_boolean()) return Invalid(name, "must be true or false");
          out.auditor = value.get<bool>();
          return absl::OkStatus();
        }
        if (name == "ttl") {
          TW_ASSIGN_OR_RETURN(out.ttl, GetDuration(name, value));
          return absl::OkStatus();
        }
        if (name == "force") {
          if (!value.is_boolean()) return Invalid(name, "must be true or false");
          out.force = value.get<bool>();
          return absl::OkStatus();
        }
        if (name != "principal") return Unknown(name);
        TW_ASSIGN_OR_RETURN(principal, GetString(name, value, 256));
        TW_RETURN_IF_ERROR(authority::CheckPrincipalName(*principal));
        return absl::OkStatus();
      },
      kMaxBody));
  if (!principal) return Invalid("principal", "is required");
  out.principal = *std::move(principal);
  return out;
}

absl::StatusOr<FederationRequest> DecodeFederation(absl::string_view body) {
  FederationRequest out;
  const std::pair<const char*, std::string*> fields[] = {
      {"trust_domain", &out.trust_domain},
      {"endpoint_url", &out.endpoint_url},
      {"profile", &out.profile},
      {"endpoint_spiffe_id", &out.endpoint_spiffe_id},
      {"bundle", &out.bundle}};
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        for (const auto& [field, target] : fields) {
          if (name != field) continue;
          TW_ASSIGN_OR_RETURN(*target, GetString(name, value, name == "bundle" ? kMaxBody : 2048));
          return absl::OkStatus();
        }
        return Unknown(name);
      },
      kMaxBody));
  for (const auto& [field, target] : fields) {
    const absl::string_view name = field;
    const bool optional = name == "endpoint_spiffe_id" || name == "bundle";
    if (!optional && target->empty()) return Invalid(name, "is required");
  }
  return out;
}

absl::StatusOr<LedgerEventsRequest> DecodeLedgerEvents(absl::string_view body) {
  LedgerEventsRequest out;
  bool has_events = false, has_signature = false;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      body, "request body",
      [&](const std::string& name, json&& value) -> absl::Status {
        if (name == "signature") {
          TW_ASSIGN_OR_RETURN(out.signature, GetString(name, value, 1024));
          has_signature = true;
          return absl::OkStatus();
        }
        if (name == "chain") {
          TW_ASSIGN_OR_RETURN(out.chain, GetString(name, value, 64 * 1024));
          return absl::OkStatus();
        }
        if (name != "events") return Unknown(name);
        if (!value.is_array()) return Invalid(name, "must be an array of base64url strings");
        for (json& e : value) {
          if (!e.is_string()) return Invalid(name, "must be an array of base64url strings");
          out.events.push_back(e.get<std::string>());
        }
        has_events = true;
        return absl::OkStatus();
      },
      kMaxLedgerBody));
  if (!has_events) return Invalid("events", "is required");
  if (!has_signature) return Invalid("signature", "is required");
  return out;
}

}  // namespace tw::server
