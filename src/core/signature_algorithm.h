// X.509 AlgorithmIdentifiers of the signature schemes (RFC 5758 ECDSA, RFC 8017 PKCS #1
// v1.5, RFC 4055 RSASSA-PSS).
#pragma once

#include "absl/status/statusor.h"
#include "base/bytes.h"
#include "crypto/signature_scheme.h"

namespace tw::core {

// The DER AlgorithmIdentifier a CA signs certificates and requests with: ecdsa-with-SHA256,
// ecdsa-with-SHA384, or RSASSA-PSS with SHA-256, MGF1 SHA-256 and a 32-byte salt, all
// parameters explicit (RFC 4055 §3.1). InvalidArgument for another scheme.
absl::StatusOr<base::ByteView> SignatureAlgorithmDer(crypto::SignatureScheme scheme);

// The scheme of an AlgorithmIdentifier's contents (inside its SEQUENCE): ECDSA with SHA-2
// (no parameters), PKCS #1 v1.5 with SHA-2 (NULL or absent parameters), or RSASSA-PSS with
// SHA-2, MGF1 with the same hash, a salt as long as the digest and the default trailer.
// InvalidArgument naming what is unsupported or malformed.
absl::StatusOr<crypto::SignatureScheme> ParseSignatureAlgorithm(base::ByteView contents);

}  // namespace tw::core
