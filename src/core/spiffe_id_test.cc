#include "core/spiffe_id.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::core {
namespace {

using ::testing::HasSubstr;

struct Vector {
  bool valid;
  std::string input;
  std::string error;
};

std::vector<Vector> LoadVectors() {
  std::ifstream in(TW_TESTDATA_DIR "/spiffe_id_vectors.tsv");
  std::vector<Vector> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    EXPECT_EQ(f.size(), 3u) << line;
    if (f.size() != 3) continue;
    out.push_back({f[0] == "valid", f[1], f[2]});
  }
  return out;
}

class SpiffeIdVectorTest : public ::testing::TestWithParam<Vector> {};

TEST_P(SpiffeIdVectorTest, ParsesPerSpiffeIdSection2) {
  const Vector& v = GetParam();
  auto id = SpiffeId::FromString(v.input);
  if (v.valid) {
    ASSERT_TRUE(id.ok()) << v.input << ": " << id.status();
    EXPECT_EQ(id->str(), v.input);
  } else {
    ASSERT_FALSE(id.ok()) << v.input;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(id.status().message()), HasSubstr(v.error)) << v.input;
  }
}

INSTANTIATE_TEST_SUITE_P(Vectors, SpiffeIdVectorTest, ::testing::ValuesIn(LoadVectors()));

TEST(SpiffeIdVectorFileTest, HasEveryChecklistCase) { EXPECT_GE(LoadVectors().size(), 43u); }

std::string IdOfLength(size_t n) {
  std::string id = "spiffe://td/";
  while (id.size() < n) id += (n - id.size() > 1 && (id.size() % 50 == 0)) ? '/' : 'a';
  if (id.back() == '/') id.back() = 'b';
  return id;
}

TEST(SpiffeIdTest, Accepts2048Bytes) {
  std::string id = IdOfLength(2048);
  ASSERT_EQ(id.size(), 2048u);
  EXPECT_TRUE(SpiffeId::FromString(id).ok());
}

TEST(SpiffeIdTest, Rejects2049Bytes) {
  auto id = SpiffeId::FromString(IdOfLength(2049));
  ASSERT_FALSE(id.ok());
  EXPECT_THAT(std::string(id.status().message()), HasSubstr("2048"));
}

TEST(SpiffeIdTest, TrustDomainOf255BytesIsValidAnd256IsNot) {
  EXPECT_TRUE(SpiffeId::FromString("spiffe://" + std::string(255, 'a') + "/x").ok());
  auto id = SpiffeId::FromString("spiffe://" + std::string(256, 'a') + "/x");
  ASSERT_FALSE(id.ok());
  EXPECT_THAT(std::string(id.status().message()), HasSubstr("255"));
}

TEST(SpiffeIdTest, RejectsEveryByteOutsideTheCharsets) {
  for (int c = 0; c < 256; ++c) {
    char ch = static_cast<char>(c);
    bool td_ok =
        (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
    bool path_ok = td_ok || (ch >= 'A' && ch <= 'Z');
    if (ch == '/') continue;
    EXPECT_EQ(SpiffeId::FromString(std::string("spiffe://t") + ch + "d/x").ok(), td_ok) << c;
    EXPECT_EQ(SpiffeId::FromString(std::string("spiffe://td/x") + ch).ok(), path_ok) << c;
  }
}

TEST(SpiffeIdTest, ExposesParts) {
  auto id = SpiffeId::FromString("spiffe://example.org/acme/fin/pay/inst-1");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->trust_domain_name(), "example.org");
  EXPECT_EQ(id->trust_domain().IdString(), "spiffe://example.org");
  EXPECT_EQ(id->path(), "/acme/fin/pay/inst-1");
  EXPECT_EQ(id->segments().size(), 4u);
  EXPECT_FALSE(id->is_trust_domain_id());
  EXPECT_TRUE(SpiffeId::FromString("spiffe://example.org")->is_trust_domain_id());
}

TEST(SpiffeIdTest, FromSegmentsValidatesEachSegment) {
  auto td = TrustDomain::FromName("example.org");
  ASSERT_TRUE(td.ok());
  auto id = SpiffeId::FromSegments(*td, {"a", "b"});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->str(), "spiffe://example.org/a/b");
  EXPECT_FALSE(SpiffeId::FromSegments(*td, {"a", ".."}).ok());
  EXPECT_FALSE(SpiffeId::FromSegments(*td, {"a/b"}).ok());
  EXPECT_FALSE(SpiffeId::FromSegments(*td, {""}).ok());
}

TEST(TrustDomainTest, ParsesBareNamesAndIds) {
  EXPECT_EQ(TrustDomain::FromName("example.org")->name(), "example.org");
  EXPECT_EQ(TrustDomain::FromNameOrId("spiffe://example.org")->name(), "example.org");
  EXPECT_EQ(TrustDomain::FromNameOrId("spiffe://example.org/a/b")->name(), "example.org");
  EXPECT_EQ(TrustDomain::FromNameOrId("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(TrustDomain::FromName("").status().message()), HasSubstr("missing"));
  EXPECT_FALSE(TrustDomain::FromName("Example.org").ok());
  EXPECT_FALSE(TrustDomain::FromName("example.org:80").ok());
  EXPECT_FALSE(TrustDomain::FromName("spiffe://example.org").ok());
}

TEST(SpiffeIdTest, EqualityIsByteForByte) {
  EXPECT_EQ(*SpiffeId::FromString("spiffe://td/a"), *SpiffeId::FromString("spiffe://td/a"));
  EXPECT_FALSE(*SpiffeId::FromString("spiffe://td/a") == *SpiffeId::FromString("spiffe://td/A"));
}

}  // namespace
}  // namespace tw::core
