#include "ca/rotating_ca.h"

#include <filesystem>

#include "base/clock.h"
#include "base/file.h"
#include "base/testing/temp_dir.h"
#include "core/x509_issuer.h"
#include "core/x509_verifier.h"
#include "crypto/signer_factory.h"
#include "crypto/software_signer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::ca {
namespace {

using ::testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

class RotatingCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(CaDirectory::Init(
                    dir_, {.trust_domain = *core::TrustDomain::FromName("example.org")}, clock_)
                    .ok());
    auto adopted =
        RotatingCa::Adopt(dir_, *CaDirectory::Open(dir_), CaSigners::FilesIn(dir_), options_);
    ASSERT_TRUE(adopted.ok()) << adopted.status();
    ca_ = *std::move(adopted);
  }
  static size_t X509Count(const core::Bundle& b) { return b.x509_authorities().size(); }

  base::FakeClock clock_{kStart};
  base::TempDir tmp_{"tw-rotating-ca"};
  const std::string dir_ = tmp_ / "ca";
  const RotatingCaOptions options_{.max_svid_lifetime = absl::Hours(24),
                                   .max_jwt_lifetime = absl::Hours(1)};
  std::unique_ptr<RotatingCa> ca_;
};

TEST_F(RotatingCaTest, APreparedAuthorityIsPublishedBeforeItSignsThenTakesOver) {
  const auto first_issuer = ca_->issuer();
  const std::string first_jwt = ca_->jwt_signer()->key_id();
  const int64_t sequence = *ca_->bundle()->sequence();
  std::vector<int64_t> seen;
  ca_->OnChange([&seen](const core::Bundle& b) { seen.push_back(*b.sequence()); });

  auto prepared = ca_->Prepare(kStart);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(prepared->state, AuthorityState::kPrepared);
  EXPECT_EQ(X509Count(*ca_->bundle()), 2u);
  EXPECT_EQ(ca_->bundle()->jwt_authorities().size(), 2u);
  EXPECT_EQ(ca_->issuer(), first_issuer) << "a prepared authority signs nothing";
  EXPECT_EQ(ca_->jwt_signer()->key_id(), first_jwt);

  EXPECT_EQ(ca_->Activate(kStart + absl::Seconds(899)).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "published for less than three refresh hints";
  auto activated = ca_->Activate(kStart + absl::Minutes(16));
  ASSERT_TRUE(activated.ok()) << activated.status();
  EXPECT_EQ(activated->id, prepared->id);
  EXPECT_NE(ca_->issuer()->signer().public_key(), first_issuer->signer().public_key());
  EXPECT_NE(ca_->jwt_signer()->key_id(), first_jwt);
  EXPECT_EQ(X509Count(*ca_->bundle()), 2u) << "the old authority stays published";
  EXPECT_EQ(seen, (std::vector<int64_t>{sequence + 1, sequence + 2}));
  const std::vector<AuthorityInfo> status = ca_->Status();
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[0].state, AuthorityState::kOld);
  EXPECT_EQ(status[0].signs_until, kStart + absl::Minutes(16) + absl::Hours(24));
  EXPECT_EQ(status[1].state, AuthorityState::kActive);
}

TEST_F(RotatingCaTest, ASelfSignedSuccessorTakesNoChain) {
  ASSERT_TRUE(ca_->Prepare(kStart).ok());
  const std::string chain = *base::ReadFile(dir_ + "/ca.pem");
  auto refused = ca_->Activate(kStart + absl::Minutes(16), false, chain);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("has its CA certificate already"));
}

TEST_F(RotatingCaTest, AnOldAuthorityRetiresOnlyOnceWhatItSignedHasExpired) {
  ASSERT_TRUE(ca_->Prepare(kStart).ok());
  ASSERT_TRUE(ca_->Activate(kStart, /*now_anyway=*/true).ok());
  absl::Status early = ca_->Retire(1, kStart + absl::Hours(23));
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.message(), HasSubstr("valid until"));
  EXPECT_EQ(ca_->Retire(2, kStart + absl::Hours(25)).code(), absl::StatusCode::kFailedPrecondition)
      << "the active one";
  EXPECT_EQ(ca_->Retire(7, kStart).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ca_->RetireExpired(kStart + absl::Hours(23)).status().message(),
              HasSubstr("valid until"));
  ASSERT_EQ(*ca_->RetireExpired(kStart + absl::Hours(24)), std::vector<int64_t>{1});
  EXPECT_THAT(ca_->RetireExpired(kStart + absl::Hours(25)).status().message(),
              HasSubstr("no authority is old"));
  EXPECT_EQ(X509Count(*ca_->bundle()), 1u);
  EXPECT_EQ(X509Count(*ca_->history()), 2u) << "auditors keep every authority";
  EXPECT_EQ(ca_->Status()[0].state, AuthorityState::kRetired);
}

TEST_F(RotatingCaTest, RevokeAuthorityRemovesAnOldOneAtOnceButNeverTheActiveOne) {
  ASSERT_TRUE(ca_->Prepare(kStart).ok());
  EXPECT_EQ(ca_->RevokeAuthority(1, kStart).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(ca_->RevokeAuthority(2, kStart).ok()) << "a prepared one may go";
  EXPECT_EQ(X509Count(*ca_->bundle()), 1u);
  ASSERT_TRUE(ca_->Prepare(kStart).ok());
  ASSERT_TRUE(ca_->Activate(kStart, /*now_anyway=*/true).ok());
  ASSERT_TRUE(ca_->RevokeAuthority(1, kStart + absl::Minutes(1)).ok());
  EXPECT_EQ(X509Count(*ca_->bundle()), 1u);
  EXPECT_EQ(ca_->RevokeAuthority(1, kStart).code(), absl::StatusCode::kFailedPrecondition);
  std::vector<AuthorityState> states;
  for (const AuthorityInfo& a : ca_->Status()) states.push_back(a.state);
  EXPECT_EQ(states, (std::vector<AuthorityState>{AuthorityState::kRevoked, AuthorityState::kRevoked,
                                                 AuthorityState::kActive}));
}

TEST_F(RotatingCaTest, OneAuthorityIsPreparedAtATimeAndActivateNeedsOne) {
  EXPECT_EQ(ca_->Activate(kStart, /*now_anyway=*/true).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(ca_->Prepare(kStart).ok());
  EXPECT_EQ(ca_->Prepare(kStart).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RotatingCaTest, TheStateSurvivesARestart) {
  ASSERT_TRUE(ca_->Prepare(kStart).ok());
  ASSERT_TRUE(ca_->Activate(kStart, /*now_anyway=*/true).ok());
  const std::string bundle = ca_->bundle()->ToJson();
  const crypto::PublicKey active = ca_->issuer()->signer().public_key();
  ca_.reset();
  auto reopened = RotatingCa::Open(dir_, options_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->bundle()->ToJson(), bundle);
  EXPECT_EQ((*reopened)->issuer()->signer().public_key(), active);
  EXPECT_EQ(*base::ReadFile(dir_ + "/bundle.json"), bundle);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/ca-2.key.pem"));
  // A damaged state file is refused, not guessed at.
  ASSERT_TRUE(base::WriteFile(dir_ + "/authorities.json", "{\"authorities\": 3}").ok());
  EXPECT_EQ(RotatingCa::Open(dir_, options_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RotatingCaTest, OnAScheduleItPreparesActivatesAndRetires) {
  const absl::Duration period = absl::Hours(6);
  const absl::Time activated = ca_->Status()[0].activated_at;  // the CA's notBefore
  using Changes = std::vector<std::pair<int64_t, AuthorityState>>;
  EXPECT_EQ(*ca_->RotateOnSchedule(activated + absl::Hours(4), period), Changes{});
  EXPECT_EQ(*ca_->RotateOnSchedule(activated + absl::Hours(5), period),
            (Changes{{2, AuthorityState::kPrepared}}));
  EXPECT_EQ(*ca_->RotateOnSchedule(activated + absl::Hours(5) + absl::Minutes(30), period),
            Changes{});
  EXPECT_EQ(*ca_->RotateOnSchedule(activated + period, period),
            (Changes{{2, AuthorityState::kActive}}));
  // Authority 2 served five sixths of the period: its successor is prepared.
  EXPECT_EQ(*ca_->RotateOnSchedule(activated + period + absl::Hours(5), period),
            (Changes{{3, AuthorityState::kPrepared}}));
  EXPECT_EQ(X509Count(*ca_->bundle()), 3u);
  // The first one retires once its SVIDs expired (24 h after it stopped signing), as the
  // third takes over.
  EXPECT_EQ(*ca_->RotateOnSchedule(activated + period + absl::Hours(24), period),
            (Changes{{1, AuthorityState::kRetired}, {3, AuthorityState::kActive}}));
  EXPECT_EQ(X509Count(*ca_->bundle()), 2u);
}

// Upstream mode: the CA is an intermediate of a root kept elsewhere, so its successor's
// certificate is the root's to sign; the bundle's X.509 part (the root) never changes.
class UpstreamRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(CaDirectory::Init(root_, {.trust_domain = td_}, base::Clock::System()).ok());
    std::filesystem::create_directories(keys_);
    CaSigners::Uris uris{.ca = crypto::FileKeyUri(keys_ + "/ca.key.pem"),
                         .jwt = crypto::FileKeyUri(keys_ + "/jwt.key.pem")};
    for (const std::string& path : {keys_ + "/ca.key.pem", keys_ + "/jwt.key.pem"}) {
      ASSERT_TRUE(
          (*crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256))->WriteFile(path).ok());
    }
    CaSigners signers = *CaSigners::Open(uris);
    auto csr = *core::BuildCertificateRequest(*signers.ca);
    auto chain = SignedByRoot(root_, core::PemEncode("CERTIFICATE REQUEST", csr));
    ASSERT_TRUE(chain.ok()) << chain.status();
    ASSERT_TRUE(CaDirectory::InitUpstream(up_, *chain, signers, base::Clock::System()).ok());
    auto adopted =
        RotatingCa::Adopt(up_, *CaDirectory::Load(up_, signers), uris, RotatingCaOptions{});
    ASSERT_TRUE(adopted.ok()) << adopted.status();
    ca_ = *std::move(adopted);
  }
  // `csr` signed by the root in `dir`, as `ca sign-intermediate` does.
  static absl::StatusOr<std::string> SignedByRoot(const std::string& dir, const std::string& csr) {
    return CaDirectory::SignIntermediate(dir,
                                         *crypto::SoftwareSigner::ReadFile(dir + "/ca.key.pem"),
                                         csr, absl::Hours(12), base::Clock::System());
  }

  const core::TrustDomain td_ = *core::TrustDomain::FromName("example.org");
  base::TempDir tmp_{"tw-upstream-rotation"};
  const std::string root_ = tmp_ / "root", keys_ = tmp_ / "keys", up_ = tmp_ / "up";
  std::unique_ptr<RotatingCa> ca_;
};

TEST_F(UpstreamRotationTest, TheSuccessorsRequestIsSignedByTheRootThenActivated) {
  const absl::Time now = absl::Now();
  const auto first_issuer = ca_->issuer();
  const int64_t sequence = *ca_->bundle()->sequence();
  const base::Bytes root = ca_->bundle()->x509_authorities()[0]->certificate.der();
  auto prepared = ca_->Prepare(now);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  ASSERT_THAT(prepared->csr_pem, HasSubstr("BEGIN CERTIFICATE REQUEST"));
  EXPECT_EQ(prepared->serial, "") << "no certificate before the root signs";
  EXPECT_EQ(*ca_->bundle()->sequence(), sequence + 1);
  ASSERT_EQ(ca_->bundle()->x509_authorities().size(), 1u);
  EXPECT_EQ(ca_->bundle()->x509_authorities()[0]->certificate.der(), root);
  EXPECT_EQ(ca_->bundle()->jwt_authorities().size(), 2u) << "its JWT key is published at once";

  auto unsigned_yet = ca_->Activate(now + absl::Minutes(16));
  EXPECT_EQ(unsigned_yet.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(unsigned_yet.status().message(), HasSubstr("ca activate --chain"));
  // A chain for another key, and one from another root of the same trust domain.
  auto stranger = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  const std::string other_key = *SignedByRoot(
      root_, core::PemEncode("CERTIFICATE REQUEST", *core::BuildCertificateRequest(*stranger)));
  EXPECT_THAT(ca_->Activate(now + absl::Minutes(16), false, other_key).status().message(),
              HasSubstr("not for this CA key"));
  const std::string other_root_dir = tmp_ / "other-root";
  ASSERT_TRUE(CaDirectory::Init(other_root_dir, {.trust_domain = td_}, base::Clock::System()).ok());
  const std::string other_root = *SignedByRoot(other_root_dir, prepared->csr_pem);
  EXPECT_THAT(ca_->Activate(now + absl::Minutes(16), false, other_root).status().message(),
              HasSubstr("another root"));
  const std::string elsewhere_dir = tmp_ / "elsewhere";
  ASSERT_TRUE(CaDirectory::Init(elsewhere_dir,
                                {.trust_domain = *core::TrustDomain::FromName("elsewhere.org")},
                                base::Clock::System())
                  .ok());
  EXPECT_THAT(
      ca_->Activate(now + absl::Minutes(16), false, *SignedByRoot(elsewhere_dir, prepared->csr_pem))
          .status()
          .message(),
      HasSubstr("for trust domain elsewhere.org"));
  EXPECT_EQ(ca_->issuer(), first_issuer) << "refusals change nothing";

  const std::string chain = *SignedByRoot(root_, prepared->csr_pem);
  EXPECT_EQ(ca_->Activate(now + absl::Seconds(10), false, chain).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "its JWT key was published for less than the refresh hint";
  auto activated = ca_->Activate(now + absl::Minutes(16), false, chain);
  ASSERT_TRUE(activated.ok()) << activated.status();
  EXPECT_EQ(activated->csr_pem, "");
  EXPECT_NE(activated->serial, "");
  EXPECT_NE(ca_->issuer()->signer().public_key(), first_issuer->signer().public_key());
  EXPECT_EQ(ca_->issuer()->chain().back().der(), root);
  ASSERT_EQ(ca_->bundle()->x509_authorities().size(), 1u) << "the root alone, still";
  EXPECT_EQ(*ca_->bundle()->sequence(), sequence + 2);
  // What the new intermediate issues verifies against the root alone.
  auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  auto leaf =
      ca_->issuer()->IssueLeaf({.spiffe_id = *core::SpiffeId::FromString("spiffe://example.org/a"),
                                .not_before = now - absl::Minutes(1),
                                .not_after = now + absl::Minutes(5)},
                               key->public_key());
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  auto bundles = std::make_shared<core::BundleSet>();
  bundles->Put(*ca_->bundle());
  core::X509Verifier verifier(bundles, {});
  std::vector<base::ByteView> presented = {*leaf};
  for (base::ByteView c : ca_->issuer()->served_chain()) presented.push_back(c);
  EXPECT_TRUE(verifier.Verify(presented).ok());
  // The old intermediate chains to the root the bundle keeps: "revoking" it would untrust
  // nothing, so it is refused rather than reported done.
  absl::Status revoked = ca_->RevokeAuthority(1, now + absl::Minutes(11));
  EXPECT_EQ(revoked.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(revoked.message(), HasSubstr("upstream root"));
  // Kept across a restart.
  auto reopened = RotatingCa::Open(up_, RotatingCaOptions{});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->issuer()->signer().public_key(), ca_->issuer()->signer().public_key());
}

TEST_F(UpstreamRotationTest, TheScheduleLeavesAnAuthorityAwaitingTheRootAlone) {
  ASSERT_TRUE(ca_->Prepare(absl::Now()).ok());
  // Due by the schedule, but awaiting the root: nothing happens, and nothing fails.
  auto changes = ca_->RotateOnSchedule(absl::Now() + absl::Hours(48), absl::Hours(1));
  ASSERT_TRUE(changes.ok()) << changes.status();
  EXPECT_TRUE(changes->empty());
}

}  // namespace
}  // namespace tw::ca
