#include "crypto/signature_scheme.h"

#include <array>
#include <utility>

#include "crypto/der.h"

namespace tw::crypto {
namespace {

constexpr std::array<std::pair<SignatureScheme, absl::string_view>, kNumSignatureSchemes> kNames = {
    {{SignatureScheme::kEcdsaSha256, "ES256"},
     {SignatureScheme::kEcdsaSha384, "ES384"},
     {SignatureScheme::kEcdsaSha512, "ES512"},
     {SignatureScheme::kRsaPkcs1Sha256, "RS256"},
     {SignatureScheme::kRsaPkcs1Sha384, "RS384"},
     {SignatureScheme::kRsaPkcs1Sha512, "RS512"},
     {SignatureScheme::kRsaPssSha256, "PS256"},
     {SignatureScheme::kRsaPssSha384, "PS384"},
     {SignatureScheme::kRsaPssSha512, "PS512"}}};

}  // namespace

bool IsEcdsa(SignatureScheme s) {
  return s == SignatureScheme::kEcdsaSha256 || s == SignatureScheme::kEcdsaSha384 ||
         s == SignatureScheme::kEcdsaSha512;
}

absl::string_view JoseName(SignatureScheme s) {
  for (const auto& [scheme, name] : kNames) {
    if (scheme == s) return name;
  }
  return {};
}

std::optional<SignatureScheme> SchemeFromJoseName(absl::string_view alg) {
  for (const auto& [scheme, name] : kNames) {
    if (name == alg) return scheme;
  }
  return std::nullopt;
}

base::Bytes EcdsaDerToRaw(base::ByteView sig, size_t field_bytes) {
  der::Reader outer(sig), seq(base::ByteView{});
  base::ByteView r, s;
  if (!outer.Enter(der::kSequence, &seq) || !outer.empty() || !seq.Read(der::kInteger, &r) ||
      !seq.Read(der::kInteger, &s) || !seq.empty()) {
    return {};
  }
  base::Bytes out(2 * field_bytes, 0);
  for (int i = 0; i < 2; ++i) {
    base::ByteView v = i == 0 ? r : s;
    if (v.empty() || (v[0] & 0x80)) return {};
    while (!v.empty() && v[0] == 0) v = v.subspan(1);
    if (v.size() > field_bytes) return {};
    std::copy(v.begin(), v.end(),
              out.begin() + static_cast<ptrdiff_t>((i + 1) * field_bytes - v.size()));
  }
  return out;
}

base::Bytes EcdsaRawToDer(base::ByteView raw) {
  if (raw.empty() || raw.size() % 2 != 0) return {};
  size_t half = raw.size() / 2;
  base::Bytes out;
  der::Writer w(&out);
  size_t seq = w.Open(der::kSequence);
  w.AddUnsignedInteger(raw.subspan(0, half));
  w.AddUnsignedInteger(raw.subspan(half));
  w.Close(seq);
  return out;
}

}  // namespace tw::crypto
