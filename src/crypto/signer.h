// The signing seam: "sign these bytes" with a key that may live in software or an HSM.
// Certificates and tokens are built by encoding the to-be-signed bytes and calling Sign.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "base/bytes.h"
#include "crypto/public_key.h"
#include "crypto/signature_scheme.h"

namespace tw::crypto {

// Implementations are thread-safe: Sign may be called concurrently.
class Signer {
 public:
  virtual ~Signer() = default;

  // A stable identifier of the key (used as JWT "kid").
  virtual const std::string& key_id() const = 0;
  // The scheme Sign produces (ECDSA P-256 -> kEcdsaSha256, P-384 -> kEcdsaSha384, RSA ->
  // kRsaPssSha256).
  virtual SignatureScheme algorithm() const = 0;
  virtual const PublicKey& public_key() const = 0;
  const base::Bytes& public_key_der() const { return public_key().spki_der(); }

  // Hashes `data` with the scheme's digest and signs it. ECDSA signatures are DER
  // ECDSA-Sig-Value, RSA ones as long as the modulus. Unavailable/Internal when the key
  // store fails.
  virtual absl::StatusOr<base::Bytes> Sign(base::ByteView data) const = 0;
};

}  // namespace tw::crypto
