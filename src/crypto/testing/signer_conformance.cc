#include "crypto/testing/signer_conformance.h"

#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>

#include <latch>
#include <thread>
#include <vector>

#include "base/bytes.h"
#include "crypto/ossl_ptr.h"

namespace tw::crypto::testing {
namespace {

// What signer.h promises for each key type (SetUp admits no others).
SignatureScheme SchemeOf(KeyType type) {
  if (type == KeyType::kRsa) return SignatureScheme::kRsaPssSha256;
  return type == KeyType::kEcP384 ? SignatureScheme::kEcdsaSha384 : SignatureScheme::kEcdsaSha256;
}

int CurveNid(KeyType type) {
  switch (type) {
    case KeyType::kEcP256:
      return NID_X9_62_prime256v1;
    case KeyType::kEcP384:
      return NID_secp384r1;
    case KeyType::kEcP521:
      return NID_secp521r1;
    case KeyType::kRsa:
      break;
  }
  return NID_undef;
}

const EVP_MD* DigestOf(SignatureScheme scheme) {
  switch (scheme) {
    case SignatureScheme::kEcdsaSha256:
      return EVP_sha256();
    case SignatureScheme::kEcdsaSha384:
      return EVP_sha384();
    case SignatureScheme::kEcdsaSha512:
      return EVP_sha512();
    case SignatureScheme::kRsaPssSha256:
      return EVP_sha256();
    default:
      return nullptr;  // not a scheme signer.h names
  }
}

// The SubjectPublicKeyInfo as OpenSSL reads it; null unless it is exactly one SPKI.
UniquePtr<EVP_PKEY> ParseSpki(base::ByteView der) {
  const uint8_t* p = der.data();
  UniquePtr<EVP_PKEY> pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!pkey || p != der.data() + der.size()) {
    ERR_clear_error();
    return nullptr;
  }
  return pkey;
}

// EVP_DigestVerify with the scheme's hash: independent of crypto::PublicKey.
bool OpenSslVerifies(base::ByteView spki, SignatureScheme scheme, base::ByteView data,
                     base::ByteView signature) {
  UniquePtr<EVP_PKEY> pkey = ParseSpki(spki);
  const EVP_MD* md = DigestOf(scheme);
  UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  // PS256: PSS padding, MGF1 with the same hash, a salt exactly as long as the digest.
  const bool pss = scheme == SignatureScheme::kRsaPssSha256;
  const bool ok = pkey && md != nullptr && ctx &&
                  EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey.get()) == 1 &&
                  (!pss || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1 &&
                            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1)) &&
                  EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), data.data(),
                                   data.size()) == 1;
  ERR_clear_error();
  return ok;
}

std::vector<base::Bytes> Messages() {
  base::Bytes large(64 * 1024);
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<uint8_t>(i * 31 + 7);
  return {{}, base::ToBytes("to be signed"), {0x00, 0x00, 0xff, 0x00}, large};
}

}  // namespace

void SignerConformanceTest::SetUp() {
  ASSERT_TRUE(key_type() == KeyType::kEcP256 || key_type() == KeyType::kEcP384 ||
              key_type() == KeyType::kRsa)
      << "signer.h names the schemes of P-256, P-384 and RSA keys only";
  signer_ = MakeSigner();
  ASSERT_NE(signer_, nullptr);
}

std::unique_ptr<Signer> SignerConformanceTest::MakeSigner() const {
  auto made = std::get<0>(GetParam()).make(key_type());
  if (!made.ok()) {
    ADD_FAILURE() << "the backend made no " << ::testing::PrintToString(key_type())
                  << " signer: " << made.status();
    return nullptr;
  }
  return *std::move(made);
}

std::string SignerParamName(const ::testing::TestParamInfo<SignerParam>& info) {
  std::string type;
  for (char c : ::testing::PrintToString(std::get<1>(info.param))) {
    if (c != '-') type += c;
  }
  return std::get<0>(info.param).name + "_" + type;
}

void PrintTo(const SignerBackend& backend, std::ostream* os) { *os << backend.name; }

TEST_P(SignerConformanceTest, AlgorithmIsTheSchemeOfItsCurve) {
  EXPECT_EQ(JoseName(signer_->algorithm()), JoseName(SchemeOf(key_type())));
}

TEST_P(SignerConformanceTest, PublicKeyIsOneSpkiOnItsCurve) {
  EXPECT_EQ(signer_->public_key().type(), key_type());
  UniquePtr<EVP_PKEY> pkey = ParseSpki(signer_->public_key_der());
  ASSERT_NE(pkey, nullptr);
  if (key_type() == KeyType::kRsa) {
    ASSERT_EQ(EVP_PKEY_is_a(pkey.get(), "RSA"), 1);
    EXPECT_GE(EVP_PKEY_get_bits(pkey.get()), 2048);
    return;
  }
  ASSERT_EQ(EVP_PKEY_is_a(pkey.get(), "EC"), 1);
  char group[64];
  size_t length = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(pkey.get(), group, sizeof(group), &length), 1);
  EXPECT_EQ(OBJ_sn2nid(group), CurveNid(key_type())) << group;
}

TEST_P(SignerConformanceTest, SignaturesVerifyWithOpenSsl) {
  for (const base::Bytes& message : Messages()) {
    auto signature = signer_->Sign(message);
    ASSERT_TRUE(signature.ok()) << signature.status();
    EXPECT_TRUE(
        OpenSslVerifies(signer_->public_key_der(), signer_->algorithm(), message, *signature))
        << message.size() << "-byte message";
  }
}

TEST_P(SignerConformanceTest, SignaturesVerifyWithItsPublicKey) {
  for (const base::Bytes& message : Messages()) {
    auto signature = signer_->Sign(message);
    ASSERT_TRUE(signature.ok()) << signature.status();
    EXPECT_TRUE(signer_->public_key().Verify(signer_->algorithm(), message, *signature).ok())
        << message.size() << "-byte message";
  }
}

// signer.h: "ECDSA signatures are DER ECDSA-Sig-Value" (RFC 3279 §2.2.3), not JOSE r||s;
// RSA signatures are as long as the modulus (RFC 8017 §8.1.1), and PSS ones salted afresh.
TEST_P(SignerConformanceTest, SignaturesAreInTheirSchemesEncoding) {
  if (key_type() == KeyType::kRsa) {
    const base::Bytes message = base::ToBytes("to be signed");
    auto first = signer_->Sign(message);
    auto second = signer_->Sign(message);
    ASSERT_TRUE(first.ok() && second.ok());
    EXPECT_EQ(first->size(), signer_->public_key().rsa_n().size());
    EXPECT_EQ(second->size(), first->size());
    EXPECT_NE(*first, *second) << "PSS signatures of one message are salted differently";
    return;
  }
  UniquePtr<EC_GROUP> group(EC_GROUP_new_by_curve_name(CurveNid(key_type())));
  ASSERT_NE(group, nullptr);
  const BIGNUM* order = EC_GROUP_get0_order(group.get());
  for (int i = 0; i < 16; ++i) {
    const base::Bytes message = {static_cast<uint8_t>(i)};
    auto signature = signer_->Sign(message);
    ASSERT_TRUE(signature.ok()) << signature.status();
    const uint8_t* p = signature->data();
    UniquePtr<ECDSA_SIG> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(signature->size())));
    ASSERT_NE(sig, nullptr) << base::HexEncode(*signature);
    EXPECT_EQ(p, signature->data() + signature->size()) << "bytes after the ECDSA-Sig-Value";
    unsigned char* der = nullptr;
    int der_length = i2d_ECDSA_SIG(sig.get(), &der);
    ASSERT_GT(der_length, 0);
    base::Bytes reencoded(der, der + der_length);
    OPENSSL_free(der);
    EXPECT_EQ(reencoded, *signature) << "not DER (BER, or non-minimal integers)";
    for (const BIGNUM* half : {ECDSA_SIG_get0_r(sig.get()), ECDSA_SIG_get0_s(sig.get())}) {
      EXPECT_FALSE(BN_is_zero(half));
      EXPECT_FALSE(BN_is_negative(half));
      EXPECT_LT(BN_cmp(half, order), 0);
    }
  }
}

TEST_P(SignerConformanceTest, SignaturesDoNotVerifyAnotherMessage) {
  const base::Bytes signed_message = base::ToBytes("pay 10 EUR to acme");
  auto signature = signer_->Sign(signed_message);
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_FALSE(OpenSslVerifies(signer_->public_key_der(), signer_->algorithm(),
                               base::ToBytes("pay 99 EUR to acme"), *signature));
  EXPECT_FALSE(OpenSslVerifies(signer_->public_key_der(), signer_->algorithm(),
                               base::ToBytes("pay 10 EUR to acme "), *signature));
}

TEST_P(SignerConformanceTest, SignaturesDoNotVerifyUnderAnotherKey) {
  std::unique_ptr<Signer> other = MakeSigner();
  ASSERT_NE(other, nullptr);
  EXPECT_NE(other->public_key_der(), signer_->public_key_der());
  const base::Bytes message = base::ToBytes("to be signed");
  auto signature = signer_->Sign(message);
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_FALSE(OpenSslVerifies(other->public_key_der(), signer_->algorithm(), message, *signature));
}

TEST_P(SignerConformanceTest, KeyIdIsStableAndDiffersBetweenKeys) {
  const std::string id = signer_->key_id();
  EXPECT_FALSE(id.empty());
  ASSERT_TRUE(signer_->Sign(base::ToBytes("to be signed")).ok());
  EXPECT_EQ(signer_->key_id(), id);
  std::unique_ptr<Signer> other = MakeSigner();
  ASSERT_NE(other, nullptr);
  EXPECT_NE(other->key_id(), id);
}

// signer.h: "Implementations are thread-safe: Sign may be called concurrently."
TEST_P(SignerConformanceTest, SignsConcurrently) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 32;
  const std::string id = signer_->key_id();
  const base::Bytes spki = signer_->public_key_der();
  struct Signed {
    base::Bytes message;
    absl::StatusOr<base::Bytes> signature;
    bool same_key;  // key_id() and public_key_der() unchanged while signing
  };
  std::vector<std::vector<Signed>> results(kThreads);
  std::latch start(kThreads);  // all threads sign from the same moment on
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        base::Bytes message = {static_cast<uint8_t>(t), static_cast<uint8_t>(i)};
        auto signature = signer_->Sign(message);
        bool same_key = signer_->key_id() == id && signer_->public_key_der() == spki;
        results[t].push_back({std::move(message), std::move(signature), same_key});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& thread_results : results) {
    ASSERT_EQ(thread_results.size(), static_cast<size_t>(kPerThread));
    for (const Signed& s : thread_results) {
      ASSERT_TRUE(s.signature.ok()) << s.signature.status();
      EXPECT_TRUE(OpenSslVerifies(spki, signer_->algorithm(), s.message, *s.signature));
      EXPECT_TRUE(s.same_key);
    }
  }
}

}  // namespace tw::crypto::testing

namespace tw::crypto {
void PrintTo(KeyType type, std::ostream* os) {
  *os << (type == KeyType::kRsa ? "RSA" : CurveName(type));
}
}  // namespace tw::crypto
