#include "crypto/signer_factory.h"

#include <stdlib.h>

#include <filesystem>

#include "base/file.h"
#include "base/testing/temp_dir.h"
#include "crypto/software_signer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::crypto {
namespace {

using ::testing::HasSubstr;

class SignerFactoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = *SoftwareSigner::Generate(KeyType::kEcP384);
    ASSERT_TRUE(key_->WriteFile(dir_ + "/key.pem").ok());
  }
  base::TempDir tmp_{"tw-signer"};
  const std::string dir_ = tmp_.path();
  std::unique_ptr<SoftwareSigner> key_;
};

TEST_F(SignerFactoryTest, OpensAFileKeyByUriOrPath) {
  for (const std::string& uri : {FileKeyUri(dir_ + "/key.pem"), dir_ + "/key.pem"}) {
    auto signer = OpenSigner(uri);
    ASSERT_TRUE(signer.ok()) << uri << ": " << signer.status();
    EXPECT_EQ((*signer)->public_key(), key_->public_key()) << uri;
    EXPECT_EQ((*signer)->algorithm(), SignatureScheme::kEcdsaSha384) << uri;
  }
}

TEST_F(SignerFactoryTest, RefusesASchemeNoBackendHandles) {
  auto signer = OpenSigner("vault:secret/ca");
  EXPECT_EQ(signer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(signer.status().message()), HasSubstr("no signer backend"));
  EXPECT_EQ(OpenSigner("file:").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SignerFactoryTest, ReportsAMissingOrBadFile) {
  EXPECT_EQ(OpenSigner(FileKeyUri(dir_ + "/none.pem")).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(base::WriteFile(dir_ + "/bad.pem", "not a key").ok());
  EXPECT_EQ(OpenSigner(FileKeyUri(dir_ + "/bad.pem")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tw::crypto
