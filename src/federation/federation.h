// Federation with foreign trust domains (SPIFFE Federation): a relationship names the
// foreign trust domain, its bundle endpoint and the endpoint's profile, each explicit and
// never inferred; its bundle is fetched from that endpoint, authenticated as the profile
// says, and kept bound to that trust domain. Knows nothing of servers or stores.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/bundle.h"
#include "core/spiffe_id.h"

namespace tw::federation {

enum class Profile { kHttpsWeb, kHttpsSpiffe };
absl::string_view ProfileName(Profile profile);

struct Relationship {
  core::TrustDomain trust_domain;  // whose bundle the endpoint serves
  std::string endpoint_url;        // https, no userinfo
  Profile profile = Profile::kHttpsSpiffe;
  // https_spiffe: the SPIFFE ID the endpoint's X.509-SVID must carry, exactly.
  std::optional<core::SpiffeId> endpoint_spiffe_id;
};

// The relationship the operator named; InvalidArgument saying what is wrong: a malformed
// trust domain, a URL that is not https or carries userinfo or a fragment, an unknown
// profile, an https_spiffe relationship without an endpoint SPIFFE ID (or an https_web
// one with one), or the trust domain `own` (ours is not federated with itself).
absl::StatusOr<Relationship> MakeRelationship(absl::string_view trust_domain,
                                              absl::string_view endpoint_url,
                                              absl::string_view profile,
                                              absl::string_view endpoint_spiffe_id,
                                              const core::TrustDomain& own);

// Fetches the relationship's bundle with GET on its endpoint URL. https_web: the server is
// authenticated by the system's CA certificates (SSL_CERT_FILE too) and its host name;
// https_spiffe: by an X.509-SVID of exactly endpoint_spiffe_id, verified with the bundle
// of that ID's trust domain in `trusted` (for a self-serving endpoint, the foreign bundle
// held now). Up to 3 redirects to https URLs are followed, each hop authenticated the same
// way, and none is remembered; `timeout` bounds the whole fetch. Anything but a 200 with a
// SPIFFE bundle holding an X.509 authority is an error; the bundle is bound to the
// relationship's trust domain.
absl::StatusOr<core::Bundle> FetchBundle(const Relationship& relationship,
                                         const core::BundleSet& trusted,
                                         absl::Duration timeout = absl::Seconds(10));

// OK unless one of the bundle's X.509 authorities names (by a spiffe:// URI SAN) another
// trust domain than `trust_domain`: a bundle is bound to its trust domain by configuration,
// and one that says otherwise is refused (InvalidArgument) rather than rebound.
absl::Status CheckBoundTo(const core::Bundle& bundle, const core::TrustDomain& trust_domain);

// Whether `fetched` replaces `held` (SPIFFE Federation §4.2): when both carry a
// spiffe_sequence, only a higher one does; otherwise the most recently retrieved wins.
bool Supersedes(const core::Bundle& fetched, const core::Bundle& held);

// How long after a fetch to poll again: the bundle's spiffe_refresh_hint, else 5 minutes
// (the recommended default), kept between 5 seconds and 24 hours whatever the hint says.
absl::Duration RefreshInterval(const core::Bundle* bundle);

}  // namespace tw::federation
