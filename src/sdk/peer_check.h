// Authenticating and authorizing a peer from the bundle and the revocation stream, shared
// by Verifier and the TLS contexts. Not installed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "core/x509_verifier.h"
#include "sdk/identity_state.h"
#include "trustwarden/verifier.h"

namespace trustwarden::internal {

class PeerCheck {
 public:
  explicit PeerCheck(Endpoint endpoint);
  PeerCheck(const PeerCheck&) = delete;
  PeerCheck& operator=(const PeerCheck&) = delete;

  // A DER chain, leaf first. The ledger subject of a verified leaf is set in `subject`.
  Decision CheckX509(const std::vector<tw::base::ByteView>& chain, const Requirement& r) const;
  Decision CheckJwt(const std::string& token, const std::string& audience,
                    const Requirement& r) const;
  const Endpoint& endpoint() const { return endpoint_; }

 private:
  Decision Judge(const tw::core::SpiffeId& id, const tw::core::SvidAttributes* attributes,
                 const Requirement& r) const;

  Endpoint endpoint_;
  tw::core::X509Verifier x509_;
};

}  // namespace trustwarden::internal
