// Builds X.509-SVIDs and CA certificates (X509-SVID §4, §5; RFC 5280) by encoding the
// to-be-signed DER from a template and signing it through crypto::Signer, so software
// and HSM keys share one path. Thread-safe when the Signer is.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/bytes.h"
#include "core/attributes.h"
#include "core/certificate.h"
#include "core/spiffe_id.h"
#include "crypto/public_key.h"
#include "crypto/signer.h"

namespace tw::core {

struct LeafRequest {
  SpiffeId spiffe_id;  // must have a path (X509-SVID §2: leaf IDs are not the TD's own)
  absl::Time not_before;
  absl::Time not_after;  // capped at the earliest notAfter of the CA chain
  SvidAttributes attributes;
  std::vector<std::string> dns_names;     // extra SANs (server certificates)
  std::vector<base::Bytes> ip_addresses;  // 4 or 16 bytes each
};

struct CaRequest {
  TrustDomain trust_domain;
  absl::Time not_before;
  absl::Time not_after;
  std::optional<int> path_len;  // pathLenConstraint; none = unlimited (capped by the parent's)
};

class X509Issuer {
 public:
  // `ca_chain`: the issuing CA certificate (DER) first, then the certificates above it
  // up to the root; they are appended to every issued chain except the root. The CA's
  // public key must be the signer's. InvalidArgument otherwise.
  static absl::StatusOr<X509Issuer> Create(std::shared_ptr<const crypto::Signer> signer,
                                           std::vector<base::Bytes> ca_chain);

  // A self-signed root CA for `request.trust_domain`: URI SAN spiffe://TD, cA, keyCertSign.
  static absl::StatusOr<base::Bytes> SelfSignedCa(const crypto::Signer& signer,
                                                  const CaRequest& request);

  // A leaf X.509-SVID (DER) for `subject_key`. InvalidArgument for an ID outside the
  // CA's trust domain, a root ID, or an empty validity window.
  absl::StatusOr<base::Bytes> IssueLeaf(const LeafRequest& request,
                                        const crypto::PublicKey& subject_key) const;
  // An intermediate CA certificate (DER) under this CA.
  absl::StatusOr<base::Bytes> IssueCa(const CaRequest& request,
                                      const crypto::PublicKey& subject_key) const;

  const TrustDomain& trust_domain() const { return state_->trust_domain; }
  const crypto::Signer& signer() const { return *state_->signer; }
  // The issuing CA certificate, and its whole chain (it first, up to the root).
  const Certificate& certificate() const { return state_->chain.front(); }
  const std::vector<Certificate>& chain() const { return state_->chain; }
  // The chain an issued leaf is served with: CA certificates below the root.
  const std::vector<base::ByteView>& served_chain() const { return state_->served; }

 private:
  struct State {
    std::shared_ptr<const crypto::Signer> signer;
    std::vector<Certificate> chain;
    std::vector<base::ByteView> served;
    TrustDomain trust_domain;
    base::Bytes ski;             // the CA's subjectKeyIdentifier, for AKI
    absl::Time chain_not_after;  // issued certificates never outlive any CA above them
  };
  explicit X509Issuer(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

// A PKCS#10 request (RFC 2986) for `signer`'s key, signed by it as proof of possession:
// empty subject, no attributes; the server decides the SPIFFE ID. ECDSA keys only.
absl::StatusOr<base::Bytes> BuildCertificateRequest(const crypto::Signer& signer);

}  // namespace tw::core
