#include "crypto/software_signer.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "crypto/openssl_error.h"
#include "crypto/ossl_ptr.h"

namespace tw::crypto {

// Initialised signing contexts, reused across calls (EVP_PKEY_sign_init costs ~1 µs).
struct SoftwareSigner::Pool {
  absl::Mutex mu;
  std::vector<UniquePtr<EVP_PKEY_CTX>> free;
};

SoftwareSigner::SoftwareSigner(EVP_PKEY* pkey, PublicKey public_key, SignatureScheme scheme)
    : pkey_(pkey), public_key_(std::move(public_key)), scheme_(scheme), pool_(new Pool) {}

SoftwareSigner::~SoftwareSigner() { EVP_PKEY_free(pkey_); }

absl::StatusOr<std::unique_ptr<SoftwareSigner>> SoftwareSigner::Generate(KeyType type) {
  const char* curve = type == KeyType::kEcP256   ? "P-256"
                      : type == KeyType::kEcP384 ? "P-384"
                                                 : nullptr;
  if (curve == nullptr) return absl::InvalidArgumentError("signing keys are EC P-256 or P-384");
  UniquePtr<EVP_PKEY> pkey(EVP_EC_gen(curve));
  if (!pkey) return OpenSslError(absl::StatusCode::kInternal, "generate EC key");
  auto public_key = PublicKey::FromEvpPkey(pkey.get());
  if (!public_key.ok()) return public_key.status();
  SignatureScheme scheme =
      type == KeyType::kEcP256 ? SignatureScheme::kEcdsaSha256 : SignatureScheme::kEcdsaSha384;
  return std::unique_ptr<SoftwareSigner>(
      new SoftwareSigner(pkey.release(), *std::move(public_key), scheme));
}

absl::StatusOr<std::unique_ptr<SoftwareSigner>> SoftwareSigner::FromPem(absl::string_view pem) {
  UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  UniquePtr<EVP_PKEY> pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) {
    ERR_clear_error();
    return absl::InvalidArgumentError("private key: not an unencrypted PEM private key");
  }
  auto public_key = PublicKey::FromEvpPkey(pkey.get());
  if (!public_key.ok()) return public_key.status();
  SignatureScheme scheme;
  switch (public_key->type()) {
    case KeyType::kEcP256:
      scheme = SignatureScheme::kEcdsaSha256;
      break;
    case KeyType::kEcP384:
      scheme = SignatureScheme::kEcdsaSha384;
      break;
    default:
      return absl::InvalidArgumentError("private key: signing keys are EC P-256 or P-384");
  }
  return std::unique_ptr<SoftwareSigner>(
      new SoftwareSigner(pkey.release(), *std::move(public_key), scheme));
}

absl::StatusOr<std::unique_ptr<SoftwareSigner>> SoftwareSigner::ReadFile(const std::string& path) {
  auto pem = base::ReadFile(path, 1 << 20);
  if (!pem.ok()) return pem.status();
  SecretBytes secret(*std::move(pem));
  return FromPem(secret.view());
}

SecretBytes SoftwareSigner::ToPkcs8Pem() const {
  UniquePtr<BIO> bio(BIO_new(BIO_s_secmem()));
  TW_CHECK(bio && PEM_write_bio_PKCS8PrivateKey(bio.get(), pkey_, nullptr, nullptr, 0, nullptr,
                                                nullptr) == 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return SecretBytes(std::string(data, static_cast<size_t>(len)));
}

absl::Status SoftwareSigner::WriteFile(const std::string& path) const {
  return base::WriteFile(path, ToPkcs8Pem().view(), 0600, /*exclusive=*/true);
}

absl::StatusOr<base::Bytes> SoftwareSigner::Sign(base::ByteView data) const {
  base::Bytes digest = SchemeDigest(scheme_, data);
  UniquePtr<EVP_PKEY_CTX> ctx;
  {
    absl::MutexLock lock(&pool_->mu);
    if (!pool_->free.empty()) {
      ctx = std::move(pool_->free.back());
      pool_->free.pop_back();
    }
  }
  if (!ctx) {
    ctx.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1) {
      return OpenSslError(absl::StatusCode::kInternal, "sign context");
    }
  }
  base::Bytes sig(static_cast<size_t>(EVP_PKEY_get_size(pkey_)));
  size_t len = sig.size();
  if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "sign");
  }
  sig.resize(len);
  absl::MutexLock lock(&pool_->mu);
  if (pool_->free.size() < 64) pool_->free.push_back(std::move(ctx));
  return sig;
}

}  // namespace tw::crypto
