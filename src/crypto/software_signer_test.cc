#include "crypto/software_signer.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "base/file.h"
#include "base/testing/temp_dir.h"
#include "crypto/testing/signer_conformance.h"
#include "gtest/gtest.h"

namespace tw::crypto {
namespace {

using testing::SignerConformanceTest;

INSTANTIATE_TEST_SUITE_P(
    Software, SignerConformanceTest,
    ::testing::Combine(::testing::Values(testing::SignerBackend{
                           "software",
                           [](KeyType type) -> absl::StatusOr<std::unique_ptr<Signer>> {
                             auto signer = SoftwareSigner::Generate(type);
                             if (!signer.ok()) return signer.status();
                             return std::unique_ptr<Signer>(*std::move(signer));
                           }}),
                       ::testing::Values(KeyType::kEcP256, KeyType::kEcP384)),
    testing::SignerParamName);

TEST(SoftwareSignerTest, KeyIdIsTheJwkThumbprint) {
  auto s = *SoftwareSigner::Generate(KeyType::kEcP256);
  EXPECT_EQ(s->key_id(), s->public_key().Thumbprint());
}

TEST(SoftwareSignerTest, GenerateRefusesRsa) {
  EXPECT_EQ(SoftwareSigner::Generate(KeyType::kRsa).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SoftwareSignerTest, WritesPkcs8With0600AndReadsItBack) {
  base::TempDir dir("tw-signer");
  auto s = *SoftwareSigner::Generate(KeyType::kEcP256);
  std::string path = dir / "key.pem";
  ASSERT_TRUE(s->WriteFile(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(base::ReadFile(path)->rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
  auto back = SoftwareSigner::ReadFile(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ((*back)->public_key(), s->public_key());
  EXPECT_EQ(s->WriteFile(path).code(), absl::StatusCode::kAlreadyExists);
}

TEST(SoftwareSignerTest, RejectsBadKeyFiles) {
  EXPECT_FALSE(SoftwareSigner::FromPem("not a key").ok());
  EXPECT_EQ(SoftwareSigner::ReadFile("/nonexistent/key.pem").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tw::crypto
