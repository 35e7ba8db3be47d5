// What a caller asks the authority for, already decoded and syntax-checked (the HTTP layer
// decodes JSON bodies into these). Plain values.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/agent_name.h"
#include "core/scope.h"
#include "revocation/entry.h"

namespace tw::authority {

// A new agent instance: POST /v1/identities.
struct CreateIdentityRequest {
  core::AgentName name;
  std::vector<core::Scope> scopes;
  std::optional<absl::Duration> ttl;  // default chosen by the Authority
  core::TrustLevel trust_level = core::TrustLevel::kLow;
  std::string csr;  // PEM, parsed by the Authority
};

// A JWT-SVID for the caller's own instance: POST /v1/jwt-svids.
struct JwtRequest {
  std::vector<std::string> audience;
  std::optional<absl::Duration> ttl;
};

// One revocation: POST /v1/revocations.
struct RevokeRequest {
  revocation::Kind kind;
  std::string target;
  std::string reason;
};

// A principal name: 1..128 bytes of a-z 0-9 '-' '_' '.'. InvalidArgument otherwise.
absl::Status CheckPrincipalName(absl::string_view name);

}  // namespace tw::authority
