// Decoders for the JSON bodies of the HTTP API: strict (no unknown or duplicate members,
// right types) and syntax-checked. Policy decisions are the Authority's. Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/agent_name.h"
#include "core/scope.h"
#include "store/store.h"

namespace tw::server {

// POST /v1/identities: {name, scope[], ttl, trust_level, csr}.
struct CreateIdentityRequest {
  core::AgentName name;
  std::vector<core::Scope> scopes;
  std::optional<absl::Duration> ttl;  // default chosen by the Authority
  core::TrustLevel trust_level = core::TrustLevel::kLow;
  std::string csr;  // PEM, parsed by the Authority
};
absl::StatusOr<CreateIdentityRequest> DecodeCreateIdentity(absl::string_view body);

// POST /v1/identities/renew: {csr}.
absl::StatusOr<std::string> DecodeRenew(absl::string_view body);

// POST /v1/jwt-svids: {audience[], ttl?}.
struct JwtRequest {
  std::vector<std::string> audience;
  std::optional<absl::Duration> ttl;
};
absl::StatusOr<JwtRequest> DecodeJwtRequest(absl::string_view body);

// POST /v1/revocations: exactly one of {instance, agent, subtree, principal}, reason?.
struct RevokeRequest {
  revocation::Kind kind;
  std::string target;
  std::string reason;
};
absl::StatusOr<RevokeRequest> DecodeRevoke(absl::string_view body);

// POST /v1/policies: {source} (TOML text).
absl::StatusOr<std::string> DecodePolicy(absl::string_view body);

// POST /v1/tokens: {principal, auditor?, ttl?}.
struct TokenRequest {
  std::string principal;
  bool auditor = false;
  std::optional<absl::Duration> ttl;  // unset: the token does not expire
};
absl::StatusOr<TokenRequest> DecodeTokenRequest(absl::string_view body);

// POST /v1/ledger/events: {"events": [base64url...], "signature": base64url}.
struct LedgerEventsRequest {
  std::vector<std::string> events;
  std::string signature;
  std::string chain;  // PEM of the signing SVID when it is not the caller's (a spooled batch)
};
absl::StatusOr<LedgerEventsRequest> DecodeLedgerEvents(absl::string_view body);

// A principal name: 1..128 bytes of a-z 0-9 '-' '_' '.'.
absl::Status CheckPrincipalName(absl::string_view name);

}  // namespace tw::server
