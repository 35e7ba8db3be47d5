#include "crypto/public_key.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include <array>
#include <mutex>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "crypto/der.h"
#include "crypto/openssl_error.h"
#include "crypto/ossl_ptr.h"

namespace tw::crypto {
namespace {

// OBJECT IDENTIFIER contents.
constexpr uint8_t kOidEcPublicKey[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
constexpr uint8_t kOidP256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
constexpr uint8_t kOidP384[] = {0x2b, 0x81, 0x04, 0x00, 0x22};
constexpr uint8_t kOidP521[] = {0x2b, 0x81, 0x04, 0x00, 0x23};
constexpr uint8_t kOidRsaEncryption[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};

struct Curve {
  KeyType type;
  base::ByteView oid;
  int nid;
  const char* name;
  size_t field_bytes;
};
const Curve kCurves[] = {
    {KeyType::kEcP256, kOidP256, NID_X9_62_prime256v1, "P-256", 32},
    {KeyType::kEcP384, kOidP384, NID_secp384r1, "P-384", 48},
    {KeyType::kEcP521, kOidP521, NID_secp521r1, "P-521", 66},
};

const Curve* CurveFor(KeyType t) {
  for (const Curve& c : kCurves) {
    if (c.type == t) return &c;
  }
  return nullptr;
}

// Shared read-only groups for on-curve checks.
const EC_GROUP* Group(const Curve& c) {
  static const std::array<EC_GROUP*, 3> groups = {EC_GROUP_new_by_curve_name(kCurves[0].nid),
                                                  EC_GROUP_new_by_curve_name(kCurves[1].nid),
                                                  EC_GROUP_new_by_curve_name(kCurves[2].nid)};
  return groups[static_cast<size_t>(&c - kCurves)];
}

// n and n/2 of every curve's group order.
struct Order {
  UniquePtr<BIGNUM> n, half;
};
const Order& OrderOf(const Curve& c) {
  static const std::array<Order, 3> orders = [] {
    std::array<Order, 3> out;
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].n.reset(BN_dup(EC_GROUP_get0_order(Group(kCurves[i]))));
      out[i].half.reset(BN_new());
      BN_rshift1(out[i].half.get(), out[i].n.get());
    }
    return out;
  }();
  return orders[static_cast<size_t>(&c - kCurves)];
}

const EVP_MD* SchemeMd(SignatureScheme s) {
  switch (s) {
    case SignatureScheme::kEcdsaSha256:
    case SignatureScheme::kRsaPkcs1Sha256:
    case SignatureScheme::kRsaPssSha256:
      return EVP_sha256();
    case SignatureScheme::kEcdsaSha384:
    case SignatureScheme::kRsaPkcs1Sha384:
    case SignatureScheme::kRsaPssSha384:
      return EVP_sha384();
    default:
      return EVP_sha512();
  }
}

bool IsPss(SignatureScheme s) {
  return s == SignatureScheme::kRsaPssSha256 || s == SignatureScheme::kRsaPssSha384 ||
         s == SignatureScheme::kRsaPssSha512;
}

base::Bytes Spki(base::ByteView alg_oid, base::ByteView params_element, base::ByteView key_bits) {
  base::Bytes out;
  der::Writer w(&out);
  size_t spki = w.Open(der::kSequence);
  size_t alg = w.Open(der::kSequence);
  w.Add(der::kOid, alg_oid);
  w.AddRaw(params_element);
  w.Close(alg);
  w.AddBitString(key_bits);
  w.Close(spki);
  return out;
}

}  // namespace

absl::string_view CurveName(KeyType t) {
  const Curve* c = CurveFor(t);
  return c ? c->name : "";
}

base::Bytes EcdsaLowS(KeyType t, base::ByteView raw) {
  const Curve* c = CurveFor(t);
  if (c == nullptr || raw.size() != 2 * c->field_bytes) return {};
  const Order& order = OrderOf(*c);
  const int half = static_cast<int>(c->field_bytes);
  UniquePtr<BIGNUM> s(BN_bin2bn(raw.data() + half, half, nullptr));
  base::Bytes out(raw.begin(), raw.end());
  if (s == nullptr) return {};
  if (BN_cmp(s.get(), order.half.get()) > 0) {
    BN_sub(s.get(), order.n.get(), s.get());
    if (BN_bn2binpad(s.get(), out.data() + half, half) != half) return {};
  }
  return out;
}

size_t FieldBytes(KeyType t) {
  const Curve* c = CurveFor(t);
  return c ? c->field_bytes : 0;
}

base::Bytes SchemeDigest(SignatureScheme scheme, base::ByteView data) {
  const EVP_MD* md = SchemeMd(scheme);
  base::Bytes out(static_cast<size_t>(EVP_MD_get_size(md)));
  if (md == EVP_sha256()) {
    SHA256(data.data(), data.size(), out.data());
  } else if (md == EVP_sha384()) {
    SHA384(data.data(), data.size(), out.data());
  } else {
    SHA512(data.data(), data.size(), out.data());
  }
  return out;
}

struct PublicKey::Impl {
  KeyType type;
  base::Bytes spki;
  base::Bytes x, y;  // EC
  base::Bytes n, e;  // RSA
  mutable std::once_flag thumbprint_once;
  mutable std::string thumbprint;

  mutable std::once_flag pkey_once;
  mutable UniquePtr<EVP_PKEY> pkey;
  mutable absl::Mutex mu;
  mutable std::array<std::vector<UniquePtr<EVP_PKEY_CTX>>, kNumSignatureSchemes> pools;

  EVP_PKEY* Pkey() const {
    std::call_once(pkey_once, [this] {
      if (pkey) return;
      const Curve* c = CurveFor(type);
      base::Bytes point = {0x04};
      point.insert(point.end(), x.begin(), x.end());
      point.insert(point.end(), y.begin(), y.end());
      OSSL_PARAM params[] = {
          OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                           const_cast<char*>(OBJ_nid2sn(c->nid)), 0),
          OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
          OSSL_PARAM_construct_end()};
      UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
      EVP_PKEY* out = nullptr;
      if (ctx && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
          EVP_PKEY_fromdata(ctx.get(), &out, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        pkey.reset(out);
      }
    });
    return pkey.get();
  }

  UniquePtr<EVP_PKEY_CTX> TakeCtx(SignatureScheme s) const {
    {
      absl::MutexLock lock(&mu);
      auto& pool = pools[static_cast<size_t>(s)];
      if (!pool.empty()) {
        UniquePtr<EVP_PKEY_CTX> ctx = std::move(pool.back());
        pool.pop_back();
        return ctx;
      }
    }
    EVP_PKEY* k = Pkey();
    if (k == nullptr) return nullptr;
    UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, k, nullptr));
    if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx.get(), SchemeMd(s)) != 1) {
      return nullptr;
    }
    if (IsPss(s) && (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
                     EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) != 1 ||
                     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), SchemeMd(s)) != 1)) {
      return nullptr;
    }
    return ctx;
  }

  void ReturnCtx(SignatureScheme s, UniquePtr<EVP_PKEY_CTX> ctx) const {
    absl::MutexLock lock(&mu);
    auto& pool = pools[static_cast<size_t>(s)];
    if (pool.size() < 64) pool.push_back(std::move(ctx));
  }
};

namespace {

std::string MakeThumbprint(const PublicKey& k) {
  auto b64 = [](base::ByteView v) { return absl::WebSafeBase64Escape(base::AsChars(v)); };
  std::string canonical =
      k.type() == KeyType::kRsa
          ? absl::StrCat(R"({"e":")", b64(k.rsa_e()), R"(","kty":"RSA","n":")", b64(k.rsa_n()),
                         R"("})")
          : absl::StrCat(R"({"crv":")", CurveName(k.type()), R"(","kty":"EC","x":")", b64(k.ec_x()),
                         R"(","y":")", b64(k.ec_y()), R"("})");
  base::Bytes digest = SchemeDigest(SignatureScheme::kEcdsaSha256, base::AsBytes(canonical));
  return absl::WebSafeBase64Escape(base::AsChars(digest));
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("public key: ", what));
}

}  // namespace

absl::StatusOr<PublicKey> PublicKey::FromEcCoordinates(KeyType type, base::ByteView x,
                                                       base::ByteView y) {
  const Curve* c = CurveFor(type);
  if (c == nullptr) return Invalid("not an EC key type");
  if (x.size() != c->field_bytes || y.size() != c->field_bytes) {
    return Invalid("EC coordinate has the wrong length");
  }
  base::Bytes point = {0x04};
  point.insert(point.end(), x.begin(), x.end());
  point.insert(point.end(), y.begin(), y.end());
  UniquePtr<EC_POINT> p(EC_POINT_new(Group(*c)));
  if (!p || EC_POINT_oct2point(Group(*c), p.get(), point.data(), point.size(), nullptr) != 1) {
    ERR_clear_error();
    return Invalid("EC point is not on the curve");
  }
  auto impl = std::make_shared<Impl>();
  impl->type = type;
  impl->x.assign(x.begin(), x.end());
  impl->y.assign(y.begin(), y.end());
  base::Bytes params;
  der::Writer(&params).Add(der::kOid, c->oid);
  impl->spki = Spki(kOidEcPublicKey, params, point);
  return PublicKey(impl);
}

absl::StatusOr<PublicKey> PublicKey::FromRsaComponents(base::ByteView n, base::ByteView e) {
  base::Bytes rsa_key;
  der::Writer w(&rsa_key);
  size_t seq = w.Open(der::kSequence);
  w.AddUnsignedInteger(n);
  w.AddUnsignedInteger(e);
  w.Close(seq);
  base::Bytes null_params = {der::kNull, 0x00};
  return FromSpkiDer(Spki(kOidRsaEncryption, null_params, rsa_key));
}

absl::StatusOr<PublicKey> PublicKey::FromSpkiDer(base::ByteView der) {
  der::Reader outer(der), spki(base::ByteView{}), alg(base::ByteView{});
  base::ByteView alg_oid, bits;
  if (!outer.Enter(der::kSequence, &spki) || !outer.empty() || !spki.Enter(der::kSequence, &alg) ||
      !alg.Read(der::kOid, &alg_oid) || !spki.ReadBitStringOctets(&bits) || !spki.empty()) {
    return Invalid("malformed SubjectPublicKeyInfo");
  }
  if (base::Equal(alg_oid, kOidEcPublicKey)) {
    base::ByteView curve_oid;
    if (!alg.Read(der::kOid, &curve_oid) || !alg.empty()) {
      return Invalid("EC key without a named curve");
    }
    for (const Curve& c : kCurves) {
      if (!base::Equal(curve_oid, c.oid)) continue;
      if (bits.size() != 1 + 2 * c.field_bytes || bits[0] != 0x04) {
        return Invalid("EC point is not uncompressed");
      }
      return FromEcCoordinates(c.type, bits.subspan(1, c.field_bytes),
                               bits.subspan(1 + c.field_bytes));
    }
    return Invalid("unsupported EC curve (want P-256, P-384 or P-521)");
  }
  if (!base::Equal(alg_oid, kOidRsaEncryption))
    return Invalid("unsupported key type (want EC or RSA)");
  const uint8_t* p = der.data();
  UniquePtr<EVP_PKEY> pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!pkey || p != der.data() + der.size()) {
    ERR_clear_error();
    return Invalid("malformed RSA key");
  }
  return FromEvpPkey(pkey.get());
}

absl::StatusOr<PublicKey> PublicKey::FromEvpPkey(EVP_PKEY* pkey) {
  if (EVP_PKEY_is_a(pkey, "EC")) {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(pkey, &der);
    if (len <= 0) return OpenSslError(absl::StatusCode::kInvalidArgument, "public key: encode");
    base::Bytes spki(der, der + len);
    OPENSSL_free(der);
    return FromSpkiDer(spki);
  }
  if (!EVP_PKEY_is_a(pkey, "RSA")) return Invalid("unsupported key type (want EC or RSA)");
  if (EVP_PKEY_get_bits(pkey) < 2048) return Invalid("RSA key shorter than 2048 bits");
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
      EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
    BN_free(n);
    return OpenSslError(absl::StatusCode::kInvalidArgument, "public key: RSA components");
  }
  UniquePtr<BIGNUM> n_owner(n), e_owner(e);
  auto impl = std::make_shared<Impl>();
  impl->type = KeyType::kRsa;
  impl->n.resize(static_cast<size_t>(BN_num_bytes(n)));
  impl->e.resize(static_cast<size_t>(BN_num_bytes(e)));
  BN_bn2bin(n, impl->n.data());
  BN_bn2bin(e, impl->e.data());
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0) return OpenSslError(absl::StatusCode::kInvalidArgument, "public key: encode");
  impl->spki.assign(der, der + len);
  OPENSSL_free(der);
  EVP_PKEY_up_ref(pkey);
  impl->pkey.reset(pkey);
  return PublicKey(impl);
}

absl::StatusOr<PublicKey> PublicKey::FromPem(absl::string_view pem) {
  UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  UniquePtr<EVP_PKEY> pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) {
    ERR_clear_error();
    return Invalid("no PEM PUBLIC KEY block");
  }
  return FromEvpPkey(pkey.get());
}

KeyType PublicKey::type() const { return impl_->type; }
const base::Bytes& PublicKey::spki_der() const { return impl_->spki; }
base::ByteView PublicKey::ec_x() const { return impl_->x; }
base::ByteView PublicKey::ec_y() const { return impl_->y; }
base::ByteView PublicKey::rsa_n() const { return impl_->n; }
base::ByteView PublicKey::rsa_e() const { return impl_->e; }
const std::string& PublicKey::Thumbprint() const {
  std::call_once(impl_->thumbprint_once, [this] { impl_->thumbprint = MakeThumbprint(*this); });
  return impl_->thumbprint;
}

bool PublicKey::Accepts(SignatureScheme scheme) const {
  return IsEcdsa(scheme) == (impl_->type != KeyType::kRsa);
}

absl::Status PublicKey::Verify(SignatureScheme scheme, base::ByteView data,
                               base::ByteView signature) const {
  if (!Accepts(scheme)) return absl::InvalidArgumentError("signature scheme does not fit the key");
  base::Bytes digest = SchemeDigest(scheme, data);
  UniquePtr<EVP_PKEY_CTX> ctx = impl_->TakeCtx(scheme);
  if (!ctx) return OpenSslError(absl::StatusCode::kInternal, "verify context");
  int rc =
      EVP_PKEY_verify(ctx.get(), signature.data(), signature.size(), digest.data(), digest.size());
  impl_->ReturnCtx(scheme, std::move(ctx));
  if (rc != 1) {
    ERR_clear_error();
    return absl::UnauthenticatedError("signature does not verify");
  }
  return absl::OkStatus();
}

}  // namespace tw::crypto
