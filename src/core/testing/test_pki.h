// Test-only PKI: keys of every JOSE algorithm and certificates crafted with OpenSSL's
// X509 API, including the malformed ones a verifier must reject. Not thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/bytes.h"
#include "crypto/ossl_ptr.h"
#include "crypto/public_key.h"
#include "crypto/signature_scheme.h"

namespace tw::core::testing {

// A private key of any type the verifiers accept (EC P-256/384/521, RSA 2048, Ed25519).
class TestKey {
 public:
  static TestKey Ec(const char* curve);  // "P-256", "P-384", "P-521"
  static TestKey Rsa();
  static TestKey Ed25519();

  EVP_PKEY* get() const { return pkey_.get(); }
  crypto::PublicKey public_key() const;
  // A signature over `data`: DER for ECDSA, raw for RSA/PSS.
  base::Bytes Sign(crypto::SignatureScheme scheme, base::ByteView data) const;
  // The public key as SPKI PEM, the private key as PKCS#8 PEM.
  std::string PublicPem() const;
  std::string PrivatePem() const;

 private:
  std::shared_ptr<EVP_PKEY> pkey_;  // shared: test keys are copied freely
};

struct CertSpec {
  std::vector<std::string> uris;
  std::vector<std::string> dns;
  bool basic_constraints = true;
  bool ca = false;
  std::optional<int> path_len;
  std::optional<std::string> key_usage = "critical,digitalSignature";  // nullopt: omit
  std::optional<std::string> extended_key_usage = "serverAuth,clientAuth";
  absl::Time not_before = absl::Now() - absl::Hours(1);
  absl::Time not_after = absl::Now() + absl::Hours(1);
  std::string common_name = "test";  // empty: empty subject
  bool san_critical = false;
  bool unknown_critical_extension = false;
  std::optional<std::string> name_constraints;  // e.g. "critical,permitted;URI:.example.org"
  long serial = 0;                              // 0: a fresh positive serial
  std::optional<base::Bytes> raw_san;           // subjectAltName extnValue DER, verbatim
  // Further non-critical extensions: dotted OID and extnValue DER, verbatim.
  std::vector<std::pair<std::string, base::Bytes>> extensions;
};

struct TestCert {
  base::Bytes der;
  TestKey key;
  std::string pem() const;
};

// Builds a certificate for `spec` with a fresh P-256 key, signed by `issuer` (or
// self-signed when null).
TestCert MakeCert(const CertSpec& spec, const TestCert* issuer = nullptr);
// The same with a given subject key (e.g. a re-issued CA keeping its key).
TestCert MakeCertWithKey(const CertSpec& spec, TestKey key, const TestCert* issuer = nullptr);
// A root CA with URI SAN spiffe://<td>.
TestCert MakeRootCa(const std::string& trust_domain,
                    absl::Time not_before = absl::Now() - absl::Hours(2),
                    absl::Time not_after = absl::Now() + absl::Hours(24));
// A leaf SPIFFE profile for `spiffe_id` (used as a base to break one rule at a time).
CertSpec LeafSpec(const std::string& spiffe_id);
// An intermediate CA profile for a trust domain.
CertSpec IntermediateSpec(const std::string& trust_domain);

}  // namespace tw::core::testing
