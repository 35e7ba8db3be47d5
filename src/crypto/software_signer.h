// A Signer over an in-memory EC private key (P-256 or P-384), stored as PKCS#8 PEM.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/secret_bytes.h"
#include "crypto/signer.h"

namespace tw::crypto {

class SoftwareSigner final : public Signer {
 public:
  // A fresh key. InvalidArgument for key types other than kEcP256 / kEcP384.
  static absl::StatusOr<std::unique_ptr<SoftwareSigner>> Generate(KeyType type);
  // Parses an unencrypted PKCS#8 (or SEC1) PEM private key on P-256 or P-384.
  static absl::StatusOr<std::unique_ptr<SoftwareSigner>> FromPem(absl::string_view pem);
  // Reads a PEM file written by WriteFile.
  static absl::StatusOr<std::unique_ptr<SoftwareSigner>> ReadFile(const std::string& path);

  ~SoftwareSigner() override;

  // The private key as unencrypted PKCS#8 PEM.
  SecretBytes ToPkcs8Pem() const;
  // Writes ToPkcs8Pem() to a new file with mode 0600; AlreadyExists if the path exists.
  absl::Status WriteFile(const std::string& path) const;

  // Borrows the OpenSSL key, e.g. for SSL_CTX_use_PrivateKey (which takes its own
  // reference), so that no copy of the private key is made.
  EVP_PKEY* get0_pkey() const { return pkey_; }

  const std::string& key_id() const override { return public_key_.Thumbprint(); }
  SignatureScheme algorithm() const override { return scheme_; }
  const PublicKey& public_key() const override { return public_key_; }
  absl::StatusOr<base::Bytes> Sign(base::ByteView data) const override;

 private:
  struct Pool;
  SoftwareSigner(EVP_PKEY* pkey, PublicKey public_key, SignatureScheme scheme);

  EVP_PKEY* pkey_;  // owned
  PublicKey public_key_;
  SignatureScheme scheme_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace tw::crypto
