// What the agents of a federated trust domain may do on our resources. A foreign SVID's
// own TrustWarden attributes are never trusted as ours: its scopes here are what our
// policy grants its SPIFFE ID. Immutable; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/agent_name.h"
#include "core/scope.h"
#include "core/spiffe_id.h"
#include "nlohmann/json.hpp"

namespace tw::core {

struct ForeignGrant {
  TrustDomain trust_domain;
  // Who in that domain: TrustWarden agents whose ORG/TEAM/AGENT matches one of `names`,
  // or exactly one of `spiffe_ids`; with both empty, every SPIFFE ID of the domain.
  std::vector<NamePattern> names;
  std::vector<SpiffeId> spiffe_ids;
  std::vector<Scope> scopes;  // what they may hold here

  bool Covers(const SpiffeId& id) const;
};

// Every scope `grants` give `id` (empty for an ID of no granted domain).
std::vector<Scope> ForeignScopes(const std::vector<ForeignGrant>& grants, const SpiffeId& id);

// The JSON form: [{"trust_domain", "names", "spiffe_ids", "scopes"}, ...], the lists of who
// present only when not empty.
nlohmann::json ForeignGrantsJson(const std::vector<ForeignGrant>& grants);
// Parses the JSON form; InvalidArgument naming the member at fault. A grant needs a
// trust domain and at least one scope; its SPIFFE IDs must be of that trust domain; a list
// of who is absent or not empty.
absl::StatusOr<std::vector<ForeignGrant>> ParseForeignGrants(const nlohmann::json& json);

}  // namespace tw::core
