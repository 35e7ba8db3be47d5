// JWT-SVIDs (JWT-SVID §2-§4, shared/SPIFFE.md §3): minting through crypto::Signer and
// validation against the bundle of the subject's own trust domain. Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/attributes.h"
#include "core/bundle.h"
#include "core/spiffe_id.h"
#include "crypto/signer.h"

namespace tw::core {

struct JwtSvidRequest {
  SpiffeId subject;
  std::vector<std::string> audience;  // at least one; one is strongly advised (§3.2)
  absl::Time issued_at;
  absl::Duration ttl;
  SvidAttributes attributes;  // "scope" and the tw_* private claims
};

// The validated content of a JWT-SVID.
struct JwtSvid {
  SpiffeId subject;
  std::vector<std::string> audience;
  absl::Time expiry;
  std::optional<absl::Time> issued_at;
  std::string token_id;  // "jti", may be empty
  // From "scope" and the tw_* claims; left empty unless sub's trust domain is one of the
  // `attribute_trust_domains` given to ValidateJwtSvid.
  SvidAttributes attributes;
};

// Header {alg, kid, typ: JWT}; claims sub, aud (array), exp, iat, jti, scope and the
// TrustWarden claims tw_trust_level, tw_policy_version, tw_parent, tw_principal.
// InvalidArgument for an empty audience or a non-positive TTL.
absl::StatusOr<std::string> MintJwtSvid(const crypto::Signer& signer,
                                        const JwtSvidRequest& request);

// Clock skew tolerated for exp, nbf and iat.
inline constexpr absl::Duration kJwtLeeway = absl::Seconds(30);

// Validates a compact JWS per §3.2: algorithm allow-list first, then header members
// (alg, kid, typ only; typ JWT or JOSE), sub as a strict SPIFFE ID, the jwt-svid keys of
// sub's trust domain (by kid, or every fitting key when kid is absent), the signature,
// exp/nbf/iat against `now`, and `audience` membership. InvalidArgument: malformed;
// Unauthenticated: any other failure, with the reason.
// TrustWarden claims are honoured only for subjects in `attribute_trust_domains` (a
// federated domain's key can assert any scope).
absl::StatusOr<JwtSvid> ValidateJwtSvid(
    absl::string_view token, absl::string_view audience, const BundleSet& bundles, absl::Time now,
    const std::vector<TrustDomain>& attribute_trust_domains = {});

}  // namespace tw::core
