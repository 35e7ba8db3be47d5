// An offline certificate authority kept in a directory (API.md `ca init`): ca.pem,
// bundle.json and bundle.pem, and ca.key.pem and jwt.key.pem (0600) unless the keys live
// in a token. Thread-safe once loaded.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "core/bundle.h"
#include "core/spiffe_id.h"
#include "core/x509_issuer.h"
#include "crypto/public_key.h"
#include "crypto/software_signer.h"

namespace tw::ca {

struct CaInitOptions {
  core::TrustDomain trust_domain;
  crypto::KeyType key_type = crypto::KeyType::kEcP256;
  absl::Duration ttl = absl::Hours(24 * 365);
};

// The CA's two signing keys, wherever they live (crypto/signer_factory.h).
struct CaSigners {
  std::shared_ptr<const crypto::Signer> ca;   // signs X.509-SVIDs
  std::shared_ptr<const crypto::Signer> jwt;  // signs JWT-SVIDs
  struct Uris {
    std::string ca, jwt;
  };
  // The key files Init writes in `dir`.
  static Uris FilesIn(const std::string& dir);
  // Opens both keys (crypto::OpenSigner's errors).
  static absl::StatusOr<CaSigners> Open(const Uris& uris);
};

// Leaf certificates are back-dated this much to absorb clock skew between peers.
inline constexpr absl::Duration kBackdate = absl::Seconds(30);

// An issuer over an intermediate CA of an upstream root: `chain` is its certificate, over
// `ca`'s key, then the certificates up to and including the self-signed root. InvalidArgument
// when the chain is shorter, is not for the key, does not end with a root, or a leaf issued
// under it does not verify against that root alone.
absl::StatusOr<core::X509Issuer> UpstreamIssuer(std::shared_ptr<const crypto::Signer> ca,
                                                const std::vector<base::Bytes>& chain,
                                                const base::Clock& clock);

class CaDirectory {
 public:
  // Creates a self-signed root CA and a JWT signing key in `dir` (created 0700).
  // AlreadyExists when `dir` already holds a CA; nothing is written on failure.
  static absl::Status Init(const std::string& dir, const CaInitOptions& options,
                           const base::Clock& clock);
  // Creates a self-signed root CA in `dir` over keys that live elsewhere (a PKCS#11
  // token): ca.pem and the bundles, no key file. AlreadyExists when `dir` holds a CA.
  static absl::Status InitWithSigners(const std::string& dir, const CaInitOptions& options,
                                      const CaSigners& signers, const base::Clock& clock);
  // Creates a CA in `dir` that is an intermediate of an upstream root (upstream mode):
  // `chain_pem` is its certificate, over `signers.ca`'s key (from SignIntermediate, run where
  // the root lives), then the chain up to and including the self-signed root. The bundle
  // publishes that root and `signers.jwt`; issued SVIDs carry the chain below the root.
  // InvalidArgument when the chain is not for the CA key, does not end with a root, or a
  // leaf issued under it does not verify; AlreadyExists when `dir` holds a CA.
  static absl::Status InitUpstream(const std::string& dir, absl::string_view chain_pem,
                                   const CaSigners& signers, const base::Clock& clock);
  // An intermediate CA certificate for the key of `csr` (PEM PKCS#10; its self-signature
  // proves the requester holds the key), signed by the CA in `dir` with `key`, in its trust
  // domain, valid for `ttl` and never past that CA, with pathLenConstraint 0 (it issues
  // SVIDs only). Returns it followed by the CA's chain up to the root, as PEM: what
  // InitUpstream takes. The CA's JWT key plays no part.
  static absl::StatusOr<std::string> SignIntermediate(const std::string& dir,
                                                      std::shared_ptr<const crypto::Signer> key,
                                                      absl::string_view csr, absl::Duration ttl,
                                                      const base::Clock& clock);
  // Creates an intermediate CA in `dir`, signed by the CA in `parent_dir` (same trust
  // domain), with its own JWT key. Its bundle is the parent's plus that JWT key, with the
  // next spiffe_sequence; its ca.pem is the intermediate followed by the parent's chain.
  static absl::Status InitIntermediate(const std::string& dir, const std::string& parent_dir,
                                       crypto::KeyType key_type, absl::Duration ttl,
                                       const base::Clock& clock);
  // Loads the certificates and bundle of a directory written by Init, signing with
  // `signers`. NotFound / InvalidArgument naming the bad file; InvalidArgument when the CA
  // key does not match the CA certificate, FailedPrecondition when the bundle does not
  // publish the JWT key.
  static absl::StatusOr<CaDirectory> Load(const std::string& dir, CaSigners signers);
  // Load with the directory's own key files.
  static absl::StatusOr<CaDirectory> Open(const std::string& dir);

  const core::X509Issuer& issuer() const { return *issuer_; }
  const crypto::Signer& jwt_signer() const { return *jwt_signer_; }
  const core::Bundle& bundle() const { return *bundle_; }

 private:
  CaDirectory() = default;
  std::shared_ptr<const core::X509Issuer> issuer_;
  std::shared_ptr<const crypto::Signer> jwt_signer_;
  std::shared_ptr<const core::Bundle> bundle_;
};

}  // namespace tw::ca
