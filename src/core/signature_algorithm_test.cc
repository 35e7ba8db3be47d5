#include "core/signature_algorithm.h"

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <optional>

#include "crypto/der.h"
#include "crypto/ossl_ptr.h"
#include "gtest/gtest.h"

namespace tw::core {
namespace {

namespace der = crypto::der;
using crypto::SignatureScheme;

constexpr uint8_t kSha256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
constexpr uint8_t kSha384[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02};
constexpr uint8_t kSha1[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};
constexpr uint8_t kRsaPss[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a};
constexpr uint8_t kMgf1[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08};
constexpr uint8_t kRsaSha256[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b};
constexpr uint8_t kEcdsaSha256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
constexpr uint8_t kMd5WithRsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04};

void AddHash(der::Writer& w, base::ByteView oid) {
  const size_t alg = w.Open(der::kSequence);
  w.Add(der::kOid, oid);
  w.Add(der::kNull, {});
  w.Close(alg);
}

// The contents of an id-RSASSA-PSS AlgorithmIdentifier with these parameters.
base::Bytes Pss(base::ByteView hash, base::ByteView mgf_hash, int64_t salt,
                std::optional<int64_t> trailer = std::nullopt) {
  base::Bytes out;
  der::Writer w(&out);
  w.Add(der::kOid, kRsaPss);
  const size_t params = w.Open(der::kSequence);
  size_t tag = w.Open(der::ContextConstructed(0));
  AddHash(w, hash);
  w.Close(tag);
  tag = w.Open(der::ContextConstructed(1));
  const size_t mgf = w.Open(der::kSequence);
  w.Add(der::kOid, kMgf1);
  AddHash(w, mgf_hash);
  w.Close(mgf);
  w.Close(tag);
  tag = w.Open(der::ContextConstructed(2));
  w.AddUint(static_cast<uint64_t>(salt));
  w.Close(tag);
  if (trailer) {
    tag = w.Open(der::ContextConstructed(3));
    w.AddUint(static_cast<uint64_t>(*trailer));
    w.Close(tag);
  }
  w.Close(params);
  return out;
}

// An AlgorithmIdentifier's contents: what is inside its SEQUENCE.
base::ByteView Contents(base::ByteView element) {
  der::Reader r(element);
  base::ByteView contents;
  EXPECT_TRUE(r.Read(der::kSequence, &contents));
  return contents;
}

base::Bytes Concat(base::ByteView a, base::ByteView b) {
  base::Bytes out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

TEST(SignatureAlgorithmTest, WhatTheCaSignsWithParsesBackToItsScheme) {
  for (SignatureScheme s : {SignatureScheme::kEcdsaSha256, SignatureScheme::kEcdsaSha384,
                            SignatureScheme::kRsaPssSha256}) {
    auto der_bytes = SignatureAlgorithmDer(s);
    ASSERT_TRUE(der_bytes.ok()) << crypto::JoseName(s);
    auto parsed = ParseSignatureAlgorithm(Contents(*der_bytes));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_FALSE(SignatureAlgorithmDer(SignatureScheme::kRsaPkcs1Sha256).ok());
}

// The PSS AlgorithmIdentifier is byte for byte the one OpenSSL writes when it signs with
// PS256 (a request signed with an RSA key, PSS padding and a digest-long salt).
TEST(SignatureAlgorithmTest, RsaPssIsEncodedAsOpenSslEncodesIt) {
  crypto::UniquePtr<EVP_PKEY> key(EVP_RSA_gen(2048));
  ASSERT_NE(key, nullptr);
  crypto::UniquePtr<X509_REQ> req(X509_REQ_new());
  ASSERT_EQ(X509_REQ_set_pubkey(req.get(), key.get()), 1);
  crypto::UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
  ASSERT_GT(X509_REQ_sign_ctx(req.get(), ctx.get()), 0);
  const X509_ALGOR* alg = nullptr;
  X509_REQ_get0_signature(req.get(), nullptr, &alg);
  unsigned char* encoded = nullptr;
  const int length = i2d_X509_ALGOR(alg, &encoded);
  ASSERT_GT(length, 0);
  const base::Bytes openssl(encoded, encoded + length);
  OPENSSL_free(encoded);
  auto ours = SignatureAlgorithmDer(SignatureScheme::kRsaPssSha256);
  ASSERT_TRUE(ours.ok());
  EXPECT_EQ(base::Bytes(ours->begin(), ours->end()), openssl);
}

TEST(SignatureAlgorithmTest, AcceptsTheSha2FormsOfEachFamily) {
  EXPECT_EQ(*ParseSignatureAlgorithm(Pss(kSha384, kSha384, 48, 1)), SignatureScheme::kRsaPssSha384);
  base::Bytes pkcs1;
  der::Writer w(&pkcs1);
  w.Add(der::kOid, kRsaSha256);
  EXPECT_EQ(*ParseSignatureAlgorithm(pkcs1), SignatureScheme::kRsaPkcs1Sha256);  // absent
  w.Add(der::kNull, {});
  EXPECT_EQ(*ParseSignatureAlgorithm(pkcs1), SignatureScheme::kRsaPkcs1Sha256);  // NULL
}

TEST(SignatureAlgorithmTest, RefusesWhatItCannotCheckExactly) {
  base::Bytes bare_pss, default_pss, ecdsa_null, md5;
  der::Writer(&bare_pss).Add(der::kOid, kRsaPss);
  {
    der::Writer w(&default_pss);  // empty parameters: SHA-1, MGF1 SHA-1, salt 20
    w.Add(der::kOid, kRsaPss);
    w.Close(w.Open(der::kSequence));
  }
  {
    der::Writer w(&ecdsa_null);  // RFC 5758 §3.2: ECDSA takes no parameters
    w.Add(der::kOid, kEcdsaSha256);
    w.Add(der::kNull, {});
  }
  der::Writer(&md5).Add(der::kOid, kMd5WithRsa);
  const base::Bytes trailing = Concat(Pss(kSha256, kSha256, 32), base::Bytes{0x05, 0x00});
  const struct {
    const char* what;
    base::Bytes contents;
  } refused[] = {
      {"PSS without parameters", bare_pss},
      {"PSS with the SHA-1 defaults", default_pss},
      {"PSS with SHA-1", Pss(kSha1, kSha1, 20)},
      {"PSS whose MGF1 hash differs", Pss(kSha256, kSha384, 32)},
      {"PSS with a 20-byte salt", Pss(kSha256, kSha256, 20)},
      {"PSS with trailer field 2", Pss(kSha256, kSha256, 32, 2)},
      {"bytes after the PSS parameters", trailing},
      {"ECDSA with NULL parameters", ecdsa_null},
      {"md5WithRSAEncryption", md5},
      {"nothing", {}},
  };
  for (const auto& r : refused) {
    auto parsed = ParseSignatureAlgorithm(r.contents);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << r.what;
  }
  EXPECT_NE(ParseSignatureAlgorithm(md5).status().message().find("1.2.840.113549.1.1.4"),
            std::string::npos);
}

}  // namespace
}  // namespace tw::core
