#include "core/bundle.h"

#include "absl/strings/escaping.h"
#include "core/jwt_svid.h"
#include "core/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tw::core {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::TestKey;

std::string B64Url(base::ByteView b) { return absl::WebSafeBase64Escape(base::AsChars(b)); }

json EcJwk(const crypto::PublicKey& k) {
  return {{"kty", "EC"},
          {"crv", std::string(crypto::CurveName(k.type()))},
          {"x", B64Url(k.ec_x())},
          {"y", B64Url(k.ec_y())}};
}

json X509Jwk(const testing::TestCert& ca) {
  json j = EcJwk(ca.key.public_key());
  j["use"] = "x509-svid";
  j["x5c"] = {absl::Base64Escape(base::AsChars(ca.der))};
  return j;
}

class BundleTest : public ::testing::Test {
 protected:
  BundleTest() : ca_(testing::MakeRootCa("example.org")), jwt_key_(TestKey::Ec("P-256")) {}
  json JwtJwk(const char* kid = "k1") {
    json j = EcJwk(jwt_key_.public_key());
    j["use"] = "jwt-svid";
    j["kid"] = kid;
    return j;
  }
  testing::TestCert ca_;
  TestKey jwt_key_;
};

TEST_F(BundleTest, EmitsStrictlyAndRoundTrips) {
  Bundle b(*TrustDomain::FromName("example.org"));
  ASSERT_TRUE(b.AddX509Authority(ca_.der).ok());
  b.AddJwtAuthority("k1", jwt_key_.public_key());
  b.set_sequence(7);
  b.set_refresh_hint_seconds(300);
  json doc = json::parse(b.ToJson());
  ASSERT_EQ(doc["keys"].size(), 2u);
  EXPECT_EQ(doc["keys"][0]["use"], "x509-svid");
  EXPECT_FALSE(doc["keys"][0].contains("kid"));
  EXPECT_EQ(doc["keys"][0]["x5c"].size(), 1u);
  EXPECT_EQ(doc["keys"][1]["use"], "jwt-svid");
  EXPECT_EQ(doc["keys"][1]["kid"], "k1");
  EXPECT_FALSE(doc["keys"][1].contains("x5c"));
  EXPECT_EQ(doc["spiffe_sequence"], 7);
  EXPECT_EQ(doc["spiffe_refresh_hint"], 300);

  auto parsed = Bundle::Parse(b.ToJson(), *TrustDomain::FromName("example.org"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->x509_authorities().size(), 1u);
  EXPECT_EQ(parsed->jwt_authorities().size(), 1u);
  EXPECT_EQ(parsed->sequence(), 7u);
  EXPECT_EQ(parsed->ToJson(), b.ToJson());
}

TEST_F(BundleTest, InfersTheTrustDomainFromTheCaUriSan) {
  Bundle b(*TrustDomain::FromName("example.org"));
  ASSERT_TRUE(b.AddX509Authority(ca_.der).ok());
  EXPECT_EQ(Bundle::Parse(b.ToJson())->trust_domain().name(), "example.org");
  EXPECT_EQ(Bundle::Parse(b.ToPem())->trust_domain().name(), "example.org");
  EXPECT_EQ(Bundle::Parse(b.ToPem(), *TrustDomain::FromName("x.org"))->trust_domain().name(),
            "x.org");
  testing::CertSpec spec = testing::IntermediateSpec("example.org");
  spec.uris = {};
  testing::TestCert anonymous = testing::MakeCert(spec);
  auto r = Bundle::Parse(anonymous.pem());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("trust domain"));
  EXPECT_FALSE(Bundle::Parse(R"({"keys":[]})").ok());
  EXPECT_TRUE(Bundle::Parse(R"({"keys":[]})", *TrustDomain::FromName("x.org")).ok());
}

TEST_F(BundleTest, IgnoresJwksTheSpecSaysToIgnore) {
  json unknown_kty = {
      {"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "AAAA"}, {"use", "jwt-svid"}, {"kid", "ed"}};
  json no_use = JwtJwk("nouse");
  no_use.erase("use");
  json unknown_use = JwtJwk("weird");
  unknown_use["use"] = "sig";
  json jwt_no_kid = JwtJwk();
  jwt_no_kid.erase("kid");
  json x509_no_x5c = X509Jwk(ca_);
  x509_no_x5c.erase("x5c");
  json x509_empty_x5c = X509Jwk(ca_);
  x509_empty_x5c["x5c"] = json::array();
  json mismatched = X509Jwk(ca_);
  mismatched["x"] = EcJwk(jwt_key_.public_key())["x"];
  json bad_point = JwtJwk("bad");
  bad_point["y"] = bad_point["x"];
  json doc = {{"keys",
               {unknown_kty, no_use, unknown_use, jwt_no_kid, x509_no_x5c, x509_empty_x5c,
                mismatched, bad_point, X509Jwk(ca_), JwtJwk()}}};
  auto b = Bundle::Parse(doc.dump(), *TrustDomain::FromName("example.org"));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->x509_authorities().size(), 1u);
  ASSERT_EQ(b->jwt_authorities().size(), 1u);
  EXPECT_EQ(b->jwt_authorities()[0].key_id, "k1");
}

TEST_F(BundleTest, RefusesLeafCertificatesAsAuthorities) {
  testing::TestCert leaf = testing::MakeCert(testing::LeafSpec("spiffe://example.org/w"), &ca_);
  Bundle b(*TrustDomain::FromName("example.org"));
  EXPECT_THAT(std::string(b.AddX509Authority(leaf.der).message()), HasSubstr("CA certificate"));
  EXPECT_FALSE(Bundle::Parse(leaf.pem(), *TrustDomain::FromName("example.org")).ok());
  auto json_bundle = Bundle::Parse(json{{"keys", {X509Jwk(leaf), X509Jwk(ca_)}}}.dump(),
                                   *TrustDomain::FromName("example.org"));
  ASSERT_TRUE(json_bundle.ok());
  EXPECT_EQ(json_bundle->x509_authorities().size(), 1u);  // the leaf's entry is ignored
}

TEST_F(BundleTest, UsesTheFirstCertificateOfX5c) {
  json two = X509Jwk(ca_);
  testing::TestCert other = testing::MakeRootCa("example.org");
  two["x5c"].push_back(absl::Base64Escape(base::AsChars(other.der)));
  auto b = Bundle::Parse(json{{"keys", {two}}}.dump(), *TrustDomain::FromName("example.org"));
  ASSERT_EQ(b->x509_authorities().size(), 1u);
  EXPECT_EQ(b->x509_authorities()[0]->certificate.der(), ca_.der);
}

TEST_F(BundleTest, X509SvidKeysNeverValidateJwts) {
  // A JWT signed by the CA key, whose JWK has use x509-svid: not a JWT authority.
  json doc = {{"keys", {X509Jwk(ca_)}}};
  BundleSet set;
  set.Put(*Bundle::Parse(doc.dump(), *TrustDomain::FromName("example.org")));
  json header = {{"alg", "ES256"}};
  json claims = {{"sub", "spiffe://example.org/w"}, {"aud", "svc"}, {"exp", 4102444800}};
  std::string input =
      absl::WebSafeBase64Escape(header.dump()) + "." + absl::WebSafeBase64Escape(claims.dump());
  base::Bytes sig = crypto::EcdsaDerToRaw(
      ca_.key.Sign(crypto::SignatureScheme::kEcdsaSha256, base::AsBytes(input)), 32);
  auto r =
      ValidateJwtSvid(input + "." + B64Url(sig), "svc", set, absl::FromUnixSeconds(1'800'000'000));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("no JWT authority"));
}

TEST_F(BundleTest, RejectsMalformedDocuments) {
  TrustDomain td = *TrustDomain::FromName("example.org");
  for (const char* bad :
       {"", "{", "[]", "{}", R"({"keys":{}})", R"({"keys":[],"keys":[]})",
        R"({"keys":[],"spiffe_sequence":-1})", R"({"keys":[],"spiffe_sequence":"1"})",
        R"({"keys":[],"spiffe_refresh_hint":1.5})", "not a bundle"}) {
    EXPECT_FALSE(Bundle::Parse(bad, td).ok()) << bad;
  }
  EXPECT_THAT(std::string(Bundle::Parse(R"({"keys":[],"keys":[]})", td).status().message()),
              HasSubstr("duplicate"));
  std::string deep(100, '[');
  EXPECT_FALSE(Bundle::Parse("{\"keys\":" + deep, td).ok());
}

TEST_F(BundleTest, BundleMapRoundTripsAndLoadsAtomically) {
  Bundle a(*TrustDomain::FromName("a.org"));
  ASSERT_TRUE(a.AddX509Authority(ca_.der).ok());
  a.set_refresh_hint_seconds(60);
  Bundle b(*TrustDomain::FromName("b.org"));
  b.AddJwtAuthority("k1", jwt_key_.public_key());
  std::string text = BundleMapJson({a, b});
  EXPECT_FALSE(json::parse(text)["trust_domains"]["a.org"].contains("spiffe_refresh_hint"));
  auto parsed = ParseBundleMap(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  BundleSet set;
  set.Put(Bundle(*TrustDomain::FromName("gone.org")));
  set.ReplaceAll(*std::move(parsed));
  EXPECT_EQ(set.Get("gone.org"), nullptr);
  EXPECT_EQ(set.Get("a.org")->x509_authorities().size(), 1u);
  EXPECT_EQ(set.Get("b.org")->jwt_authorities().size(), 1u);
  auto spiffe_keys = ParseBundleMap(R"({"trust_domains":{"spiffe://c.org":{"keys":[]}}})");
  ASSERT_TRUE(spiffe_keys.ok());
  EXPECT_EQ((*spiffe_keys)[0].trust_domain().name(), "c.org");
}

TEST_F(BundleTest, BundleMapRejectsDuplicatesAndBadKeys) {
  for (const char* bad :
       {R"({"trust_domains":{"a.org":{"keys":[]},"a.org":{"keys":[]}}})",
        R"({"trust_domains":{"a.org":{"keys":[]},"spiffe://a.org":{"keys":[]}}})",
        R"({"trust_domains":{"A.org":{"keys":[]}}})",
        R"({"trust_domains":{"spiffe://a.org/x":{"keys":[]}}})",
        R"({"trust_domains":{"a.org":{}}})", R"({"trust_domains":[]})", R"({})"}) {
    EXPECT_FALSE(ParseBundleMap(bad).ok()) << bad;
  }
  EXPECT_TRUE(ParseBundleMap(R"({"trust_domains":{}})").ok());
}

TEST_F(BundleTest, BundleSetReplacesAndCountsGenerations) {
  BundleSet set;
  uint64_t g0 = set.generation();
  set.Put(Bundle(*TrustDomain::FromName("a.org")));
  EXPECT_NE(set.Get("a.org"), nullptr);
  EXPECT_EQ(set.Get("b.org"), nullptr);
  EXPECT_GT(set.generation(), g0);
  set.Remove(*TrustDomain::FromName("a.org"));
  EXPECT_EQ(set.Get("a.org"), nullptr);
}

}  // namespace
}  // namespace tw::core
