// A parsed X.509 v3 certificate (RFC 5280 §4.1): the fields SPIFFE verification needs,
// read in place from strict DER. Owns its DER; move-only; thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/bytes.h"
#include "crypto/signature_scheme.h"

namespace tw::core {

// KeyUsage bits (RFC 5280 §4.2.1.3), as named-bit positions.
enum KeyUsageBit : uint16_t {
  kDigitalSignature = 1 << 0,
  kNonRepudiation = 1 << 1,
  kKeyEncipherment = 1 << 2,
  kDataEncipherment = 1 << 3,
  kKeyAgreement = 1 << 4,
  kKeyCertSign = 1 << 5,
  kCrlSign = 1 << 6,
};

// One GeneralSubtree of a nameConstraints extension (RFC 5280 §4.2.1.10) that this
// library enforces: a dNSName or a URI host/domain.
struct NameSubtree {
  enum class Form { kDns, kUri };
  Form form;
  absl::string_view base;  // e.g. "example.org" or ".example.org"
};

class Certificate {
 public:
  // Parses DER. Checks structure only (v3, known signature algorithm, well-formed
  // extensions it understands, no duplicate extensions); policy checks belong to the
  // verifier. InvalidArgument when malformed.
  static absl::StatusOr<Certificate> Parse(base::Bytes der);
  // Parses every certificate of a PEM text, or a concatenation of DER certificates.
  static absl::StatusOr<std::vector<Certificate>> ParseChain(absl::string_view pem_or_der);

  Certificate(Certificate&&) = default;
  Certificate& operator=(Certificate&&) = default;

  const base::Bytes& der() const { return der_; }
  base::ByteView tbs() const { return tbs_; }
  crypto::SignatureScheme signature_scheme() const { return scheme_; }
  base::ByteView signature() const { return signature_; }
  base::ByteView serial() const { return serial_; }  // INTEGER contents
  base::ByteView issuer() const { return issuer_; }  // Name, whole DER element
  base::ByteView subject() const { return subject_; }
  base::ByteView spki() const { return spki_; }  // SubjectPublicKeyInfo element
  absl::Time not_before() const { return not_before_; }
  absl::Time not_after() const { return not_after_; }

  bool has_basic_constraints() const { return has_basic_constraints_; }
  bool is_ca() const { return is_ca_; }
  std::optional<int64_t> path_len() const { return path_len_; }
  bool has_key_usage() const { return has_key_usage_; }
  uint16_t key_usage() const { return key_usage_; }
  const std::vector<absl::string_view>& uri_sans() const { return uris_; }
  const std::vector<absl::string_view>& dns_sans() const { return dns_; }
  bool san_critical() const { return san_critical_; }
  bool has_ext_key_usage() const { return has_eku_; }
  bool eku_server_auth() const { return eku_server_; }
  bool eku_client_auth() const { return eku_client_; }
  base::ByteView subject_key_id() const { return ski_; }
  base::ByteView authority_key_id() const { return aki_; }
  // nameConstraints of a CA, when present (only dNSName and URI subtrees; a constraint on
  // any other name form makes the extension unhandled, see below).
  bool has_name_constraints() const { return has_name_constraints_; }
  const std::vector<NameSubtree>& permitted_subtrees() const { return permitted_; }
  const std::vector<NameSubtree>& excluded_subtrees() const { return excluded_; }
  // The TrustWarden attributes extension value, if present.
  std::optional<base::ByteView> attributes() const { return attributes_; }
  // The first critical extension this parser does not implement, as a dotted OID.
  const std::string& unhandled_critical_extension() const { return unhandled_critical_; }

  std::string SerialHex() const;
  bool SelfIssued() const;

 private:
  Certificate() = default;
  absl::Status ParseExtension(base::ByteView oid, bool critical, base::ByteView value);
  absl::Status ParseNameConstraints(base::ByteView value);

  base::Bytes der_;
  base::ByteView tbs_, signature_, serial_, issuer_, subject_, spki_;
  crypto::SignatureScheme scheme_ = crypto::SignatureScheme::kEcdsaSha256;
  absl::Time not_before_, not_after_;
  bool has_basic_constraints_ = false, is_ca_ = false;
  std::optional<int64_t> path_len_;
  bool has_key_usage_ = false;
  uint16_t key_usage_ = 0;
  std::vector<absl::string_view> uris_, dns_;
  bool san_critical_ = false;
  bool has_eku_ = false, eku_server_ = false, eku_client_ = false;
  base::ByteView ski_, aki_;
  std::optional<base::ByteView> attributes_;
  bool has_name_constraints_ = false;
  std::vector<NameSubtree> permitted_, excluded_;
  std::string unhandled_critical_;
};

// PEM "CERTIFICATE" blocks for DER certificates.
std::string CertificatesToPem(const std::vector<base::ByteView>& ders);
// One PEM block "-----BEGIN <label>-----" of `der`, 64-character lines.
std::string PemEncode(absl::string_view label, base::ByteView der);
// Every PEM block of type `label` in `text`, decoded; empty when none.
std::vector<base::Bytes> DecodePemBlocks(absl::string_view text, absl::string_view label);

}  // namespace tw::core
