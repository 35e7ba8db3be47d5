#include "core/jwt_svid.h"

#include <openssl/hmac.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/testing/test_pki.h"
#include "crypto/software_signer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tw::core {
namespace {

using crypto::SignatureScheme;
using nlohmann::json;
using ::testing::HasSubstr;
using testing::TestKey;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
constexpr char kSub[] = "spiffe://example.org/acme/fin/pay/inst-aaaaaaaaaaaaaaaa";

std::string B64(absl::string_view s) { return absl::WebSafeBase64Escape(s); }

// Signs header.claims with `key` as `scheme` says, producing JOSE signature bytes.
std::string Sign(const TestKey& key, SignatureScheme scheme, const json& header,
                 const json& claims) {
  std::string input = absl::StrCat(B64(header.dump()), ".", B64(claims.dump()));
  base::Bytes sig = key.Sign(scheme, base::AsBytes(input));
  if (crypto::IsEcdsa(scheme))
    sig = crypto::EcdsaDerToRaw(sig, crypto::FieldBytes(key.public_key().type()));
  return absl::StrCat(input, ".", B64(base::AsChars(sig)));
}

class JwtSvidTest : public ::testing::Test {
 protected:
  JwtSvidTest() : es256_(TestKey::Ec("P-256")) { AddKey("example.org", "k256", es256_); }

  void AddKey(const std::string& td, const std::string& kid, const TestKey& key) {
    AddKey(td, kid, key.public_key());
  }
  void AddKey(const std::string& td, const std::string& kid, const crypto::PublicKey& key) {
    auto existing = bundles_.Get(td);
    Bundle b(*TrustDomain::FromName(td));
    if (existing) {
      for (const JwtAuthority& a : existing->jwt_authorities()) b.AddJwtAuthority(a.key_id, a.key);
    }
    b.AddJwtAuthority(kid, key);
    bundles_.Put(std::move(b));
  }

  json Header(const char* alg = "ES256", const char* kid = "k256") {
    json h = {{"alg", alg}, {"typ", "JWT"}};
    if (kid != nullptr) h["kid"] = kid;
    return h;
  }
  json Claims() {
    return {{"sub", kSub},
            {"aud", {"svc"}},
            {"exp", absl::ToUnixSeconds(kNow) + 300},
            {"iat", absl::ToUnixSeconds(kNow)}};
  }
  absl::StatusOr<JwtSvid> Validate(const std::string& token, absl::string_view aud = "svc") {
    return ValidateJwtSvid(token, aud, bundles_, kNow, {*TrustDomain::FromName("example.org")});
  }
  void ExpectRejected(const std::string& token, const std::string& reason) {
    auto r = Validate(token);
    ASSERT_FALSE(r.ok()) << "accepted; wanted " << reason;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(reason));
  }

  TestKey es256_;
  BundleSet bundles_;
};

TEST_F(JwtSvidTest, MintedTokenValidatesWithItsClaims) {
  auto signer = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  AddKey("example.org", signer->key_id(), signer->public_key());
  JwtSvidRequest req{.subject = *SpiffeId::FromString(kSub),
                     .audience = {"svc"},
                     .issued_at = kNow,
                     .ttl = absl::Minutes(5),
                     .attributes = {}};
  req.attributes.scopes = {*Scope::Parse("read:transactions"), *Scope::Parse("write:ledger")};
  req.attributes.trust_level = TrustLevel::kHigh;
  req.attributes.policy_version = 4;
  req.attributes.parent = *SpiffeId::FromString("spiffe://example.org/p");
  req.attributes.principal = "ops";
  auto token = MintJwtSvid(*signer, req);
  ASSERT_TRUE(token.ok());
  auto v = Validate(*token);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->subject.str(), kSub);
  EXPECT_EQ(v->expiry, kNow + absl::Minutes(5));
  EXPECT_EQ(v->attributes, req.attributes);
  EXPECT_FALSE(v->token_id.empty());
  EXPECT_FALSE(MintJwtSvid(*signer, {.subject = req.subject,
                                     .audience = {},
                                     .issued_at = kNow,
                                     .ttl = absl::Minutes(1),
                                     .attributes = {}})
                   .ok());
}

// Each of 64 signatures has s <= n/2; half of them would not by chance.
TEST_F(JwtSvidTest, MintsLowSSignatures) {
  const std::string half = absl::HexStringToBytes(  // P-256's n / 2
      "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8");
  const base::Bytes half_order(half.begin(), half.end());
  auto signer = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  AddKey("example.org", signer->key_id(), signer->public_key());
  for (int i = 0; i < 64; ++i) {
    auto token = MintJwtSvid(*signer, {.subject = *SpiffeId::FromString(kSub),
                                       .audience = {"svc"},
                                       .issued_at = kNow,
                                       .ttl = absl::Minutes(5),
                                       .attributes = {}});
    ASSERT_TRUE(token.ok());
    std::string sig;
    ASSERT_TRUE(base::Base64UrlDecode(token->substr(token->rfind('.') + 1), &sig));
    ASSERT_EQ(sig.size(), 64u);
    const base::Bytes s(sig.begin() + 32, sig.end());
    EXPECT_LE(s, half_order) << i;
    EXPECT_TRUE(Validate(*token).ok());
  }
}

TEST(EcdsaLowSTest, FlipsHighSAndKeepsTheSignatureValid) {
  auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  const std::string message = "low-s";
  for (int i = 0; i < 16; ++i) {
    base::Bytes raw = crypto::EcdsaDerToRaw(*key->Sign(base::AsBytes(message)), 32);
    base::Bytes low = crypto::EcdsaLowS(crypto::KeyType::kEcP256, raw);
    ASSERT_EQ(low.size(), 64u);
    EXPECT_EQ(base::Bytes(low.begin(), low.begin() + 32),
              base::Bytes(raw.begin(), raw.begin() + 32));
    EXPECT_TRUE(key->public_key()
                    .Verify(crypto::SignatureScheme::kEcdsaSha256, base::AsBytes(message),
                            crypto::EcdsaRawToDer(low))
                    .ok());
    EXPECT_EQ(crypto::EcdsaLowS(crypto::KeyType::kEcP256, low), low);  // idempotent
  }
  EXPECT_TRUE(crypto::EcdsaLowS(crypto::KeyType::kEcP256, base::Bytes(10)).empty());
  EXPECT_TRUE(crypto::EcdsaLowS(crypto::KeyType::kRsa, base::Bytes(64)).empty());
}

TEST_F(JwtSvidTest, MintsEs384WithP384) {
  auto signer = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP384);
  AddKey("example.org", signer->key_id(), signer->public_key());
  auto token = MintJwtSvid(*signer, {.subject = *SpiffeId::FromString(kSub),
                                     .audience = {"svc"},
                                     .issued_at = kNow,
                                     .ttl = absl::Minutes(5),
                                     .attributes = {}});
  ASSERT_TRUE(token.ok());
  const size_t header_end = token->find('.');
  const size_t signature_start = token->rfind('.') + 1;
  std::string header;
  ASSERT_TRUE(base::Base64UrlDecode(token->substr(0, header_end), &header));
  const json h = json::parse(header, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(h.is_object()) << header;
  EXPECT_EQ(h.value("alg", ""), "ES384");
  EXPECT_EQ(h.value("kid", ""), signer->key_id());
  // RFC 7518 §3.4: SHA-384 over the signing input, r||s of 48 bytes each.
  std::string sig;
  ASSERT_TRUE(base::Base64UrlDecode(token->substr(signature_start), &sig));
  ASSERT_EQ(sig.size(), 96u);
  EXPECT_TRUE(signer->public_key()
                  .Verify(SignatureScheme::kEcdsaSha384,
                          base::AsBytes(absl::string_view(*token).substr(0, signature_start - 1)),
                          crypto::EcdsaRawToDer(base::AsBytes(sig)))
                  .ok());
  auto v = Validate(*token);
  EXPECT_TRUE(v.ok()) << v.status();
}

TEST_F(JwtSvidTest, AcceptsEveryAllowedAlgorithm) {
  struct Alg {
    const char* name;
    SignatureScheme scheme;
    TestKey key;
  };
  TestKey rsa = TestKey::Rsa();
  std::vector<Alg> algs = {{"ES256", SignatureScheme::kEcdsaSha256, es256_},
                           {"ES384", SignatureScheme::kEcdsaSha384, TestKey::Ec("P-384")},
                           {"ES512", SignatureScheme::kEcdsaSha512, TestKey::Ec("P-521")},
                           {"RS256", SignatureScheme::kRsaPkcs1Sha256, rsa},
                           {"RS384", SignatureScheme::kRsaPkcs1Sha384, rsa},
                           {"RS512", SignatureScheme::kRsaPkcs1Sha512, rsa},
                           {"PS256", SignatureScheme::kRsaPssSha256, rsa},
                           {"PS384", SignatureScheme::kRsaPssSha384, rsa},
                           {"PS512", SignatureScheme::kRsaPssSha512, rsa}};
  for (const Alg& a : algs) {
    std::string kid = absl::StrCat("kid-", a.name);
    AddKey("example.org", kid, a.key);
    auto r = Validate(Sign(a.key, a.scheme, Header(a.name, kid.c_str()), Claims()));
    EXPECT_TRUE(r.ok()) << a.name << ": " << r.status();
  }
}

TEST_F(JwtSvidTest, AcceptsAudienceFormsTypFormsAndMissingKid) {
  json c = Claims();
  c["aud"] = "svc";
  EXPECT_TRUE(Validate(Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), c)).ok());
  c["aud"] = {"a", "svc", "b"};
  EXPECT_TRUE(Validate(Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), c)).ok());
  for (const char* typ : {"JWT", "JOSE"}) {
    json h = Header();
    h["typ"] = typ;
    EXPECT_TRUE(Validate(Sign(es256_, SignatureScheme::kEcdsaSha256, h, Claims())).ok()) << typ;
  }
  json no_typ = Header();
  no_typ.erase("typ");
  EXPECT_TRUE(Validate(Sign(es256_, SignatureScheme::kEcdsaSha256, no_typ, Claims())).ok());
  AddKey("example.org", "k-rsa", TestKey::Rsa());  // keys of another type are skipped
  EXPECT_TRUE(
      Validate(Sign(es256_, SignatureScheme::kEcdsaSha256, Header("ES256", nullptr), Claims()))
          .ok());
}

TEST_F(JwtSvidTest, AcceptsFederatedTrustDomainWithItsBundle) {
  TestKey other = TestKey::Ec("P-256");
  AddKey("other.org", "ko", other);
  json c = Claims();
  c["sub"] = "spiffe://other.org/w";
  EXPECT_TRUE(Validate(Sign(other, SignatureScheme::kEcdsaSha256, Header("ES256", "ko"), c)).ok());
}

TEST_F(JwtSvidTest, RejectsMalformedTokens) {
  std::string good = Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), Claims());
  for (const std::string& bad : std::vector<std::string>{
           std::string(""), std::string("a.b"), good + ".x", std::string("...."),
           std::string("e30.e30.!!"), B64("not json") + "." + B64("{}") + ".AA", good + "=",
           "{\"payload\":\"x\",\"signatures\":[]}"}) {
    auto r = Validate(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_FALSE(Validate(std::string(20000, 'a')).ok());
}

TEST_F(JwtSvidTest, RejectsDisallowedAlgorithmsBeforeKeys) {
  json none = Header("none");
  ExpectRejected(B64(none.dump()) + "." + B64(Claims().dump()) + ".", "\"none\" is not allowed");
  // HS256 keyed with the bundle's public key (algorithm confusion).
  std::string input = B64(Header("HS256").dump()) + "." + B64(Claims().dump());
  std::string pem = es256_.PublicPem();
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), pem.data(), static_cast<int>(pem.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  ExpectRejected(input + "." + B64(absl::string_view(reinterpret_cast<char*>(mac), len)),
                 "\"HS256\" is not allowed");
  TestKey ed = TestKey::Ed25519();
  ExpectRejected(B64(Header("EdDSA").dump()) + "." + B64(Claims().dump()) + ".AAAA",
                 "\"EdDSA\" is not allowed");
  ExpectRejected(B64(Header("ES256K").dump()) + "." + B64(Claims().dump()) + ".AAAA",
                 "not allowed");
}

TEST_F(JwtSvidTest, RejectsAlgorithmKeyMismatch) {
  AddKey("example.org", "krsa", TestKey::Rsa());
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, Header("RS256", "k256"), Claims()),
                 "does not fit");
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha384, Header("ES384", "k256"), Claims()),
                 "does not fit");
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, Header("ES256", "krsa"), Claims()),
                 "does not fit");
}

TEST_F(JwtSvidTest, RejectsClaimProblems) {
  auto token = [&](json c) { return Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), c); };
  json c = Claims();
  c.erase("sub");
  ExpectRejected(token(c), "sub is missing");
  c = Claims();
  c["sub"] = "https://example.org/w";
  ExpectRejected(token(c), "sub: SPIFFE ID");
  c = Claims();
  c.erase("exp");
  ExpectRejected(token(c), "exp is missing");
  c = Claims();
  c["exp"] = absl::ToUnixSeconds(kNow) - 300;
  ExpectRejected(token(c), "expired");
  c = Claims();
  c["nbf"] = absl::ToUnixSeconds(kNow) + 300;
  ExpectRejected(token(c), "not yet valid");
  c = Claims();
  c["iat"] = absl::ToUnixSeconds(kNow) + 300;
  ExpectRejected(token(c), "future");
  c = Claims();
  c.erase("aud");
  ExpectRejected(token(c), "aud is missing");
  c = Claims();
  c["aud"] = {"other"};
  ExpectRejected(token(c), "not in aud");
  c = Claims();
  c["exp"] = "soon";
  EXPECT_EQ(Validate(token(c)).status().code(), absl::StatusCode::kInvalidArgument);
  c = Claims();
  c["scope"] = "read:x bad";
  ExpectRejected(token(c), "scope");
}

TEST_F(JwtSvidTest, AllowsSmallClockSkew) {
  json c = Claims();
  c["exp"] = absl::ToUnixSeconds(kNow) - 10;
  EXPECT_TRUE(Validate(Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), c)).ok());
}

TEST_F(JwtSvidTest, RejectsHeaderProblems) {
  json h = Header();
  h["typ"] = "xyz";
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, h, Claims()), "typ");
  h = Header();
  h["crit"] = {"exp"};
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, h, Claims()),
                 "\"crit\" is not allowed");
  h = Header();
  h["jku"] = "https://evil.example/jwks";
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, h, Claims()),
                 "\"jku\" is not allowed");
  std::string dup = B64(R"({"alg":"ES256","alg":"none"})") + "." + B64(Claims().dump()) + ".AA";
  EXPECT_THAT(std::string(Validate(dup).status().message()), HasSubstr("duplicate"));
}

TEST_F(JwtSvidTest, RejectsTamperingAndWrongKeys) {
  std::string good = Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), Claims());
  std::string sig_flip = good;
  sig_flip[sig_flip.size() - 2] = sig_flip[sig_flip.size() - 2] == 'A' ? 'B' : 'A';
  ExpectRejected(sig_flip, "signature does not verify");
  json c = Claims();
  c["sub"] = "spiffe://example.org/admin";
  size_t dot = good.find('.');
  size_t dot2 = good.find('.', dot + 1);
  ExpectRejected(good.substr(0, dot + 1) + B64(c.dump()) + good.substr(dot2),
                 "signature does not verify");
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, Header("ES256", "nope"), Claims()),
                 "no JWT authority with kid \"nope\"");
  TestKey other = TestKey::Ec("P-256");
  ExpectRejected(Sign(other, SignatureScheme::kEcdsaSha256, Header(), Claims()),
                 "signature does not verify");
}

TEST_F(JwtSvidTest, SelectsKeysOnlyFromTheSubjectsTrustDomain) {
  json c = Claims();
  c["sub"] = "spiffe://nowhere.org/w";
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), c),
                 "no bundle for trust domain \"nowhere.org\"");
  AddKey("other.org", "ko", TestKey::Ec("P-256"));
  c["sub"] = "spiffe://other.org/w";  // signed with example.org's key
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), c),
                 "no JWT authority with kid \"k256\"");
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, Header("ES256", nullptr), c),
                 "signature does not verify");
}

TEST_F(JwtSvidTest, HonoursBundleUpdates) {
  std::string good = Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), Claims());
  ASSERT_TRUE(Validate(good).ok());
  bundles_.Put(Bundle(*TrustDomain::FromName("example.org")));  // keys: []
  ExpectRejected(good, "no JWT authority");
}

TEST_F(JwtSvidTest, IgnoresAttributesOfTrustDomainsNotNamed) {
  TestKey other = TestKey::Ec("P-256");
  AddKey("other.org", "ko", other);
  json c = Claims();
  c["sub"] = "spiffe://other.org/w";
  c["scope"] = "*:*";
  c["tw_trust_level"] = "critical";
  auto v = Validate(Sign(other, SignatureScheme::kEcdsaSha256, Header("ES256", "ko"), c));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->attributes.scopes.empty());
  EXPECT_EQ(v->attributes.trust_level, TrustLevel::kLow);
}

TEST_F(JwtSvidTest, RejectsOutOfRangeDatesAndTrustDomainSubjects) {
  for (double nbf : {1e13, 1e19, -1.0}) {
    json c = Claims();
    c["nbf"] = nbf;
    EXPECT_EQ(Validate(Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), c)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << nbf;
  }
  json c = Claims();
  c["sub"] = "spiffe://example.org";
  ExpectRejected(Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), c),
                 "names the trust domain");
  auto signer = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  EXPECT_FALSE(MintJwtSvid(*signer, {.subject = *SpiffeId::FromString("spiffe://example.org"),
                                     .audience = {"svc"},
                                     .issued_at = kNow,
                                     .ttl = absl::Minutes(1),
                                     .attributes = {}})
                   .ok());
}

TEST_F(JwtSvidTest, AcceptsOnlyTheCanonicalSignatureSpelling) {
  std::string good = Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), Claims());
  ASSERT_TRUE(Validate(good).ok());
  // 64 signature bytes leave 4 spare bits in the last base64url character.
  std::string alias = good;
  char& last = alias.back();
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  last = alphabet[alphabet.find(last) ^ 1];
  EXPECT_THAT(std::string(Validate(alias).status().message()), HasSubstr("canonical"));
}

TEST_F(JwtSvidTest, EscapesUntrustedTextInErrors) {
  std::string token =
      Sign(es256_, SignatureScheme::kEcdsaSha256, Header("ES256", "a\nFAKE LOG LINE"), Claims());
  std::string message(Validate(token).status().message());
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_THAT(message, HasSubstr("\\n"));
}

TEST_F(JwtSvidTest, RefusesToValidateWithoutAnAudience) {
  std::string good = Sign(es256_, SignatureScheme::kEcdsaSha256, Header(), Claims());
  EXPECT_EQ(Validate(good, "").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tw::core
