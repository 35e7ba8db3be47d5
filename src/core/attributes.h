// TrustWarden's attributes of an SVID: scopes, trust level, policy version, parent and
// principal. Carried in X.509-SVIDs as one non-critical extension and in JWT-SVIDs as
// private claims.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/bytes.h"
#include "core/scope.h"
#include "core/spiffe_id.h"

namespace tw::core {

// OID 1.2.840.113556.1.8000.2554.16020.10140.60418.20114.34655.4233063.3621013.1: UUID
// 3e94279c-ec02-4e92-875f-409767374095 under Microsoft's arc for GUID-derived OIDs, every arc
// below 2^31 (Go's crypto/x509 refuses a certificate with a larger one). OBJECT IDENTIFIER
// contents.
inline constexpr uint8_t kAttributesOid[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x14, 0x01, 0xbe, 0x40,
                                             0x93, 0x7a, 0xfd, 0x14, 0xcf, 0x1c, 0x83, 0xd8, 0x02,
                                             0x81, 0x9d, 0x12, 0x82, 0x8e, 0x5f, 0x82, 0x82, 0xae,
                                             0x67, 0x81, 0xdd, 0x81, 0x15, 0x01};
inline constexpr char kAttributesOidText[] =
    "1.2.840.113556.1.8000.2554.16020.10140.60418.20114.34655.4233063.3621013.1";
// The OID of releases before 0.2, 2.25.83181399120337084466483300138004988053.1: still read,
// never written.
inline constexpr uint8_t kLegacyAttributesOid[] = {0x69, 0xfd, 0x94, 0x93, 0xe7, 0x9d, 0xc0,
                                                   0x92, 0xba, 0xa5, 0x87, 0xaf, 0xd0, 0x92,
                                                   0xf6, 0xb9, 0xdd, 0x81, 0x15, 0x01};
inline constexpr char kLegacyAttributesOidText[] = "2.25.83181399120337084466483300138004988053.1";

struct SvidAttributes {
  std::vector<Scope> scopes;
  TrustLevel trust_level = TrustLevel::kLow;
  int64_t policy_version = 0;      // 0: issued outside any policy (offline CLI)
  std::optional<SpiffeId> parent;  // the delegating parent instance, if any
  std::string principal;           // who authorised the creation; empty if none

  bool operator==(const SvidAttributes&) const = default;
};

// DER of the extension value:
//   TrustWardenAttributes ::= SEQUENCE {
//     version        INTEGER (1),
//     scopes         SEQUENCE OF UTF8String,
//     trustLevel     ENUMERATED { low(0), medium(1), high(2), critical(3) },
//     policyVersion  INTEGER (0..MAX),
//     parent         [0] IMPLICIT IA5String OPTIONAL,
//     principal      [1] IMPLICIT UTF8String OPTIONAL }
base::Bytes EncodeAttributes(const SvidAttributes& attributes);
// Strict inverse of EncodeAttributes. InvalidArgument for anything else.
absl::StatusOr<SvidAttributes> DecodeAttributes(base::ByteView der);

}  // namespace tw::core
