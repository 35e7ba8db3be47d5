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

// OID 2.25.83181399120337084466483300138004988053.1, OBJECT IDENTIFIER contents.
inline constexpr uint8_t kAttributesOid[] = {0x69, 0xfd, 0x94, 0x93, 0xe7, 0x9d, 0xc0,
                                             0x92, 0xba, 0xa5, 0x87, 0xaf, 0xd0, 0x92,
                                             0xf6, 0xb9, 0xdd, 0x81, 0x15, 0x01};
inline constexpr char kAttributesOidText[] = "2.25.83181399120337084466483300138004988053.1";

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
