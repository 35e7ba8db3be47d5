// The PKCS#11 signer against SoftHSM2: the signer conformance suite, key URIs, PINs, and
// keys that cannot leave the token.
#include "crypto/pkcs11_signer.h"

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>

#include "base/file.h"
#include "crypto/signer_factory.h"
#include "crypto/testing/signer_conformance.h"
#include "crypto/testing/softhsm.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::crypto {
namespace {

using ::testing::HasSubstr;

// One token for the whole binary: SoftHSM2 reads its configuration once per process.
const testing::SoftHsmToken& Token() {
  static auto* token = [] {
    auto t = testing::NewSoftHsmToken();
    if (!t.ok()) {
      ADD_FAILURE() << t.status();
      std::abort();
    }
    return new testing::SoftHsmToken(*std::move(t));
  }();
  return *token;
}

std::string NewLabel() {
  static int n = 0;
  return "key-" + std::to_string(++n);
}

using testing::SignerConformanceTest;

INSTANTIATE_TEST_SUITE_P(
    SoftHsm, SignerConformanceTest,
    ::testing::Combine(::testing::Values(testing::SignerBackend{
                           "softhsm",
                           [](KeyType type) -> absl::StatusOr<std::unique_ptr<Signer>> {
                             auto uri = GeneratePkcs11Key(Token().uri, NewLabel(), type);
                             if (!uri.ok()) return uri.status();
                             auto signer = Pkcs11Signer::Open(*uri);
                             if (!signer.ok()) return signer.status();
                             return std::unique_ptr<Signer>(*std::move(signer));
                           }}),
                       ::testing::Values(KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa)),
    testing::SignerParamName);

TEST(Pkcs11UriTest, RoundTripsAndEscapes) {
  auto uri = ParsePkcs11Uri(
      "pkcs11:token=my%20token;object=trustwarden-ca;id=%01%02"
      "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/tw/pin");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->token, "my token");
  EXPECT_EQ(uri->object, "trustwarden-ca");
  EXPECT_EQ(uri->id, (base::Bytes{1, 2}));
  EXPECT_EQ(uri->module_path, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(uri->pin_source, "file:/etc/tw/pin");
  auto again = ParsePkcs11Uri(uri->ToString());
  ASSERT_TRUE(again.ok()) << uri->ToString() << ": " << again.status();
  EXPECT_EQ(again->ToString(), uri->ToString());
  EXPECT_EQ(again->token, "my token");
  EXPECT_EQ(again->id, uri->id);
}

TEST(Pkcs11UriTest, RefusesAPinInTheUriAndIncompleteUris) {
  auto with_pin = ParsePkcs11Uri("pkcs11:token=t;object=k?module-path=/m.so&pin-value=1234");
  EXPECT_EQ(with_pin.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(with_pin.status().message(), HasSubstr("pin-value is refused"));
  EXPECT_THAT(with_pin.status().message(), ::testing::Not(HasSubstr("1234")));
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:token=t;object=k").status().message(),
              HasSubstr("module-path"));
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:object=k?module-path=/m.so").status().message(),
              HasSubstr("token"));
  EXPECT_FALSE(ParsePkcs11Uri("pkcs11:token=%zz?module-path=/m.so").ok());
  EXPECT_FALSE(ParsePkcs11Uri("file:/etc/key.pem").ok());
  EXPECT_THAT(Pkcs11Signer::Open(Token().uri.ToString()).status().message(),
              HasSubstr("names no key"));
}

TEST(Pkcs11SignerTest, OpenSignerTakesPkcs11Uris) {
  auto uri = GeneratePkcs11Key(Token().uri, NewLabel(), KeyType::kEcP256);
  ASSERT_TRUE(uri.ok()) << uri.status();
  auto signer = OpenSigner(*uri);
  ASSERT_TRUE(signer.ok()) << signer.status();
  auto signature = (*signer)->Sign(base::ToBytes("x"));
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_TRUE(
      (*signer)->public_key().Verify((*signer)->algorithm(), base::ToBytes("x"), *signature).ok());
}

TEST(Pkcs11SignerTest, TheSameLabelIsNotGeneratedTwice) {
  const std::string label = NewLabel();
  ASSERT_TRUE(GeneratePkcs11Key(Token().uri, label, KeyType::kEcP256).ok());
  EXPECT_EQ(GeneratePkcs11Key(Token().uri, label, KeyType::kEcP256).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(Pkcs11SignerTest, MissingTokensAndKeysAreNotFound) {
  Pkcs11Uri uri = Token().uri;
  uri.object = "no-such-key";
  EXPECT_EQ(Pkcs11Signer::Open(uri.ToString()).status().code(), absl::StatusCode::kNotFound);
  uri.token = "no-such-token";
  EXPECT_EQ(Pkcs11Signer::Open(uri.ToString()).status().code(), absl::StatusCode::kNotFound);
  uri.module_path = "/nonexistent/module.so";
  EXPECT_EQ(Pkcs11Signer::Open(uri.ToString()).status().code(), absl::StatusCode::kUnavailable);
}

TEST(Pkcs11SignerTest, AWrongPinIsRefusedAndNeverShown) {
  // A token of its own, so that no session of another test is logged in to it.
  auto token = testing::NewSoftHsmToken();
  ASSERT_TRUE(token.ok()) << token.status();
  auto key = GeneratePkcs11Key(token->uri, "k", KeyType::kEcP256);
  ASSERT_TRUE(key.ok()) << key.status();
  Pkcs11Uri uri = *ParsePkcs11Uri(*key);
  const std::string wrong = token->tokendir + "/../wrong.pin";
  ASSERT_TRUE(base::WriteFile(wrong, "0000wrong0000\n", 0600).ok());
  uri.pin_source = "file:" + wrong;
  auto refused = Pkcs11Signer::Open(uri.ToString());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("refused the PIN"));
  EXPECT_THAT(refused.status().message(), ::testing::Not(HasSubstr("0000wrong0000")));
  // No PIN anywhere: the error says where one goes.
  uri.pin_source.clear();
  ::unsetenv("TRUSTWARDEN_PKCS11_PIN");
  EXPECT_THAT(Pkcs11Signer::Open(uri.ToString()).status().message(),
              HasSubstr("TRUSTWARDEN_PKCS11_PIN"));
  // The right PIN from the environment.
  ::setenv("TRUSTWARDEN_PKCS11_PIN", token->pin.c_str(), 1);
  EXPECT_TRUE(Pkcs11Signer::Open(uri.ToString()).ok());
  ::unsetenv("TRUSTWARDEN_PKCS11_PIN");
}

// Reads attribute `type` of the private key labelled `label` through PKCS#11 directly.
CK_RV ReadPrivateAttribute(const std::string& label, CK_ATTRIBUTE_TYPE type, base::Bytes* out) {
  CK_FUNCTION_LIST* f = p11_kit_module_load(Token().uri.module_path.c_str(), 0);
  if (f == nullptr || p11_kit_module_initialize(f) != CKR_OK) return CKR_GENERAL_ERROR;
  CK_ULONG count = 16;
  CK_SLOT_ID slots[16];
  CK_RV rv = f->C_GetSlotList(CK_TRUE, slots, &count);
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  for (CK_ULONG i = 0; rv == CKR_OK && i < count; ++i) {
    CK_TOKEN_INFO info;
    if (f->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
    std::string name(reinterpret_cast<char*>(info.label), 32);
    if (name.substr(0, Token().uri.token.size()) != Token().uri.token) continue;
    rv = f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, nullptr, nullptr, &session);
  }
  if (rv != CKR_OK || session == CK_INVALID_HANDLE)
    return rv == CKR_OK ? CKR_TOKEN_NOT_PRESENT : rv;
  std::string pin = Token().pin;
  f->C_Login(session, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()), pin.size());
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE match[] = {{CKA_CLASS, &cls, sizeof(cls)},
                          {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
  CK_OBJECT_HANDLE key;
  CK_ULONG found = 0;
  f->C_FindObjectsInit(session, match, 2);
  f->C_FindObjects(session, &key, 1, &found);
  f->C_FindObjectsFinal(session);
  if (found != 1) return CKR_OBJECT_HANDLE_INVALID;
  uint8_t buffer[512];
  CK_ATTRIBUTE a{type, buffer, sizeof(buffer)};
  rv = f->C_GetAttributeValue(session, key, &a, 1);
  if (rv == CKR_OK) out->assign(buffer, buffer + a.ulValueLen);
  f->C_CloseSession(session);
  p11_kit_module_finalize(f);
  p11_kit_module_release(f);
  return rv;
}

TEST(Pkcs11SignerTest, AGeneratedKeyCannotBeReadOut) {
  const std::string label = NewLabel();
  ASSERT_TRUE(GeneratePkcs11Key(Token().uri, label, KeyType::kEcP256).ok());
  base::Bytes value;
  EXPECT_EQ(ReadPrivateAttribute(label, CKA_VALUE, &value), CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_TRUE(value.empty());
  base::Bytes flag;
  ASSERT_EQ(ReadPrivateAttribute(label, CKA_EXTRACTABLE, &flag), CKR_OK);
  EXPECT_EQ(flag, base::Bytes{CK_FALSE});
  ASSERT_EQ(ReadPrivateAttribute(label, CKA_SENSITIVE, &flag), CKR_OK);
  EXPECT_EQ(flag, base::Bytes{CK_TRUE});
  ASSERT_EQ(ReadPrivateAttribute(label, CKA_NEVER_EXTRACTABLE, &flag), CKR_OK);
  EXPECT_EQ(flag, base::Bytes{CK_TRUE});
}

}  // namespace
}  // namespace tw::crypto
