// One entry of the revocation log: what was revoked, when, and which instances it covered.
// Plain values; the store keeps the log, the hub pushes it to enforcement points.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tw::revocation {

// What a revocation names: one instance, an agent name, an instance and its descendants,
// or everything a principal created.
enum class Kind { kInstance, kAgent, kSubtree, kPrincipal };
// "instance", "agent", "subtree" or "principal" (API.md).
absl::string_view KindName(Kind kind);

struct Entry {
  int64_t sequence = 0;  // 1, 2, 3, ... never reused
  Kind kind = Kind::kInstance;
  std::string target;
  std::string reason;
  absl::Time revoked_at;
  std::vector<std::string> instances;  // the instance ids this entry revoked
  absl::Time expires_at;               // the last not_after among them; prunable after
  // Who asked: "principal:NAME" for a token, else the agent's SPIFFE ID. Kept by the store
  // for the admin's views; never published on the revocation stream.
  std::string revoked_by;

  bool operator==(const Entry&) const = default;
};

}  // namespace tw::revocation
