#include "crypto/software_signer.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "base/file.h"
#include "gtest/gtest.h"

namespace tw::crypto {
namespace {

std::string TempDir() {
  std::string tmpl = std::filesystem::temp_directory_path() / "tw-signer-XXXXXX";
  return mkdtemp(tmpl.data());
}

TEST(SoftwareSignerTest, SignsWithTheSchemeOfItsCurve) {
  for (KeyType t : {KeyType::kEcP256, KeyType::kEcP384}) {
    auto s = SoftwareSigner::Generate(t);
    ASSERT_TRUE(s.ok());
    SignatureScheme want =
        t == KeyType::kEcP256 ? SignatureScheme::kEcdsaSha256 : SignatureScheme::kEcdsaSha384;
    EXPECT_EQ((*s)->algorithm(), want);
    base::Bytes data = base::ToBytes("to be signed");
    auto sig = (*s)->Sign(data);
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE((*s)->public_key().Verify(want, data, *sig).ok());
    EXPECT_EQ((*s)->key_id(), (*s)->public_key().Thumbprint());
  }
  EXPECT_FALSE(SoftwareSigner::Generate(KeyType::kRsa).ok());
}

TEST(SoftwareSignerTest, WritesPkcs8With0600AndReadsItBack) {
  std::string dir = TempDir();
  auto s = *SoftwareSigner::Generate(KeyType::kEcP256);
  std::string path = dir + "/key.pem";
  ASSERT_TRUE(s->WriteFile(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(base::ReadFile(path)->rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
  auto back = SoftwareSigner::ReadFile(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ((*back)->public_key(), s->public_key());
  EXPECT_EQ(s->WriteFile(path).code(), absl::StatusCode::kAlreadyExists);
  std::filesystem::remove_all(dir);
}

TEST(SoftwareSignerTest, RejectsBadKeyFiles) {
  EXPECT_FALSE(SoftwareSigner::FromPem("not a key").ok());
  EXPECT_EQ(SoftwareSigner::ReadFile("/nonexistent/key.pem").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SoftwareSignerTest, SignsConcurrently) {
  auto s = *SoftwareSigner::Generate(KeyType::kEcP256);
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        base::Bytes data = {static_cast<uint8_t>(i)};
        auto sig = s->Sign(data);
        if (sig.ok() && s->public_key().Verify(s->algorithm(), data, *sig).ok()) ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 200);
}

}  // namespace
}  // namespace tw::crypto
