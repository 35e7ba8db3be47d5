#include "core/signature_algorithm.h"

#include <array>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "crypto/der.h"

namespace tw::core {
namespace {

namespace der = crypto::der;
using crypto::SignatureScheme;

constexpr uint8_t kEcdsaSha256Der[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                       0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
constexpr uint8_t kEcdsaSha384Der[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                       0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
// SEQUENCE { id-RSASSA-PSS, RSASSA-PSS-params { [0] sha256 NULL, [1] mgf1 { sha256 NULL },
// [2] 32 } }
constexpr uint8_t kRsaPssSha256Der[] = {
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30,
    0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
    0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
    0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
    0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20};

// OBJECT IDENTIFIER contents.
constexpr uint8_t kOidRsaPss[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a};
constexpr uint8_t kOidMgf1[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08};

struct Named {
  std::array<uint8_t, 9> oid;
  size_t oid_size;
  SignatureScheme scheme;
};
// Schemes named by their OID alone.
constexpr Named kByOid[] = {
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}, 8, SignatureScheme::kEcdsaSha256},
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}, 8, SignatureScheme::kEcdsaSha384},
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04}, 8, SignatureScheme::kEcdsaSha512},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b}, 9, SignatureScheme::kRsaPkcs1Sha256},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c}, 9, SignatureScheme::kRsaPkcs1Sha384},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d}, 9, SignatureScheme::kRsaPkcs1Sha512},
};
// The SHA-2 hashes of PSS, with the scheme and digest length each gives.
constexpr Named kPssHashes[] = {
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}, 9, SignatureScheme::kRsaPssSha256},
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02}, 9, SignatureScheme::kRsaPssSha384},
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03}, 9, SignatureScheme::kRsaPssSha512},
};
constexpr int64_t kDigestBytes[] = {32, 48, 64};

bool Is(const Named& n, base::ByteView oid) {
  return base::Equal(oid, base::ByteView(n.oid.data(), n.oid_size));
}

absl::Status Unsupported(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("signature algorithm: ", what));
}

// A hash AlgorithmIdentifier (contents): which of kPssHashes, with NULL or no parameters.
const Named* PssHash(der::Reader alg) {
  base::ByteView oid, null_params;
  if (!alg.Read(der::kOid, &oid)) return nullptr;
  if (alg.Peek(der::kNull) && (!alg.Read(der::kNull, &null_params) || !null_params.empty())) {
    return nullptr;
  }
  if (!alg.empty()) return nullptr;
  for (const Named& h : kPssHashes) {
    if (Is(h, oid)) return &h;
  }
  return nullptr;
}

absl::StatusOr<SignatureScheme> ParsePssParams(der::Reader params) {
  der::Reader explicit_hash({}), hash({}), explicit_mgf({}), mgf({}), mgf_hash({});
  base::ByteView mgf_oid;
  // The defaults (SHA-1, MGF1 with SHA-1, 20) are not offered: every field is explicit.
  if (!params.Enter(der::ContextConstructed(0), &explicit_hash) ||
      !explicit_hash.Enter(der::kSequence, &hash) || !explicit_hash.empty() ||
      !params.Enter(der::ContextConstructed(1), &explicit_mgf) ||
      !explicit_mgf.Enter(der::kSequence, &mgf) || !explicit_mgf.empty() ||
      !mgf.Read(der::kOid, &mgf_oid) || !base::Equal(mgf_oid, kOidMgf1) ||
      !mgf.Enter(der::kSequence, &mgf_hash) || !mgf.empty()) {
    return Unsupported("RSASSA-PSS needs explicit SHA-2 hash and MGF1 parameters");
  }
  const Named* h = PssHash(hash);
  if (h == nullptr || PssHash(mgf_hash) != h) {
    return Unsupported("RSASSA-PSS needs one SHA-2 hash for the message and MGF1");
  }
  const int64_t digest_bytes = kDigestBytes[h - kPssHashes];
  der::Reader salt({}), trailer({});
  int64_t salt_length = -1, trailer_field = 1;
  if (!params.Enter(der::ContextConstructed(2), &salt) || !salt.ReadUint(&salt_length) ||
      !salt.empty() || salt_length != digest_bytes) {
    return Unsupported("RSASSA-PSS needs a salt as long as the digest");
  }
  if (params.Peek(der::ContextConstructed(3)) &&
      (!params.Enter(der::ContextConstructed(3), &trailer) || !trailer.ReadUint(&trailer_field) ||
       !trailer.empty())) {
    return Unsupported("bad RSASSA-PSS trailer field");
  }
  if (trailer_field != 1 || !params.empty()) return Unsupported("bad RSASSA-PSS parameters");
  return h->scheme;
}

}  // namespace

absl::StatusOr<base::ByteView> SignatureAlgorithmDer(SignatureScheme scheme) {
  switch (scheme) {
    case SignatureScheme::kEcdsaSha256:
      return base::ByteView(kEcdsaSha256Der);
    case SignatureScheme::kEcdsaSha384:
      return base::ByteView(kEcdsaSha384Der);
    case SignatureScheme::kRsaPssSha256:
      return base::ByteView(kRsaPssSha256Der);
    default:
      return absl::InvalidArgumentError("CA keys sign with ECDSA P-256 or P-384, or RSA-PSS");
  }
}

absl::StatusOr<SignatureScheme> ParseSignatureAlgorithm(base::ByteView contents) {
  der::Reader alg(contents);
  base::ByteView oid;
  if (!alg.Read(der::kOid, &oid)) return Unsupported("malformed");
  if (base::Equal(oid, kOidRsaPss)) {
    der::Reader params({});
    if (!alg.Enter(der::kSequence, &params) || !alg.empty()) {
      return Unsupported("RSASSA-PSS without parameters");
    }
    return ParsePssParams(params);
  }
  for (const Named& n : kByOid) {
    if (!Is(n, oid)) continue;
    base::ByteView null_params;
    const bool rsa = !crypto::IsEcdsa(n.scheme);
    // PKCS #1 v1.5 takes NULL (or, leniently, nothing); ECDSA takes nothing (RFC 5758 §3.2).
    if (rsa && alg.Peek(der::kNull) &&
        (!alg.Read(der::kNull, &null_params) || !null_params.empty())) {
      return Unsupported("bad parameters");
    }
    if (!alg.empty()) return Unsupported("bad parameters");
    return n.scheme;
  }
  std::string dotted = der::DecodeOid(oid);
  return Unsupported(absl::StrCat("unsupported ", dotted.empty() ? "OID" : dotted));
}

}  // namespace tw::core
