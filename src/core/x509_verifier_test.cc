#include "core/x509_verifier.h"

#include "core/testing/test_pki.h"
#include "core/x509_issuer.h"
#include "crypto/der.h"
#include "crypto/software_signer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::core {
namespace {

using testing::CertSpec;
using ::testing::HasSubstr;
using testing::IntermediateSpec;
using testing::LeafSpec;
using testing::MakeCert;
using testing::MakeRootCa;
using testing::TestCert;

constexpr char kId[] = "spiffe://example.org/workload";

class X509VerifierTest : public ::testing::Test {
 protected:
  X509VerifierTest()
      : root_(MakeRootCa("example.org")),
        other_root_(MakeRootCa("other.org")),
        bundles_(std::make_shared<BundleSet>()),
        clock_(absl::Now()) {
    Put("example.org", root_);
    options_.clock = &clock_;
  }

  void Put(const std::string& td, const TestCert& ca) {
    Bundle b(*TrustDomain::FromName(td));
    ASSERT_TRUE(b.AddX509Authority(ca.der).ok());
    bundles_->Put(std::move(b));
  }

  absl::StatusOr<VerifiedX509Svid> Verify(const std::vector<const TestCert*>& chain) {
    std::vector<base::ByteView> ders;
    for (const TestCert* c : chain) ders.push_back(c->der);
    X509Verifier verifier(bundles_, options_);
    return verifier.Verify(ders);
  }

  void ExpectRejected(const std::vector<const TestCert*>& chain, const std::string& reason) {
    auto r = Verify(chain);
    ASSERT_FALSE(r.ok()) << "accepted; wanted: " << reason;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(reason));
  }

  TestCert root_, other_root_;
  std::shared_ptr<BundleSet> bundles_;
  base::FakeClock clock_;
  X509VerifierOptions options_;
};

// Positive controls (catalogue XV-1..4, XF-1).

TEST_F(X509VerifierTest, AcceptsPlainLeaf) {
  TestCert leaf = MakeCert(LeafSpec(kId), &root_);
  auto r = Verify({&leaf});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spiffe_id.str(), kId);
  EXPECT_FALSE(r->attributes.has_value());
}

TEST_F(X509VerifierTest, AcceptsLeafViaIntermediatesInAnyOrder) {
  TestCert i1 = MakeCert(IntermediateSpec("example.org"), &root_);
  CertSpec s2 = IntermediateSpec("example.org");
  s2.common_name = "second";
  TestCert i2 = MakeCert(s2, &i1);
  TestCert leaf = MakeCert(LeafSpec(kId), &i2);
  EXPECT_TRUE(Verify({&leaf, &i2, &i1}).ok());
  EXPECT_TRUE(Verify({&leaf, &i1, &i2}).ok());
  ExpectRejected({&leaf, &i2}, "no path");
}

TEST_F(X509VerifierTest, AcceptsExtraDnsSansAndEmptySubjectWithCriticalSan) {
  CertSpec spec = LeafSpec(kId);
  spec.dns = {"a.example.org", "b.example.org"};
  TestCert leaf = MakeCert(spec, &root_);
  EXPECT_TRUE(Verify({&leaf}).ok());
  CertSpec empty = LeafSpec(kId);
  empty.common_name = "";
  empty.san_critical = true;
  TestCert leaf2 = MakeCert(empty, &root_);
  EXPECT_TRUE(Verify({&leaf2}).ok());
}

TEST_F(X509VerifierTest, AcceptsFederatedTrustDomainWithItsOwnBundle) {
  Put("other.org", other_root_);
  TestCert leaf = MakeCert(LeafSpec("spiffe://other.org/w"), &other_root_);
  EXPECT_TRUE(Verify({&leaf}).ok());
}

// Negative cases of shared/SPIFFE.md §2.3.

TEST_F(X509VerifierTest, RejectsUnsupportedLeafKeys) {
  CertSpec spec = LeafSpec(kId);
  TestCert leaf = testing::MakeCertWithKey(spec, testing::TestKey::Ed25519(), &root_);
  ExpectRejected({&leaf}, "leaf public key: unsupported key type");
}

TEST_F(X509VerifierTest, RejectsEmptyChain) {
  auto r = Verify({});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(X509VerifierTest, RejectsWhenNoBundleForTheLeafTrustDomain) {
  TestCert leaf = MakeCert(LeafSpec("spiffe://other.org/w"), &other_root_);
  ExpectRejected({&leaf}, "no bundle for trust domain \"other.org\"");
}

TEST_F(X509VerifierTest, RejectsWithAnEmptyBundle) {
  bundles_->Put(Bundle(*TrustDomain::FromName("example.org")));
  TestCert leaf = MakeCert(LeafSpec(kId), &root_);
  ExpectRejected({&leaf}, "no X.509 authorities");
}

TEST_F(X509VerifierTest, RejectsLeafFromAnotherCaUnderTheSameName) {
  TestCert impostor = MakeRootCa("example.org");  // same subject name, different key
  TestCert leaf = MakeCert(LeafSpec(kId), &impostor);
  ExpectRejected({&leaf}, "no path to an authority");  // its AKI names the impostor
}

TEST_F(X509VerifierTest, RejectsLeafSignedByAnotherTrustDomainsCa) {
  Put("other.org", other_root_);
  TestCert leaf = MakeCert(LeafSpec(kId), &other_root_);  // claims example.org
  ExpectRejected({&leaf}, "no path to an authority of trust domain \"example.org\"");
}

TEST_F(X509VerifierTest, RejectsUriSanRules) {
  struct Case {
    std::vector<std::string> uris;
    std::string reason;
  };
  for (const Case& c : std::vector<Case>{
           {{}, "exactly one URI SAN (it has 0)"},
           {{kId, "spiffe://example.org/other"}, "exactly one URI SAN (it has 2)"},
           {{kId, kId}, "exactly one URI SAN (it has 2)"},
           {{kId, "https://example.org/x"}, "exactly one URI SAN (it has 2)"},
           {{"sparfe://example.org/w"}, "scheme"},
           {{"spiffe://example.org"}, "no path"},
           {{"spiffe://Example.org/w"}, "lowercase"},
           {{"spiffe://example.org/a/../b"}, "'.' or '..'"},
       }) {
    CertSpec spec = LeafSpec(kId);
    spec.uris = c.uris;
    if (c.uris.empty()) spec.dns = {"only-dns.example.org"};
    TestCert leaf = MakeCert(spec, &root_);
    ExpectRejected({&leaf}, c.reason);
  }
}

TEST_F(X509VerifierTest, RejectsLeafKeyUsageAndCaRules) {
  CertSpec ca = LeafSpec(kId);
  ca.ca = true;
  TestCert leaf_ca = MakeCert(ca, &root_);
  ExpectRejected({&leaf_ca}, "leaf is a CA");
  struct Case {
    std::optional<std::string> ku;
    std::string reason;
  };
  for (const Case& c : std::vector<Case>{
           {"critical,digitalSignature,keyCertSign", "keyCertSign"},
           {"critical,digitalSignature,cRLSign", "cRLSign"},
           {"critical,keyEncipherment", "digitalSignature"},
           {std::nullopt, "digitalSignature"},
       }) {
    CertSpec spec = LeafSpec(kId);
    spec.key_usage = c.ku;
    TestCert leaf = MakeCert(spec, &root_);
    ExpectRejected({&leaf}, c.reason);
  }
}

TEST_F(X509VerifierTest, ChecksValidityWindowsAtTheClock) {
  absl::Time nb = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())) - absl::Minutes(10);
  CertSpec spec = LeafSpec(kId);
  spec.not_before = nb;
  spec.not_after = nb + absl::Minutes(20);
  TestCert leaf = MakeCert(spec, &root_);
  clock_.Set(spec.not_after);
  EXPECT_TRUE(Verify({&leaf}).ok());
  clock_.Set(spec.not_after + absl::Seconds(1));
  ExpectRejected({&leaf}, "leaf expired");
  clock_.Set(nb - absl::Seconds(1));
  ExpectRejected({&leaf}, "not yet valid");
}

TEST_F(X509VerifierTest, RejectsBadIntermediates) {
  TestCert leaf_dummy = MakeCert(LeafSpec(kId), &root_);
  CertSpec no_ca = IntermediateSpec("example.org");
  no_ca.ca = false;
  TestCert i1 = MakeCert(no_ca, &root_);
  TestCert l1 = MakeCert(LeafSpec(kId), &i1);
  ExpectRejected({&l1, &i1}, "intermediate CA is not a CA");

  CertSpec no_sign = IntermediateSpec("example.org");
  no_sign.key_usage = "critical,cRLSign";
  TestCert i2 = MakeCert(no_sign, &root_);
  TestCert l2 = MakeCert(LeafSpec(kId), &i2);
  ExpectRejected({&l2, &i2}, "keyCertSign");

  CertSpec expired = IntermediateSpec("example.org");
  expired.not_after = absl::Now() - absl::Minutes(1);
  TestCert i3 = MakeCert(expired, &root_);
  TestCert l3 = MakeCert(LeafSpec(kId), &i3);
  ExpectRejected({&l3, &i3}, "intermediate CA expired");

  CertSpec constrained = IntermediateSpec("example.org");
  constrained.path_len = 0;
  TestCert i4 = MakeCert(constrained, &root_);
  TestCert i5 = MakeCert(IntermediateSpec("example.org"), &i4);
  TestCert l5 = MakeCert(LeafSpec(kId), &i5);
  ExpectRejected({&l5, &i5, &i4}, "pathLenConstraint");
}

TEST_F(X509VerifierTest, RejectsUnknownCriticalExtensions) {
  CertSpec spec = LeafSpec(kId);
  spec.unknown_critical_extension = true;
  TestCert leaf = MakeCert(spec, &root_);
  ExpectRejected({&leaf}, "unsupported critical extension 1.3.6.1.4.1.99999.1");
}

TEST_F(X509VerifierTest, EnforcesUriNameConstraints) {
  auto verify = [&](const std::string& nc, const std::string& id) {
    CertSpec ispec = IntermediateSpec("example.org");
    ispec.name_constraints = nc;
    TestCert inter = MakeCert(ispec, &root_);
    TestCert leaf = MakeCert(LeafSpec(id), &inter);
    return Verify({&leaf, &inter});
  };
  Put("a.example.org", root_);
  EXPECT_TRUE(verify("critical,permitted;URI:example.org", kId).ok());
  EXPECT_TRUE(verify("critical,permitted;URI:.example.org", "spiffe://a.example.org/w").ok());
  EXPECT_TRUE(verify("critical,excluded;URI:other.org", kId).ok());
  for (const auto& [nc, id] : std::vector<std::pair<std::string, std::string>>{
           {"critical,permitted;URI:other.org", kId},
           {"critical,permitted;URI:.example.org", kId},
           {"critical,excluded;URI:example.org", kId},
           {"critical,permitted;URI:example.org", "spiffe://a.example.org/w"},
           {"critical,permitted;DNS:example.org,excluded;URI:EXAMPLE.org", kId}}) {
    auto r = verify(nc, id);
    ASSERT_FALSE(r.ok()) << nc << " " << id;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("violates the name constraints"));
  }
}

TEST_F(X509VerifierTest, EnforcesDnsNameConstraintsOnTheBundleAuthority) {
  CertSpec rspec = IntermediateSpec("example.org");
  rspec.common_name = "constrained root";
  rspec.name_constraints = "critical,permitted;DNS:example.org";
  TestCert root = MakeCert(rspec);
  Put("example.org", root);
  CertSpec good = LeafSpec(kId);
  good.dns = {"svc.example.org", "example.org"};
  TestCert ok_leaf = MakeCert(good, &root);
  EXPECT_TRUE(Verify({&ok_leaf}).ok());
  CertSpec bad = LeafSpec(kId);
  bad.dns = {"svc.example.org", "evil-example.org"};
  TestCert bad_leaf = MakeCert(bad, &root);
  ExpectRejected({&bad_leaf},
                 "\"evil-example.org\" violates the name constraints of the bundle authority");
}

TEST_F(X509VerifierTest, RefusesNameConstraintsItCannotEvaluate) {
  for (const char* nc :
       {"critical,permitted;IP:10.0.0.0/255.0.0.0", "critical,excluded;email:a@b.c"}) {
    CertSpec ispec = IntermediateSpec("example.org");
    ispec.name_constraints = nc;
    TestCert inter = MakeCert(ispec, &root_);
    TestCert leaf = MakeCert(LeafSpec(kId), &inter);
    ExpectRejected({&leaf, &inter}, "2.5.29.30");
  }
}

TEST_F(X509VerifierTest, RejectsCorruptDerAndFlippedSignature) {
  TestCert leaf = MakeCert(LeafSpec(kId), &root_);
  TestCert flipped = leaf;
  flipped.der[flipped.der.size() - 3] ^= 0x01;  // inside s of the ECDSA signature
  auto r = Verify({&flipped});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("a signature does not verify against the bundle authority"));
  TestCert truncated = leaf;
  truncated.der.resize(truncated.der.size() - 10);
  EXPECT_EQ(Verify({&truncated}).status().code(), absl::StatusCode::kInvalidArgument);
}

// One thread's cached leaves belong to the verifier that verified them: another verifier,
// with other bundles, decides for itself (and one made later at the same address too).
TEST_F(X509VerifierTest, CachedLeavesAreNeverSharedBetweenVerifiers) {
  TestCert leaf = MakeCert(LeafSpec(kId), &root_);
  auto trusting = std::make_unique<X509Verifier>(bundles_, options_);
  ASSERT_TRUE(trusting->Verify({leaf.der}).ok());
  ASSERT_TRUE(trusting->Verify({leaf.der}).ok());
  auto other = std::make_shared<BundleSet>();
  other->Put(Bundle(*TrustDomain::FromName("example.org")));
  X509Verifier strict(other, options_);
  EXPECT_FALSE(strict.Verify({leaf.der}).ok());
  trusting.reset();
  auto again = std::make_unique<X509Verifier>(other, options_);
  EXPECT_FALSE(again->Verify({leaf.der}).ok());
}

TEST_F(X509VerifierTest, BundleUpdatesTakeEffectEvenForCachedLeaves) {
  TestCert leaf = MakeCert(LeafSpec(kId), &root_);
  X509Verifier verifier(bundles_, options_);
  ASSERT_TRUE(verifier.Verify({leaf.der}).ok());
  ASSERT_TRUE(verifier.Verify({leaf.der}).ok());  // cached
  Put("example.org", MakeRootCa("example.org"));  // CA rotated away
  auto r = verifier.Verify({leaf.der});
  ASSERT_FALSE(r.ok());
  bundles_->Remove(*TrustDomain::FromName("example.org"));
  EXPECT_THAT(std::string(verifier.Verify({leaf.der}).status().message()), HasSubstr("no bundle"));
}

TEST_F(X509VerifierTest, CachedLeavesStillExpire) {
  CertSpec spec = LeafSpec(kId);
  spec.not_after = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 600);
  TestCert leaf = MakeCert(spec, &root_);
  X509Verifier verifier(bundles_, options_);
  ASSERT_TRUE(verifier.Verify({leaf.der}).ok());
  clock_.Set(spec.not_after + absl::Seconds(1));
  EXPECT_THAT(std::string(verifier.Verify({leaf.der}).status().message()), HasSubstr("expired"));
}

TEST_F(X509VerifierTest, RevocationCheckRunsOnCachedAndUncachedPaths) {
  TestCert leaf = MakeCert(LeafSpec(kId), &root_);
  bool revoked = false;
  int calls = 0;
  options_.revocation_check = [&](const VerifiedX509Svid& s) {
    ++calls;
    EXPECT_EQ(s.spiffe_id.str(), kId);
    return revoked ? absl::PermissionDeniedError("revoked") : absl::OkStatus();
  };
  X509Verifier verifier(bundles_, options_);
  ASSERT_TRUE(verifier.Verify({leaf.der}).ok());
  revoked = true;
  EXPECT_EQ(verifier.Verify({leaf.der}).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(calls, 2);
}

TEST_F(X509VerifierTest, TriesEveryMatchingAuthority) {
  // The same CA key and name twice, once expired: order in the bundle must not matter.
  CertSpec old = IntermediateSpec("example.org");
  old.common_name = "root example.org";
  old.not_before = absl::Now() - absl::Hours(10);
  old.not_after = absl::Now() - absl::Hours(5);
  TestCert expired = testing::MakeCertWithKey(old, root_.key);
  Bundle b(*TrustDomain::FromName("example.org"));
  ASSERT_TRUE(b.AddX509Authority(expired.der).ok());
  ASSERT_TRUE(b.AddX509Authority(root_.der).ok());
  bundles_->Put(std::move(b));
  TestCert leaf = MakeCert(LeafSpec(kId), &root_);
  EXPECT_TRUE(Verify({&leaf}).ok());
}

TEST_F(X509VerifierTest, RejectsMisencodedSansSerialsAndSignatures) {
  // A URI in constructed form: other parsers would read a second URI the verifier missed.
  base::Bytes san;
  crypto::der::Writer w(&san);
  size_t seq = w.Open(crypto::der::kSequence);
  w.Add(crypto::der::ContextPrimitive(6), base::AsBytes(kId));
  size_t hidden = w.Open(crypto::der::ContextConstructed(6));
  w.Add(crypto::der::kIa5String, base::AsBytes("spiffe://example.org/admin"));
  w.Close(hidden);
  w.Close(seq);
  CertSpec spec = LeafSpec(kId);
  spec.uris = {};
  spec.raw_san = san;
  TestCert leaf = MakeCert(spec, &root_);
  EXPECT_THAT(std::string(Verify({&leaf}).status().message()), HasSubstr("misencoded name"));

  CertSpec negative = LeafSpec(kId);
  negative.serial = -5;
  TestCert neg = MakeCert(negative, &root_);
  EXPECT_THAT(std::string(Verify({&neg}).status().message()), HasSubstr("serial number"));

  TestCert good = MakeCert(LeafSpec(kId), &root_);
  // Walk to the signature BIT STRING (after tbsCertificate and signatureAlgorithm) and
  // mark one unused bit: no longer a whole-octet signature.
  crypto::der::Reader outer(good.der), cert(base::ByteView{});
  ASSERT_TRUE(outer.Enter(crypto::der::kSequence, &cert));
  ASSERT_TRUE(cert.Read(crypto::der::kSequence, nullptr));
  ASSERT_TRUE(cert.Read(crypto::der::kSequence, nullptr));
  size_t sig_bitstring = good.der.size() - cert.remaining().size();
  ASSERT_EQ(good.der[sig_bitstring], crypto::der::kBitString);
  ASSERT_EQ(good.der[sig_bitstring + 2], 0x00);
  good.der[sig_bitstring + 2] = 0x01;
  EXPECT_EQ(Verify({&good}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(X509VerifierTest, ReturnsAttributesOnlyForNamedTrustDomains) {
  auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  std::shared_ptr<const crypto::Signer> signer = std::move(key);
  CaRequest ca{.trust_domain = *TrustDomain::FromName("example.org"),
               .not_before = absl::Now() - absl::Hours(1),
               .not_after = absl::Now() + absl::Hours(1),
               .path_len = std::nullopt};
  base::Bytes ca_der = *X509Issuer::SelfSignedCa(*signer, ca);
  X509Issuer issuer = *X509Issuer::Create(signer, {ca_der});
  LeafRequest req{.spiffe_id = *SpiffeId::FromString(kId),
                  .not_before = absl::Now() - absl::Minutes(1),
                  .not_after = absl::Now() + absl::Minutes(10),
                  .attributes = {},
                  .dns_names = {},
                  .ip_addresses = {}};
  req.attributes.scopes = {*Scope::Parse("read:transactions")};
  req.attributes.trust_level = TrustLevel::kHigh;
  base::Bytes leaf = *issuer.IssueLeaf(req, testing::TestKey::Ec("P-256").public_key());
  Bundle b(*TrustDomain::FromName("example.org"));
  ASSERT_TRUE(b.AddX509Authority(ca_der).ok());
  bundles_->Put(std::move(b));

  auto plain = X509Verifier(bundles_, options_).Verify({leaf});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->attributes.has_value());
  options_.attribute_trust_domains = {*TrustDomain::FromName("other.org")};
  EXPECT_FALSE(X509Verifier(bundles_, options_).Verify({leaf})->attributes.has_value());
  options_.attribute_trust_domains.push_back(*TrustDomain::FromName("example.org"));
  auto named = X509Verifier(bundles_, options_).Verify({leaf});
  ASSERT_TRUE(named->attributes.has_value());
  EXPECT_EQ(*named->attributes, req.attributes);
}

// SVIDs of releases before 0.2 carry the attributes under the old 2.25 OID.
TEST_F(X509VerifierTest, ReadsAttributesUnderTheLegacyOidButNotTwoOfThem) {
  SvidAttributes attrs{.scopes = {*Scope::Parse("write:ledger")},
                       .trust_level = TrustLevel::kMedium,
                       .policy_version = 3,
                       .principal = "ops"};
  testing::CertSpec spec = testing::LeafSpec(kId);
  spec.extensions = {{kLegacyAttributesOidText, EncodeAttributes(attrs)}};
  testing::TestCert leaf = testing::MakeCert(spec, &root_);
  options_.attribute_trust_domains = {*TrustDomain::FromName("example.org")};
  auto legacy = X509Verifier(bundles_, options_).Verify({leaf.der});
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  ASSERT_TRUE(legacy->attributes.has_value());
  EXPECT_EQ(*legacy->attributes, attrs);

  spec.extensions.emplace_back(kAttributesOidText, EncodeAttributes(attrs));
  auto both = X509Verifier(bundles_, options_).Verify({testing::MakeCert(spec, &root_).der});
  EXPECT_EQ(both.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(both.status().message(), ::testing::HasSubstr("two TrustWarden attribute"));
}

TEST_F(X509VerifierTest, RejectsExpiredBundleAuthority) {
  TestCert old_root =
      MakeRootCa("example.org", absl::Now() - absl::Hours(5), absl::Now() - absl::Hours(1));
  Put("example.org", old_root);
  CertSpec spec = LeafSpec(kId);
  TestCert leaf = MakeCert(spec, &old_root);
  ExpectRejected({&leaf}, "bundle authority expired");
}

}  // namespace
}  // namespace tw::core
