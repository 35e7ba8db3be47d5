#include "crypto/public_key.h"

#include <openssl/pem.h>

#include "absl/strings/escaping.h"
#include "crypto/ossl_ptr.h"
#include "crypto/software_signer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::crypto {
namespace {

using ::testing::HasSubstr;

base::Bytes SpkiOf(EVP_PKEY* k) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(k, &der);
  base::Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

TEST(PublicKeyTest, ParsesEcCurvesAndRsa) {
  struct Case {
    UniquePtr<EVP_PKEY> key;
    KeyType type;
  };
  std::vector<Case> cases;
  cases.push_back({UniquePtr<EVP_PKEY>(EVP_EC_gen("P-256")), KeyType::kEcP256});
  cases.push_back({UniquePtr<EVP_PKEY>(EVP_EC_gen("P-384")), KeyType::kEcP384});
  cases.push_back({UniquePtr<EVP_PKEY>(EVP_EC_gen("P-521")), KeyType::kEcP521});
  cases.push_back({UniquePtr<EVP_PKEY>(EVP_RSA_gen(2048)), KeyType::kRsa});
  for (const Case& c : cases) {
    base::Bytes spki = SpkiOf(c.key.get());
    auto k = PublicKey::FromSpkiDer(spki);
    ASSERT_TRUE(k.ok()) << k.status();
    EXPECT_EQ(k->type(), c.type);
    EXPECT_EQ(k->spki_der(), spki);
    EXPECT_EQ(k->Thumbprint().size(), 43u);
  }
}

TEST(PublicKeyTest, RejectsUnsupportedAndInvalidKeys) {
  UniquePtr<EVP_PKEY> small_rsa(EVP_RSA_gen(1024));
  EXPECT_THAT(std::string(PublicKey::FromSpkiDer(SpkiOf(small_rsa.get())).status().message()),
              HasSubstr("2048"));
  UniquePtr<EVP_PKEY> ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  EXPECT_FALSE(PublicKey::FromSpkiDer(SpkiOf(ed.get())).ok());
  UniquePtr<EVP_PKEY> k256(EVP_EC_gen("P-256"));
  base::Bytes spki = SpkiOf(k256.get());
  spki.back() ^= 0x01;  // point off the curve
  EXPECT_THAT(std::string(PublicKey::FromSpkiDer(spki).status().message()),
              HasSubstr("not on the curve"));
  spki.pop_back();
  EXPECT_FALSE(PublicKey::FromSpkiDer(spki).ok());
  EXPECT_FALSE(PublicKey::FromPem("nope").ok());
}

TEST(PublicKeyTest, Rfc7638ThumbprintMatchesTheRfcExample) {
  // RFC 7638 §3.1: the example RSA key's thumbprint.
  std::string n_b64 =
      "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
      "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
      "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
      "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
  std::string n, e;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(n_b64, &n));
  ASSERT_TRUE(absl::WebSafeBase64Unescape("AQAB", &e));
  auto k = PublicKey::FromRsaComponents(base::AsBytes(n), base::AsBytes(e));
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->Thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

TEST(PublicKeyTest, VerifiesOnlyMatchingSchemesAndSignatures) {
  auto signer = *SoftwareSigner::Generate(KeyType::kEcP256);
  base::Bytes data = base::ToBytes("hello");
  base::Bytes sig = *signer->Sign(data);
  const PublicKey& key = signer->public_key();
  EXPECT_TRUE(key.Verify(SignatureScheme::kEcdsaSha256, data, sig).ok());
  EXPECT_EQ(key.Verify(SignatureScheme::kEcdsaSha256, base::ToBytes("hellp"), sig).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(key.Verify(SignatureScheme::kRsaPkcs1Sha256, data, sig).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(key.Verify(SignatureScheme::kEcdsaSha256, data, base::Bytes{0x30, 0x00}).ok());
}

TEST(PublicKeyTest, EcCoordinatesRoundTripThroughSpki) {
  UniquePtr<EVP_PKEY> k(EVP_EC_gen("P-384"));
  auto a = *PublicKey::FromSpkiDer(SpkiOf(k.get()));
  auto b = PublicKey::FromEcCoordinates(KeyType::kEcP384, a.ec_x(), a.ec_y());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a, *b);
  EXPECT_FALSE(PublicKey::FromEcCoordinates(KeyType::kEcP256, a.ec_x(), a.ec_y()).ok());
}

TEST(EcdsaSignatureTest, ConvertsBetweenDerAndRaw) {
  base::Bytes raw(64, 0);
  raw[31] = 1;
  raw[32] = 0x80;
  base::Bytes der = EcdsaRawToDer(raw);
  EXPECT_EQ(EcdsaDerToRaw(der, 32), raw);
  EXPECT_TRUE(EcdsaDerToRaw(der, 16).empty());
  EXPECT_TRUE(EcdsaDerToRaw(base::Bytes{0x30, 0x00}, 32).empty());
}

}  // namespace
}  // namespace tw::crypto
