// The store interface: identities, the revocation log, policy versions and tokens.
// Implementations are thread-safe; every mutation is durable when it returns OK.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/bytes.h"

namespace tw::store {

// One agent instance and its current SVID.
struct IdentityRecord {
  std::string instance_id;
  std::string spiffe_id;
  std::string name;    // org/team/agent
  std::string parent;  // the parent's instance id; empty for a root agent
  std::string principal;
  int64_t policy_version = 0;
  int depth = 0;  // 0 for a root agent, parent's + 1 otherwise
  std::string serial_hex;
  std::vector<std::string> scopes;
  std::string trust_level;
  absl::Time not_before;
  absl::Time not_after;
  absl::Time created_at;
  std::optional<int64_t> revoked_sequence;  // set once revoked

  bool operator==(const IdentityRecord&) const = default;
};

struct IdentityFilter {
  std::string agent;                  // org/team/agent; empty: any
  std::string principal;              // empty: any
  std::optional<absl::Time> live_at;  // only unrevoked instances valid at this time
  size_t limit = 1000;
};

enum class RevocationKind { kInstance, kAgent, kSubtree, kPrincipal };
absl::string_view RevocationKindName(RevocationKind kind);

// One entry of the revocation log.
struct RevocationEntry {
  int64_t sequence = 0;  // 1, 2, 3, ... never reused
  RevocationKind kind = RevocationKind::kInstance;
  std::string target;
  std::string reason;
  absl::Time revoked_at;
  std::vector<std::string> instances;  // the instance ids this entry revoked
  absl::Time expires_at;               // the last not_after among them; prunable after

  bool operator==(const RevocationEntry&) const = default;
};

struct StoredPolicy {
  int64_t version = 0;  // 1, 2, 3, ...
  std::string sha256_hex;
  absl::Time created_at;
  std::string source;  // as applied (TOML)
};

// A principal's API token; only a hash of the secret part is stored.
struct TokenRecord {
  std::string id;  // public token id
  std::string principal;
  base::Bytes secret_hash;  // SHA-256 of the secret part
  bool admin = false;
  absl::Time created_at;
};

class Store {
 public:
  virtual ~Store() = default;

  // Inserts a new instance. AlreadyExists for a known instance id; FailedPrecondition when
  // the parent is unknown or revoked (checked atomically with the insert).
  virtual absl::Status InsertIdentity(const IdentityRecord& record) = 0;
  // Records a renewed SVID for `instance_id`. NotFound; FailedPrecondition when revoked.
  virtual absl::Status RenewIdentity(absl::string_view instance_id, absl::string_view serial_hex,
                                     absl::Time not_before, absl::Time not_after) = 0;
  // NotFound for an unknown instance.
  virtual absl::StatusOr<IdentityRecord> GetIdentity(absl::string_view instance_id) = 0;
  // Matching instances, newest first.
  virtual absl::StatusOr<std::vector<IdentityRecord>> ListIdentities(
      const IdentityFilter& filter) = 0;

  // Appends a revocation: the target's unrevoked, unexpired instances (an instance or
  // subtree: it and its descendants; an agent name or principal: their instances) and
  // every descendant of those. NotFound when an instance or subtree target is unknown.
  virtual absl::StatusOr<RevocationEntry> Revoke(RevocationKind kind, absl::string_view target,
                                                 absl::string_view reason, absl::Time now) = 0;
  // Entries with sequence > `after`, ascending, at most `limit`.
  virtual absl::StatusOr<std::vector<RevocationEntry>> ListRevocations(int64_t after,
                                                                       size_t limit) = 0;
  // The last sequence handed out (0 before any); pruning never lowers it.
  virtual absl::StatusOr<int64_t> LastRevocationSequence() = 0;
  // Deletes entries whose expires_at is before `now`; returns how many.
  virtual absl::StatusOr<size_t> PruneRevocations(absl::Time now) = 0;

  // Appends a policy version; returns its number.
  virtual absl::StatusOr<int64_t> AppendPolicy(absl::string_view source,
                                               absl::string_view sha256_hex,
                                               absl::Time created_at) = 0;
  // NotFound for an unknown version; version 0 is the latest (NotFound when none).
  virtual absl::StatusOr<StoredPolicy> GetPolicy(int64_t version) = 0;
  // Every version, ascending, without sources.
  virtual absl::StatusOr<std::vector<StoredPolicy>> ListPolicies() = 0;

  // AlreadyExists for a known token id.
  virtual absl::Status InsertToken(const TokenRecord& token) = 0;
  virtual absl::StatusOr<std::vector<TokenRecord>> ListTokens() = 0;
};

}  // namespace tw::store
