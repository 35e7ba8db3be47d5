// A validated public key (EC P-256/P-384/P-521 or RSA >= 2048 bits) that verifies
// signatures. Immutable, cheap to copy, thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/bytes.h"
#include "crypto/signature_scheme.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace tw::crypto {

enum class KeyType { kEcP256, kEcP384, kEcP521, kRsa };

// The JOSE / NIST curve name ("P-256") of an EC key type; empty for RSA.
absl::string_view CurveName(KeyType t);
// Bytes of one EC coordinate (32, 48, 66); 0 for RSA.
size_t FieldBytes(KeyType t);

// A JOSE r||s ECDSA signature on curve `t` in its low-S form: s replaced by n - s when it
// is above n/2, so that each signature has one encoding (both verify). Empty when `raw`
// is not 2 * FieldBytes(t) long or `t` is not an EC curve.
base::Bytes EcdsaLowS(KeyType t, base::ByteView raw);

class PublicKey {
 public:
  // Parses a DER SubjectPublicKeyInfo. EC keys must use a named curve above and an
  // uncompressed point on it; RSA keys need at least 2048 bits. InvalidArgument otherwise.
  static absl::StatusOr<PublicKey> FromSpkiDer(base::ByteView der);
  // Parses a PEM "PUBLIC KEY" block.
  static absl::StatusOr<PublicKey> FromPem(absl::string_view pem);
  // From JWK members (RFC 7518 §6.2.1 / §6.3.1), already base64url-decoded.
  static absl::StatusOr<PublicKey> FromEcCoordinates(KeyType type, base::ByteView x,
                                                     base::ByteView y);
  static absl::StatusOr<PublicKey> FromRsaComponents(base::ByteView n, base::ByteView e);
  // Borrows an OpenSSL key (EC or RSA public part).
  static absl::StatusOr<PublicKey> FromEvpPkey(EVP_PKEY* pkey);

  KeyType type() const;
  const base::Bytes& spki_der() const;
  // EC affine coordinates, each FieldBytes(type()) long; empty for RSA.
  base::ByteView ec_x() const;
  base::ByteView ec_y() const;
  // RSA modulus and exponent, big-endian; empty for EC.
  base::ByteView rsa_n() const;
  base::ByteView rsa_e() const;
  // RFC 7638 JWK thumbprint (SHA-256, base64url): a stable key id.
  const std::string& Thumbprint() const;

  // True when `scheme` signs with this kind of key (ECDSA with EC, RSA schemes with RSA).
  bool Accepts(SignatureScheme scheme) const;
  // Verifies `signature` over `data` (hashed as the scheme says). ECDSA signatures are
  // DER ECDSA-Sig-Value. InvalidArgument for a wrong key type; Unauthenticated when the
  // signature does not verify.
  absl::Status Verify(SignatureScheme scheme, base::ByteView data, base::ByteView signature) const;

  bool operator==(const PublicKey& other) const { return spki_der() == other.spki_der(); }

 private:
  struct Impl;
  explicit PublicKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// The digest of `data` under the scheme's hash (SHA-256/384/512).
base::Bytes SchemeDigest(SignatureScheme scheme, base::ByteView data);

}  // namespace tw::crypto
