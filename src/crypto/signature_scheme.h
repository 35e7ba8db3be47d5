// Signature schemes TrustWarden signs or verifies with, and their JOSE / X.509 names.
#pragma once

#include <optional>

#include "absl/strings/string_view.h"
#include "base/bytes.h"

namespace tw::crypto {

enum class SignatureScheme {
  kEcdsaSha256,     // ES256 / ecdsa-with-SHA256
  kEcdsaSha384,     // ES384 / ecdsa-with-SHA384
  kEcdsaSha512,     // ES512 / ecdsa-with-SHA512
  kRsaPkcs1Sha256,  // RS256 / sha256WithRSAEncryption
  kRsaPkcs1Sha384,
  kRsaPkcs1Sha512,
  kRsaPssSha256,  // PS256 (JOSE only)
  kRsaPssSha384,
  kRsaPssSha512,
};
inline constexpr int kNumSignatureSchemes = 9;

bool IsEcdsa(SignatureScheme s);
// The JOSE "alg" name (RFC 7518 §3.1).
absl::string_view JoseName(SignatureScheme s);
std::optional<SignatureScheme> SchemeFromJoseName(absl::string_view alg);

// DER ECDSA-Sig-Value <-> JOSE fixed-width r||s (RFC 7518 §3.4); `field_bytes` per half.
// Empty result when the input is malformed or does not fit.
base::Bytes EcdsaDerToRaw(base::ByteView der, size_t field_bytes);
base::Bytes EcdsaRawToDer(base::ByteView raw);

}  // namespace tw::crypto
