// Policy documents: who may create which agents, with which scopes, TTLs and trust
// levels, and the scope rules every creation must meet. Immutable once parsed; thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/agent_name.h"
#include "core/foreign_grant.h"
#include "core/scope.h"
#include "nlohmann/json.hpp"

namespace tw::policy {

// What one principal may create.
struct PrincipalRule {
  std::vector<core::NamePattern> names;
  std::vector<core::Scope> scopes;  // the widest scopes it may grant
  absl::Duration max_ttl;
  core::TrustLevel max_trust_level = core::TrustLevel::kLow;
  bool may_delegate = false;  // whether its agents may create children over mTLS
  int max_depth = 0;          // longest parent chain below a root agent (root: depth 0)
};

// Creating `scope` (or anything overlapping it) requires at least `min_trust_level`.
struct ScopeRule {
  core::Scope scope;
  core::TrustLevel min_trust_level;
};

// The parent of a delegated creation, as the store and its verified SVID know it.
struct ParentGrant {
  std::vector<core::Scope> scopes;
  core::TrustLevel trust_level;
  absl::Time not_after;  // the parent's own expiry
  int depth;             // 0 for a root agent
};

// One request to create an agent instance, after syntax checks.
struct CreationRequest {
  std::string principal;
  core::AgentName name;
  std::vector<core::Scope> scopes;
  absl::Duration ttl;
  core::TrustLevel trust_level;
  std::optional<ParentGrant> parent;
  absl::Time now;
};

// What an instance renewing its certificate holds, and what it may keep.
struct RenewalRequest {
  std::string principal;  // who created it (a delegated child: the root's principal)
  core::AgentName name;
  std::vector<core::Scope> scopes;
  core::TrustLevel trust_level;
  absl::Duration ttl;  // what it asks for (its original lifetime)
  std::optional<ParentGrant> parent;
  absl::Time now;
};
struct RenewalGrant {
  std::vector<core::Scope> scopes;
  core::TrustLevel trust_level;
  absl::Duration ttl;
};

class Policy {
 public:
  // Parses a TOML policy document:
  //   [principals.NAME] names, scopes, max_ttl, max_trust_level, may_delegate, max_depth
  //   [[scope_rules]]   scope, min_trust_level
  //   [[foreign]]       trust_domain, names, spiffe_ids, scopes (core::ForeignGrant)
  // Unknown keys, wrong types and invalid values are InvalidArgument naming the key.
  static absl::StatusOr<Policy> Parse(absl::string_view toml);
  // The policy installed on first start: principal "admin" may create any name with any
  // scope, TTL up to 24 h, trust level up to high, and may delegate to depth 3.
  static absl::string_view DefaultSource();

  // The canonical JSON form: sorted keys, no whitespace. Its SHA-256 names the version.
  std::string CanonicalJson() const { return json_.dump(); }
  const nlohmann::json& json() const { return json_; }

  const PrincipalRule* FindPrincipal(absl::string_view principal) const;
  // What agents of federated trust domains may do on our resources.
  const std::vector<core::ForeignGrant>& foreign_grants() const { return foreign_; }

  // OK when the policy allows `request`; PermissionDenied naming the first rule broken.
  absl::Status AuthorizeCreation(const CreationRequest& request) const;
  // The grant a renewal keeps under this policy: scopes the principal (and the parent)
  // no longer covers, or whose scope rule the capped trust level no longer meets, are
  // dropped; trust level and TTL are capped by the principal's rule and the parent.
  // PermissionDenied when the principal has no entry, the name is outside its names, its
  // delegation rules no longer allow the child, or no lifetime is left.
  absl::StatusOr<RenewalGrant> AuthorizeRenewal(const RenewalRequest& request) const;

 private:
  Policy() = default;
  std::vector<std::pair<std::string, PrincipalRule>> principals_;  // sorted by name
  std::vector<ScopeRule> scope_rules_;
  std::vector<core::ForeignGrant> foreign_;
  nlohmann::json json_;
};

// An applied policy: immutable, numbered 1, 2, ... with the SHA-256 of its canonical JSON.
struct PolicyVersion {
  int64_t version = 0;
  std::string sha256_hex;
  absl::Time created_at;
  std::string source;  // the TOML as applied
  std::shared_ptr<const Policy> policy;
};

}  // namespace tw::policy
