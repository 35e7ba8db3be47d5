#include "ca/ca_directory.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "base/file.h"
#include "base/testing/temp_dir.h"
#include "core/certificate.h"
#include "core/x509_issuer.h"
#include "core/x509_verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::ca {
namespace {

using ::testing::HasSubstr;

class CaDirectoryTest : public ::testing::Test {
 protected:
  absl::Status Init(crypto::KeyType type = crypto::KeyType::kEcP256) {
    return CaDirectory::Init(dir_,
                             {.trust_domain = *core::TrustDomain::FromName("example.org"),
                              .key_type = type,
                              .ttl = absl::Hours(24)},
                             base::Clock::System());
  }
  // A leaf for spiffe://example.org/w from `ca`, valid for `ttl` from now.
  static absl::StatusOr<base::Bytes> IssueLeaf(const CaDirectory& ca, absl::Duration ttl) {
    auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
    absl::Time now = absl::Now();
    return ca.issuer().IssueLeaf(
        {.spiffe_id = *core::SpiffeId::FromString("spiffe://example.org/w"),
         .not_before = now - kBackdate,
         .not_after = now + ttl,
         .attributes = {},
         .dns_names = {},
         .ip_addresses = {}},
        key->public_key());
  }
  int Mode(const char* name) {
    struct stat st;
    return stat((dir_ + "/" + name).c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
  }

  base::TempDir tmp_{"tw-ca"};
  const std::string root_ = tmp_.path();
  const std::string dir_ = root_ + "/ca";
};

TEST_F(CaDirectoryTest, InitWritesTheApiFilesWithSafeModes) {
  ASSERT_TRUE(Init().ok());
  EXPECT_EQ(Mode(""), 0700);
  EXPECT_EQ(Mode("ca.key.pem"), 0600);
  EXPECT_EQ(Mode("jwt.key.pem"), 0600);
  for (const char* f : {"ca.pem", "bundle.json", "bundle.pem"}) EXPECT_EQ(Mode(f), 0644) << f;
}

TEST_F(CaDirectoryTest, LoadsWhatInitWroteAndIssuesVerifiableSvids) {
  ASSERT_TRUE(Init(crypto::KeyType::kEcP384).ok());
  auto ca = CaDirectory::Open(dir_);
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_EQ(ca->issuer().trust_domain().name(), "example.org");
  EXPECT_EQ(ca->bundle().x509_authorities().size(), 1u);
  ASSERT_EQ(ca->bundle().jwt_authorities().size(), 1u);
  EXPECT_EQ(ca->bundle().jwt_authorities()[0].key_id, ca->jwt_signer().key_id());
  EXPECT_EQ(ca->bundle().sequence(), 1u);

  auto der = IssueLeaf(*ca, absl::Minutes(5));
  ASSERT_TRUE(der.ok());
  auto bundles = std::make_shared<core::BundleSet>();
  bundles->Put(ca->bundle());
  core::X509Verifier verifier(bundles);
  EXPECT_TRUE(verifier.Verify({*der}).ok());
}

TEST_F(CaDirectoryTest, IntermediateIssuesLeavesThatChainToTheRoot) {
  ASSERT_TRUE(Init().ok());
  std::string inter = root_ + "/inter";
  ASSERT_TRUE(CaDirectory::InitIntermediate(inter, dir_, crypto::KeyType::kEcP256, absl::Hours(2),
                                            base::Clock::System())
                  .ok());
  auto ca = CaDirectory::Open(inter);
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_EQ(ca->issuer().chain().size(), 2u);
  ASSERT_EQ(ca->issuer().served_chain().size(), 1u);
  EXPECT_EQ(ca->bundle().x509_authorities().size(), 1u);  // still only the root
  EXPECT_EQ(ca->bundle().jwt_authorities().size(), 2u);   // the parent's key and its own
  EXPECT_EQ(ca->bundle().sequence(), 2u);

  auto der = IssueLeaf(*ca, absl::Hours(5));
  ASSERT_TRUE(der.ok());
  auto leaf = core::Certificate::Parse(*der);
  EXPECT_LE(leaf->not_after(), ca->issuer().certificate().not_after());
  auto root_ca = CaDirectory::Open(dir_);
  auto bundles = std::make_shared<core::BundleSet>();
  bundles->Put(root_ca->bundle());  // the root's own bundle suffices for X.509
  core::X509Verifier verifier(bundles);
  EXPECT_TRUE(verifier.Verify({*der, ca->issuer().served_chain()[0]}).ok());
  // Without the intermediate there is no path (the cache would remember the earlier one).
  EXPECT_FALSE(verifier.VerifyAt({*der}, absl::Now()).ok());
  EXPECT_EQ(CaDirectory::InitIntermediate(inter, dir_, crypto::KeyType::kEcP256, absl::Hours(1),
                                          base::Clock::System())
                .code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(CaDirectoryTest, InitRefusesToOverwrite) {
  ASSERT_TRUE(Init().ok());
  std::string before = *base::ReadFile(dir_ + "/ca.key.pem");
  EXPECT_EQ(Init().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(*base::ReadFile(dir_ + "/ca.key.pem"), before);
}

TEST_F(CaDirectoryTest, LoadNamesTheMissingOrBadFile) {
  EXPECT_EQ(CaDirectory::Open(root_ + "/none").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Init().ok());
  ASSERT_TRUE(base::WriteFile(dir_ + "/bundle.json", "{oops").ok());
  auto bad = CaDirectory::Open(dir_);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("bundle.json"));
  // A CA certificate that is not the key's.
  std::string other = root_ + "/other";
  ASSERT_TRUE(CaDirectory::Init(other,
                                {.trust_domain = *core::TrustDomain::FromName("example.org"),
                                 .key_type = crypto::KeyType::kEcP256,
                                 .ttl = absl::Hours(1)},
                                base::Clock::System())
                  .ok());
  ASSERT_TRUE(base::WriteFile(dir_ + "/ca.pem", *base::ReadFile(other + "/ca.pem")).ok());
  EXPECT_THAT(std::string(CaDirectory::Open(dir_).status().message()), HasSubstr("ca.pem"));
}

TEST_F(CaDirectoryTest, LoadSignsWithTheSignersItIsGiven) {
  ASSERT_TRUE(Init().ok());
  auto signers = CaSigners::Open(CaSigners::FilesIn(dir_));
  ASSERT_TRUE(signers.ok()) << signers.status();
  const crypto::Signer* ca_key = signers->ca.get();
  auto ca = CaDirectory::Load(dir_, *std::move(signers));
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_EQ(&ca->issuer().signer(), ca_key);
}

TEST_F(CaDirectoryTest, LoadRefusesAJwtKeyTheBundleDoesNotPublish) {
  ASSERT_TRUE(Init().ok());
  auto signers = CaSigners::Open(CaSigners::FilesIn(dir_));
  ASSERT_TRUE(signers.ok()) << signers.status();
  signers->jwt = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  auto ca = CaDirectory::Load(dir_, *std::move(signers));
  EXPECT_EQ(ca.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(ca.status().message()), HasSubstr("JWT signing key"));
}

TEST_F(CaDirectoryTest, OpenNamesTheKeyItCannotRead) {
  ASSERT_TRUE(Init().ok());
  ASSERT_TRUE(base::WriteFile(dir_ + "/jwt.key.pem", "not a key").ok());
  auto ca = CaDirectory::Open(dir_);
  ASSERT_FALSE(ca.ok());
  EXPECT_THAT(std::string(ca.status().message()), HasSubstr("jwt.key.pem"));
}

// Upstream mode: a root elsewhere certifies this CA's key from its CSR.
class UpstreamTest : public CaDirectoryTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Init().ok());  // the root, in dir_
    key_ = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
    jwt_ = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  }
  absl::StatusOr<std::string> Sign(const crypto::Signer& key, absl::Duration ttl) {
    auto csr = core::BuildCertificateRequest(key);
    if (!csr.ok()) return csr.status();
    return CaDirectory::SignIntermediate(
        dir_, *crypto::SoftwareSigner::ReadFile(dir_ + "/ca.key.pem"),
        core::PemEncode("CERTIFICATE REQUEST", *csr), ttl, base::Clock::System());
  }
  CaSigners Signers() const { return CaSigners{.ca = key_, .jwt = jwt_}; }

  std::shared_ptr<crypto::SoftwareSigner> key_, jwt_;
  const std::string up_ = root_ + "/up";
};

TEST_F(UpstreamTest, AnIntermediateOfTheRootIssuesSvidsTheRootAloneVerifies) {
  auto chain = Sign(*key_, absl::Hours(12));
  ASSERT_TRUE(chain.ok()) << chain.status();
  auto certs = *core::Certificate::ParseChain(*chain);
  ASSERT_EQ(certs.size(), 2u);
  EXPECT_TRUE(certs[0].is_ca());
  EXPECT_EQ(certs[0].path_len(), 0);
  EXPECT_LE(certs[0].not_after(), absl::Now() + absl::Hours(12));
  ASSERT_TRUE(CaDirectory::InitUpstream(up_, *chain, Signers(), base::Clock::System()).ok());
  EXPECT_FALSE(std::filesystem::exists(up_ + "/ca.key.pem"));
  auto up = CaDirectory::Load(up_, Signers());
  ASSERT_TRUE(up.ok()) << up.status();
  auto root = *CaDirectory::Open(dir_);
  // The bundle is the root's X.509 authority and this CA's JWT key.
  ASSERT_EQ(up->bundle().x509_authorities().size(), 1u);
  EXPECT_EQ(up->bundle().x509_authorities()[0]->certificate.der(),
            root.issuer().certificate().der());
  // An SVID carries the intermediate and verifies against the root alone.
  auto leaf = IssueLeaf(*up, absl::Minutes(5));
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  ASSERT_EQ(up->issuer().served_chain().size(), 1u);
  auto bundles = std::make_shared<core::BundleSet>();
  bundles->Put(root.bundle());
  core::X509Verifier verifier(bundles, {});
  EXPECT_FALSE(verifier.Verify({*leaf}).ok()) << "the intermediate is needed";
  EXPECT_TRUE(verifier.Verify({*leaf, up->issuer().served_chain()[0]}).ok());
}

TEST_F(UpstreamTest, AChainForAnotherKeyOrWithoutItsRootIsRefused) {
  auto other = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  auto chain = *Sign(*other, absl::Hours(1));
  absl::Status wrong_key = CaDirectory::InitUpstream(up_, chain, Signers(), base::Clock::System());
  EXPECT_EQ(wrong_key.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong_key.message(), HasSubstr("not for this CA key"));
  auto mine = *Sign(*key_, absl::Hours(1));
  const std::string intermediate_only = mine.substr(0, mine.find("-----END CERTIFICATE-----") + 26);
  EXPECT_THAT(
      CaDirectory::InitUpstream(up_, intermediate_only, Signers(), base::Clock::System()).message(),
      HasSubstr("at least two"));
  // The chain with another root at its end.
  ASSERT_TRUE(CaDirectory::Init(root_ + "/other",
                                {.trust_domain = *core::TrustDomain::FromName("example.org")},
                                base::Clock::System())
                  .ok());
  const std::string other_root = *base::ReadFile(root_ + "/other/ca.pem");
  absl::Status mismatched = CaDirectory::InitUpstream(up_, intermediate_only + other_root,
                                                      Signers(), base::Clock::System());
  EXPECT_EQ(mismatched.code(), absl::StatusCode::kInvalidArgument) << mismatched;
  EXPECT_FALSE(std::filesystem::exists(up_ + "/ca.pem"));
}

}  // namespace
}  // namespace tw::ca
