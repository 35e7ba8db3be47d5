// Decoders for the JSON bodies of the HTTP API: strict (no unknown or duplicate members,
// right types) and syntax-checked; the decisions are the authority's. Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "authority/requests.h"

namespace tw::server {

// POST /v1/identities: {name, scope[], ttl, trust_level, csr}.
absl::StatusOr<authority::CreateIdentityRequest> DecodeCreateIdentity(absl::string_view body);

// POST /v1/identities/renew: {csr}.
absl::StatusOr<std::string> DecodeRenew(absl::string_view body);

// POST /v1/jwt-svids: {audience[], ttl?}.
absl::StatusOr<authority::JwtRequest> DecodeJwtRequest(absl::string_view body);

// POST /v1/revocations: exactly one of {instance, agent, subtree, principal}, reason?.
absl::StatusOr<authority::RevokeRequest> DecodeRevoke(absl::string_view body);

// POST /v1/policies: {source} (TOML text).
absl::StatusOr<std::string> DecodePolicy(absl::string_view body);

// POST /v1/tokens: {principal, auditor?, ttl?}.
struct TokenRequest {
  std::string principal;
  bool auditor = false;
  std::optional<absl::Duration> ttl;  // unset: the token does not expire
  bool force = false;                 // even for a principal the policy does not name
};
absl::StatusOr<TokenRequest> DecodeTokenRequest(absl::string_view body);

// POST /v1/federation: {trust_domain, endpoint_url, profile, endpoint_spiffe_id?, bundle?},
// bundle being the foreign trust domain's first bundle (SPIFFE JSON or PEM).
struct FederationRequest {
  std::string trust_domain, endpoint_url, profile, endpoint_spiffe_id, bundle;
};
absl::StatusOr<FederationRequest> DecodeFederation(absl::string_view body);

// POST /v1/ca/activate: {}, or {"force": true} to activate before the refresh hint, and
// in upstream mode {"chain": PEM}, the prepared authority's certificate from the root.
struct ActivateRequest {
  bool force = false;
  std::string chain_pem;
};
absl::StatusOr<ActivateRequest> DecodeActivate(absl::string_view body);
// POST /v1/ca/revoke-authority: {"id": N}, N >= 1.
absl::StatusOr<int64_t> DecodeAuthorityId(absl::string_view body);
// POST /v1/ca/retire: {"id": N}, or {} or no body (every old authority that may retire).
absl::StatusOr<std::optional<int64_t>> DecodeRetire(absl::string_view body);

// POST /v1/ledger/events: {"events": [base64url...], "signature": base64url}.
struct LedgerEventsRequest {
  std::vector<std::string> events;
  std::string signature;
  std::string chain;  // PEM of the signing SVID when it is not the caller's (a spooled batch)
};
absl::StatusOr<LedgerEventsRequest> DecodeLedgerEvents(absl::string_view body);

}  // namespace tw::server
