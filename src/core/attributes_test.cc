#include "core/attributes.h"

#include <openssl/objects.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "crypto/der.h"
#include "gtest/gtest.h"

namespace tw::core {
namespace {

SvidAttributes Full() {
  SvidAttributes a;
  a.scopes = {*Scope::Parse("read:transactions"), *Scope::Parse("write:ledger.*")};
  a.trust_level = TrustLevel::kHigh;
  a.policy_version = 7;
  a.parent = *SpiffeId::FromString("spiffe://td/acme/fin/orchestrator/inst-aaaaaaaaaaaaaaaa");
  a.principal = "ops-bot";
  return a;
}

TEST(AttributesTest, OidMatchesTheDesign) {
  ASN1_OBJECT* obj = OBJ_txt2obj(kAttributesOidText, 1);
  ASSERT_NE(obj, nullptr);
  base::ByteView want(OBJ_get0_data(obj), OBJ_length(obj));
  EXPECT_EQ(base::Bytes(want.begin(), want.end()),
            base::Bytes(std::begin(kAttributesOid), std::end(kAttributesOid)));
  ASN1_OBJECT_free(obj);
  obj = OBJ_txt2obj(kLegacyAttributesOidText, 1);
  ASSERT_NE(obj, nullptr);
  want = base::ByteView(OBJ_get0_data(obj), OBJ_length(obj));
  EXPECT_EQ(base::Bytes(want.begin(), want.end()),
            base::Bytes(std::begin(kLegacyAttributesOid), std::end(kLegacyAttributesOid)));
  ASN1_OBJECT_free(obj);
}

// Go's crypto/x509 and pyca/cryptography before 39 refuse a certificate with an OID arc of
// 2^31 or more.
TEST(AttributesTest, EveryArcOfTheOidIsBelowTwoToThe31) {
  for (absl::string_view arc : absl::StrSplit(kAttributesOidText, '.')) {
    uint64_t n;
    ASSERT_TRUE(absl::SimpleAtoi(arc, &n)) << arc;
    EXPECT_LT(n, uint64_t{1} << 31) << arc;
  }
}

TEST(AttributesTest, RoundTripsFullAndMinimal) {
  SvidAttributes full = Full();
  EXPECT_EQ(*DecodeAttributes(EncodeAttributes(full)), full);
  SvidAttributes minimal;
  EXPECT_EQ(*DecodeAttributes(EncodeAttributes(minimal)), minimal);
}

TEST(AttributesTest, RejectsTruncationTrailingDataAndBadFields) {
  base::Bytes der = EncodeAttributes(Full());
  for (size_t n = 0; n < der.size(); ++n) {
    EXPECT_FALSE(DecodeAttributes(base::ByteView(der.data(), n)).ok()) << n;
  }
  base::Bytes trailing = der;
  trailing.push_back(0);
  EXPECT_FALSE(DecodeAttributes(trailing).ok());

  base::Bytes bad_level;
  crypto::der::Writer w(&bad_level);
  size_t seq = w.Open(crypto::der::kSequence);
  w.AddUint(1);
  w.Close(w.Open(crypto::der::kSequence));
  w.AddUint(9, crypto::der::kEnumerated);
  w.AddUint(0);
  w.Close(seq);
  EXPECT_FALSE(DecodeAttributes(bad_level).ok());
}

}  // namespace
}  // namespace tw::core
