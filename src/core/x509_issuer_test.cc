#include "core/x509_issuer.h"

#include <openssl/x509v3.h>

#include "core/certificate.h"
#include "core/csr.h"
#include "core/testing/test_pki.h"
#include "crypto/software_signer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::core {
namespace {

using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

struct Ca {
  std::shared_ptr<crypto::SoftwareSigner> key;
  base::Bytes der;
  X509Issuer issuer;
};

Ca MakeCa(crypto::KeyType type = crypto::KeyType::kEcP256, absl::Duration ttl = absl::Hours(24)) {
  std::shared_ptr<crypto::SoftwareSigner> key = *crypto::SoftwareSigner::Generate(type);
  base::Bytes der =
      *X509Issuer::SelfSignedCa(*key, {.trust_domain = *TrustDomain::FromName("example.org"),
                                       .not_before = kNow - absl::Minutes(1),
                                       .not_after = kNow + ttl,
                                       .path_len = std::nullopt});
  auto issuer = X509Issuer::Create(key, {der});
  EXPECT_TRUE(issuer.ok()) << issuer.status();
  return Ca{key, der, *std::move(issuer)};
}

LeafRequest Request(const char* id = "spiffe://example.org/acme/fin/pay/inst-aaaaaaaaaaaaaaaa") {
  LeafRequest r{.spiffe_id = *SpiffeId::FromString(id),
                .not_before = kNow,
                .not_after = kNow + absl::Minutes(30),
                .attributes = {},
                .dns_names = {},
                .ip_addresses = {}};
  r.attributes.scopes = {*Scope::Parse("read:transactions")};
  r.attributes.trust_level = TrustLevel::kHigh;
  return r;
}

crypto::UniquePtr<X509> OpenSslParse(const base::Bytes& der) {
  const uint8_t* p = der.data();
  return crypto::UniquePtr<X509>(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

TEST(X509IssuerTest, CaCertificateHasTheSigningProfile) {
  Ca ca = MakeCa();
  auto cert = Certificate::Parse(ca.der);
  ASSERT_TRUE(cert.ok());
  EXPECT_TRUE(cert->is_ca());
  EXPECT_TRUE(cert->key_usage() & kKeyCertSign);
  EXPECT_FALSE(cert->key_usage() & kDigitalSignature);
  ASSERT_EQ(cert->uri_sans().size(), 1u);
  EXPECT_EQ(cert->uri_sans()[0], "spiffe://example.org");
  EXPECT_TRUE(cert->SelfIssued());
  EXPECT_FALSE(cert->has_ext_key_usage());
  auto x = OpenSslParse(ca.der);
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_verify(x.get(), X509_get0_pubkey(x.get())), 1);
  EXPECT_EQ(X509_check_ca(x.get()), 1);
}

TEST(X509IssuerTest, LeafFollowsX509SvidProfile) {
  Ca ca = MakeCa();
  testing::TestKey subject = testing::TestKey::Ec("P-256");
  auto der = ca.issuer.IssueLeaf(Request(), subject.public_key());
  ASSERT_TRUE(der.ok()) << der.status();
  auto x = OpenSslParse(*der);
  ASSERT_TRUE(x);
  // Independent parse with OpenSSL: signature, KU critical, BC critical cA=false.
  auto ca_x = OpenSslParse(ca.der);
  EXPECT_EQ(X509_verify(x.get(), X509_get0_pubkey(ca_x.get())), 1);
  int crit = -1;
  auto* bc = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(x.get(), NID_basic_constraints, &crit, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(crit, 1);
  EXPECT_FALSE(bc->ca);
  BASIC_CONSTRAINTS_free(bc);
  auto* ku =
      static_cast<ASN1_BIT_STRING*>(X509_get_ext_d2i(x.get(), NID_key_usage, &crit, nullptr));
  ASSERT_NE(ku, nullptr);
  EXPECT_EQ(crit, 1);
  ASN1_BIT_STRING_free(ku);
  EXPECT_EQ(X509_get_extended_key_usage(x.get()) & (XKU_SSL_SERVER | XKU_SSL_CLIENT),
            static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT));
  EXPECT_EQ(X509_get_key_usage(x.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  // The certified key is the one the subject holds (its EVP_PKEY, not our encoding of it).
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(x.get()), subject.get()), 1);
  EXPECT_EQ(X509_check_issued(ca_x.get(), x.get()), X509_V_OK);

  auto cert = Certificate::Parse(*der);
  ASSERT_TRUE(cert.ok());
  ASSERT_EQ(cert->uri_sans().size(), 1u);
  EXPECT_EQ(cert->uri_sans()[0], "spiffe://example.org/acme/fin/pay/inst-aaaaaaaaaaaaaaaa");
  EXPECT_EQ(cert->serial().size(), 16u);
  EXPECT_EQ(cert->not_before(), kNow);
  EXPECT_EQ(cert->not_after(), kNow + absl::Minutes(30));
  ASSERT_TRUE(cert->attributes().has_value());
  auto attrs = DecodeAttributes(*cert->attributes());
  ASSERT_TRUE(attrs.ok());
  EXPECT_EQ(attrs->trust_level, TrustLevel::kHigh);
  EXPECT_EQ(attrs->scopes.size(), 1u);
}

TEST(X509IssuerTest, SerialsAreUnique) {
  Ca ca = MakeCa();
  testing::TestKey subject = testing::TestKey::Ec("P-256");
  auto a = Certificate::Parse(*ca.issuer.IssueLeaf(Request(), subject.public_key()));
  auto b = Certificate::Parse(*ca.issuer.IssueLeaf(Request(), subject.public_key()));
  EXPECT_NE(a->SerialHex(), b->SerialHex());
}

TEST(X509IssuerTest, CapsNotAfterAtTheCa) {
  Ca ca = MakeCa(crypto::KeyType::kEcP256, absl::Minutes(10));
  LeafRequest r = Request();
  r.not_after = kNow + absl::Hours(5);
  auto cert =
      Certificate::Parse(*ca.issuer.IssueLeaf(r, testing::TestKey::Ec("P-256").public_key()));
  EXPECT_EQ(cert->not_after(), kNow + absl::Minutes(10));
}

TEST(X509IssuerTest, RefusesForeignTrustDomainRootIdAndEmptyWindow) {
  Ca ca = MakeCa();
  crypto::PublicKey key = testing::TestKey::Ec("P-256").public_key();
  auto foreign = ca.issuer.IssueLeaf(Request("spiffe://other.org/x"), key);
  EXPECT_THAT(std::string(foreign.status().message()), HasSubstr("not in trust domain"));
  EXPECT_FALSE(ca.issuer.IssueLeaf(Request("spiffe://example.org"), key).ok());
  LeafRequest r = Request();
  r.not_after = r.not_before;
  EXPECT_FALSE(ca.issuer.IssueLeaf(r, key).ok());
}

TEST(X509IssuerTest, IssuesForP384AndRsaSubjectsWithP384Ca) {
  Ca ca = MakeCa(crypto::KeyType::kEcP384);
  for (testing::TestKey k : {testing::TestKey::Ec("P-384"), testing::TestKey::Rsa()}) {
    auto der = ca.issuer.IssueLeaf(Request(), k.public_key());
    ASSERT_TRUE(der.ok());
    EXPECT_EQ(Certificate::Parse(*der)->signature_scheme(), crypto::SignatureScheme::kEcdsaSha384);
  }
}

TEST(X509IssuerTest, IntermediateChainsAndIsServed) {
  Ca root = MakeCa();
  std::shared_ptr<crypto::SoftwareSigner> key =
      *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  auto inter = root.issuer.IssueCa({.trust_domain = *TrustDomain::FromName("example.org"),
                                    .not_before = kNow,
                                    .not_after = kNow + absl::Hours(1),
                                    .path_len = 0},
                                   key->public_key());
  ASSERT_TRUE(inter.ok());
  auto issuer = X509Issuer::Create(key, {*inter, root.der});
  ASSERT_TRUE(issuer.ok()) << issuer.status();
  ASSERT_EQ(issuer->served_chain().size(), 1u);
  auto icert = Certificate::Parse(*inter);
  EXPECT_EQ(icert->path_len(), 0);
  EXPECT_FALSE(issuer
                   ->IssueCa({.trust_domain = *TrustDomain::FromName("example.org"),
                              .not_before = kNow,
                              .not_after = kNow + absl::Hours(1),
                              .path_len = {}},
                             key->public_key())
                   .ok());
}

TEST(X509IssuerTest, CreateRefusesMismatchedKeyAndNonCa) {
  Ca ca = MakeCa();
  std::shared_ptr<crypto::SoftwareSigner> other =
      *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  EXPECT_THAT(std::string(X509Issuer::Create(other, {ca.der}).status().message()),
              HasSubstr("public key"));
  base::Bytes leaf = *ca.issuer.IssueLeaf(Request(), ca.key->public_key());
  EXPECT_FALSE(X509Issuer::Create(ca.key, {leaf}).ok());
  EXPECT_FALSE(X509Issuer::Create(ca.key, {}).ok());
}

TEST(X509IssuerTest, CapsIntermediatePathLenAndLifetimeAtTheChain) {
  std::shared_ptr<crypto::SoftwareSigner> root_key =
      *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  base::Bytes root =
      *X509Issuer::SelfSignedCa(*root_key, {.trust_domain = *TrustDomain::FromName("example.org"),
                                            .not_before = kNow - absl::Minutes(1),
                                            .not_after = kNow + absl::Hours(1),
                                            .path_len = 1});
  X509Issuer root_issuer = *X509Issuer::Create(root_key, {root});
  std::shared_ptr<crypto::SoftwareSigner> key =
      *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  CaRequest unlimited{.trust_domain = *TrustDomain::FromName("example.org"),
                      .not_before = kNow,
                      .not_after = kNow + absl::Hours(48),
                      .path_len = std::nullopt};
  base::Bytes inter = *root_issuer.IssueCa(unlimited, key->public_key());
  auto icert = Certificate::Parse(inter);
  EXPECT_EQ(icert->path_len(), 0);
  EXPECT_EQ(icert->not_after(), kNow + absl::Hours(1));
  CaRequest negative = unlimited;
  negative.path_len = -1;
  EXPECT_FALSE(root_issuer.IssueCa(negative, key->public_key()).ok());
  X509Issuer inter_issuer = *X509Issuer::Create(key, {inter, root});
  LeafRequest r = Request();
  r.not_after = kNow + absl::Hours(30);
  auto leaf =
      Certificate::Parse(*inter_issuer.IssueLeaf(r, testing::TestKey::Ec("P-256").public_key()));
  EXPECT_EQ(leaf->not_after(), kNow + absl::Hours(1));
}

TEST(X509IssuerTest, CreateRefusesACaWhoseIdHasAPath) {
  testing::CertSpec spec = testing::IntermediateSpec("example.org");
  spec.uris = {"spiffe://example.org/ca"};
  testing::TestCert ca = testing::MakeCert(spec);
  auto signer = crypto::SoftwareSigner::FromPem(ca.key.PrivatePem());
  ASSERT_TRUE(signer.ok());
  auto issuer =
      X509Issuer::Create(std::shared_ptr<const crypto::Signer>(*std::move(signer)), {ca.der});
  EXPECT_THAT(std::string(issuer.status().message()), HasSubstr("no path"));
}

TEST(CertificateTest, RejectsEveryTruncation) {
  Ca ca = MakeCa();
  for (size_t n = 0; n < ca.der.size(); n += 7) {
    EXPECT_FALSE(
        Certificate::Parse(base::Bytes(ca.der.begin(), ca.der.begin() + static_cast<ptrdiff_t>(n)))
            .ok());
  }
}

TEST(CertificateTest, ParsesPemAndDerChains) {
  Ca ca = MakeCa();
  std::string pem = CertificatesToPem({ca.der, ca.der});
  EXPECT_EQ(Certificate::ParseChain(pem)->size(), 2u);
  std::string der(ca.der.begin(), ca.der.end());
  EXPECT_EQ(Certificate::ParseChain(der + der)->size(), 2u);
  EXPECT_FALSE(Certificate::ParseChain("garbage").ok());
  EXPECT_FALSE(
      Certificate::ParseChain("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
          .ok());
}

TEST(CsrTest, AcceptsPemAndDerAndChecksTheSignature) {
  testing::TestKey key = testing::TestKey::Ec("P-256");
  crypto::UniquePtr<X509_REQ> req(X509_REQ_new());
  X509_REQ_set_pubkey(req.get(), key.get());
  ASSERT_GT(X509_REQ_sign(req.get(), key.get(), EVP_sha256()), 0);
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  std::string der_s(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  auto parsed = ParseCertificateRequest(der_s);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->public_key, key.public_key());

  std::string tampered = der_s;
  tampered[tampered.size() - 5] ^= 1;  // inside the signature
  auto bad = ParseCertificateRequest(tampered);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseCertificateRequest("junk").ok());
}

TEST(CsrTest, RefusesCaRequestsAndNonUriSans) {
  for (const char* ext : {"critical,CA:TRUE", "DNS:example.com"}) {
    testing::TestKey key = testing::TestKey::Ec("P-256");
    crypto::UniquePtr<X509_REQ> req(X509_REQ_new());
    X509_REQ_set_pubkey(req.get(), key.get());
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    int nid = std::string(ext).find("CA:") != std::string::npos ? NID_basic_constraints
                                                                : NID_subject_alt_name;
    sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, nid, ext));
    X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_sign(req.get(), key.get(), EVP_sha256());
    unsigned char* der = nullptr;
    int len = i2d_X509_REQ(req.get(), &der);
    std::string s(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    EXPECT_FALSE(ParseCertificateRequest(s).ok()) << ext;
  }
}

}  // namespace
}  // namespace tw::core
