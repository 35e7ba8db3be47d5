#include "core/testing/test_pki.h"

#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/certificate.h"

namespace tw::core::testing {

TestKey TestKey::Ec(const char* curve) {
  TestKey k;
  k.pkey_.reset(EVP_EC_gen(curve), EVP_PKEY_free);
  TW_CHECK(k.pkey_ != nullptr);
  return k;
}

TestKey TestKey::Rsa() {
  TestKey k;
  k.pkey_.reset(EVP_RSA_gen(2048), EVP_PKEY_free);
  TW_CHECK(k.pkey_ != nullptr);
  return k;
}

TestKey TestKey::Ed25519() {
  TestKey k;
  k.pkey_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), EVP_PKEY_free);
  TW_CHECK(k.pkey_ != nullptr);
  return k;
}

crypto::PublicKey TestKey::public_key() const {
  auto k = crypto::PublicKey::FromEvpPkey(pkey_.get());
  TW_CHECK(k.ok());
  return *k;
}

std::string TestKey::PublicPem() const {
  crypto::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), pkey_.get());
  char* data;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string TestKey::PrivatePem() const {
  crypto::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PKCS8PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

base::Bytes TestKey::Sign(crypto::SignatureScheme scheme, base::ByteView data) const {
  base::Bytes digest = crypto::SchemeDigest(scheme, data);
  const EVP_MD* md = digest.size() == 32   ? EVP_sha256()
                     : digest.size() == 48 ? EVP_sha384()
                                           : EVP_sha512();
  crypto::UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_.get(), nullptr));
  TW_CHECK(ctx && EVP_PKEY_sign_init(ctx.get()) == 1 &&
           EVP_PKEY_CTX_set_signature_md(ctx.get(), md) == 1);
  if (scheme == crypto::SignatureScheme::kRsaPssSha256 ||
      scheme == crypto::SignatureScheme::kRsaPssSha384 ||
      scheme == crypto::SignatureScheme::kRsaPssSha512) {
    TW_CHECK(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) == 1);
  }
  size_t len = 0;
  TW_CHECK(EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) == 1);
  base::Bytes sig(len);
  TW_CHECK(EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) == 1);
  sig.resize(len);
  return sig;
}

std::string TestCert::pem() const { return CertificatesToPem({der}); }

namespace {

void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  TW_CHECK(ext != nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

}  // namespace

TestCert MakeCert(const CertSpec& spec, const TestCert* issuer) {
  return MakeCertWithKey(spec, TestKey::Ec("P-256"), issuer);
}

TestCert MakeCertWithKey(const CertSpec& spec, TestKey key, const TestCert* issuer) {
  TestCert out{.der = {}, .key = std::move(key)};
  crypto::UniquePtr<X509> cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  static long serial = 1000;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), spec.serial != 0 ? spec.serial : ++serial);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!spec.common_name.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                               -1, 0);
  }
  crypto::UniquePtr<X509> issuer_cert;
  if (issuer != nullptr) {
    const uint8_t* p = issuer->der.data();
    issuer_cert.reset(d2i_X509(nullptr, &p, static_cast<long>(issuer->der.size())));
    X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert.get()));
  } else {
    X509_set_issuer_name(cert.get(), name);
  }
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(spec.not_before));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), absl::ToTimeT(spec.not_after));
  X509_set_pubkey(cert.get(), out.key.get());
  X509* iss = issuer_cert ? issuer_cert.get() : cert.get();
  if (spec.basic_constraints) {
    std::string bc = spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE";
    if (spec.path_len) absl::StrAppend(&bc, ",pathlen:", *spec.path_len);
    AddExt(cert.get(), iss, NID_basic_constraints, bc);
  }
  if (spec.key_usage) AddExt(cert.get(), iss, NID_key_usage, *spec.key_usage);
  if (spec.extended_key_usage && !spec.ca) {
    AddExt(cert.get(), iss, NID_ext_key_usage, *spec.extended_key_usage);
  }
  AddExt(cert.get(), iss, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) AddExt(cert.get(), iss, NID_authority_key_identifier, "keyid:always");
  std::vector<std::string> sans;
  for (const std::string& u : spec.uris) sans.push_back("URI:" + u);
  for (const std::string& d : spec.dns) sans.push_back("DNS:" + d);
  if (!sans.empty()) {
    AddExt(cert.get(), iss, NID_subject_alt_name,
           (spec.san_critical ? "critical," : "") + absl::StrJoin(sans, ","));
  }
  if (spec.raw_san) {
    crypto::UniquePtr<ASN1_OCTET_STRING> value(ASN1_OCTET_STRING_new());
    ASN1_OCTET_STRING_set(value.get(), spec.raw_san->data(),
                          static_cast<int>(spec.raw_san->size()));
    X509_EXTENSION* ext =
        X509_EXTENSION_create_by_NID(nullptr, NID_subject_alt_name, 0, value.get());
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (spec.name_constraints) AddExt(cert.get(), iss, NID_name_constraints, *spec.name_constraints);
  if (spec.unknown_critical_extension) {
    crypto::UniquePtr<ASN1_OBJECT> obj(OBJ_txt2obj("1.3.6.1.4.1.99999.1", 1));
    ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
    const unsigned char kNull[] = {0x05, 0x00};
    ASN1_OCTET_STRING_set(value, kNull, 2);
    X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, obj.get(), 1, value);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(value);
  }
  for (const auto& [oid, value] : spec.extensions) {
    crypto::UniquePtr<ASN1_OBJECT> obj(OBJ_txt2obj(oid.c_str(), 1));
    TW_CHECK(obj != nullptr);
    crypto::UniquePtr<ASN1_OCTET_STRING> content(ASN1_OCTET_STRING_new());
    ASN1_OCTET_STRING_set(content.get(), value.data(), static_cast<int>(value.size()));
    X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, obj.get(), 0, content.get());
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  const TestKey& signing = issuer != nullptr ? issuer->key : out.key;
  TW_CHECK(X509_sign(cert.get(), signing.get(), EVP_sha256()) > 0);
  unsigned char* der = nullptr;
  int len = i2d_X509(cert.get(), &der);
  out.der.assign(der, der + len);
  OPENSSL_free(der);
  return out;
}

TestCert MakeRootCa(const std::string& trust_domain, absl::Time not_before, absl::Time not_after) {
  CertSpec spec = IntermediateSpec(trust_domain);
  spec.common_name = "root " + trust_domain;
  spec.not_before = not_before;
  spec.not_after = not_after;
  return MakeCert(spec);
}

CertSpec LeafSpec(const std::string& spiffe_id) {
  CertSpec spec;
  spec.uris = {spiffe_id};
  return spec;
}

CertSpec IntermediateSpec(const std::string& trust_domain) {
  CertSpec spec;
  spec.uris = {"spiffe://" + trust_domain};
  spec.ca = true;
  spec.key_usage = "critical,keyCertSign,cRLSign";
  spec.extended_key_usage = std::nullopt;
  spec.common_name = "intermediate " + trust_domain;
  return spec;
}

}  // namespace tw::core::testing
