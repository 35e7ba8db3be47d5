// Signers over keys held in a PKCS#11 token (a hardware or cloud HSM's PKCS#11 library,
// SoftHSM2), named by RFC 7512 URIs such as
//   pkcs11:token=tw;object=trustwarden-ca?module-path=/usr/lib/softhsm/libsofthsm2.so
//          &pin-source=file:/etc/tw/pin
// The PIN comes from the file `pin-source` names, else from $TRUSTWARDEN_PKCS11_PIN; a PIN
// written in the URI (pin-value) is refused. Data is hashed in the process and the digest
// signed in the token: with CKM_ECDSA for EC keys, with CKM_RSA_PKCS_PSS (SHA-256, MGF1
// SHA-256, 32-byte salt: PS256) for RSA keys. Private keys never leave the token.
// Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/bytes.h"
#include "crypto/signer.h"

namespace tw::crypto {

// The parts of a pkcs11: URI a key is found with.
struct Pkcs11Uri {
  std::string module_path;  // module-path: the PKCS#11 library to load
  std::string token;        // token: the token's label
  std::string object;       // object: the key's label (CKA_LABEL)
  base::Bytes id;           // id: the key's CKA_ID (empty: any)
  std::string pin_source;   // pin-source: a file holding the PIN (empty: the environment)

  // The URI again, with the attributes set and the characters RFC 7512 reserves escaped.
  std::string ToString() const;
};

// InvalidArgument naming the problem: not a pkcs11: URI, a malformed one, no module-path,
// no token, or a pin-value.
absl::StatusOr<Pkcs11Uri> ParsePkcs11Uri(absl::string_view uri);

class Pkcs11Signer final : public Signer {
 public:
  // Loads the module (once per process and path), finds the token by label, logs in, and
  // finds exactly one private key by label and/or id with its public key: EC P-256 or
  // P-384, or RSA of 2048 bits or more when the token signs with RSA-PSS. NotFound for a
  // missing token or key, InvalidArgument for an ambiguous or unsuitable key,
  // PermissionDenied for a refused PIN, Unavailable when the module or token fails.
  static absl::StatusOr<std::unique_ptr<Pkcs11Signer>> Open(absl::string_view uri);
  ~Pkcs11Signer() override;

  const std::string& key_id() const override;
  SignatureScheme algorithm() const override;
  const PublicKey& public_key() const override;
  // Signs in the token through a pool of sessions (one per concurrent caller). A lost
  // session or token is reopened, logged in again and the key found again (it must be the
  // same public key); Unavailable while the token cannot be reached.
  absl::StatusOr<base::Bytes> Sign(base::ByteView data) const override;

 private:
  struct Key;
  explicit Pkcs11Signer(std::unique_ptr<Key> key);
  std::unique_ptr<Key> key_;
};

// The size of the RSA keys GeneratePkcs11Key makes.
inline constexpr int kRsaModulusBits = 3072;

// Generates a key pair (EC P-256 or P-384, or RSA of kRsaModulusBits) in the token
// `token_uri` names (its module-path, token and pin-source): a token object, private,
// sensitive, never extractable and for signing only, labelled `label` on both halves with
// a fresh random CKA_ID. Returns the private key's URI. AlreadyExists when the token holds
// a key with that label.
absl::StatusOr<std::string> GeneratePkcs11Key(const Pkcs11Uri& token_uri, absl::string_view label,
                                              KeyType type);

}  // namespace tw::crypto
