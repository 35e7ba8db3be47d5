// Authenticating and authorizing a peer from the bundle and the revocation stream, shared
// by Verifier and the TLS contexts. Not installed; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/bytes.h"
#include "core/x509_verifier.h"
#include "sdk/endpoint.h"
#include "trustwarden/verifier.h"

namespace trustwarden::internal {

class PeerCheck {
 public:
  explicit PeerCheck(Endpoint endpoint);
  PeerCheck(const PeerCheck&) = delete;
  PeerCheck& operator=(const PeerCheck&) = delete;

  // The decision on a DER chain, leaf first: refused with the reason when it does not
  // verify, is revoked, the stream is stale, or it misses `r`. InvalidArgument when `r`
  // itself is malformed (its scope or trust level).
  absl::StatusOr<Decision> CheckX509(const std::vector<tw::base::ByteView>& chain,
                                     const Requirement& r) const;
  // The same for a JWT-SVID for `audience`.
  absl::StatusOr<Decision> CheckJwt(const std::string& token, const std::string& audience,
                                    const Requirement& r) const;

 private:
  // Whether `id` is of a trust domain whose TrustWarden attributes count (ours).
  bool Ours(const tw::core::SpiffeId& id) const;
  absl::StatusOr<Decision> Judge(const tw::core::SpiffeId& id,
                                 const tw::core::SvidAttributes* attributes,
                                 const Requirement& r) const;

  Endpoint endpoint_;
  tw::core::X509Verifier x509_;
};

}  // namespace trustwarden::internal
