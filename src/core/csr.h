// PKCS#10 certificate signing requests (RFC 2986) as SVID requests: the subject key and
// proof of its possession. Thread-safe (no shared state).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/public_key.h"

namespace tw::core {

struct CertificateRequest {
  crypto::PublicKey public_key;
  std::vector<std::string> uri_sans;  // requested URI SANs, if any
};

// Parses a PEM or DER CSR and checks its self-signature. InvalidArgument when it is
// malformed, the signature fails, the key is not EC P-256/P-384/P-521 or RSA >= 2048,
// it requests a CA (basicConstraints cA=true), or it asks for SANs other than URIs.
absl::StatusOr<CertificateRequest> ParseCertificateRequest(absl::string_view pem_or_der);

}  // namespace tw::core
