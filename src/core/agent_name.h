// The TrustWarden path convention: spiffe://TD/<org>/<team>/<agent>/<instance-id>.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/spiffe_id.h"

namespace tw::core {

// "org/team/agent": three lowercase segments of a-z 0-9 '.' '-' '_', each 1..63 bytes.
struct AgentName {
  std::string org, team, agent;

  static absl::StatusOr<AgentName> Parse(absl::string_view name);
  std::string str() const { return org + "/" + team + "/" + agent; }
  bool operator==(const AgentName&) const = default;
};

// "org/team/agent" where each segment is exact, `*`, or a prefix ending in `*`.
class NamePattern {
 public:
  static absl::StatusOr<NamePattern> Parse(absl::string_view pattern);
  bool Matches(const AgentName& name) const;
  const std::string& str() const { return text_; }

 private:
  explicit NamePattern(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// Where a bare agent name ("payment-processor", no '/') lives when the caller names no
// org or team (TRUSTWARDEN_ORG / TRUSTWARDEN_TEAM unset).
inline constexpr absl::string_view kDefaultOrg = "default";
inline constexpr absl::string_view kDefaultTeam = "default";

// `name` under `org`/`team` when it is a bare agent name; any other name as given (Parse
// judges it).
std::string QualifyAgentName(absl::string_view name, absl::string_view org, absl::string_view team);

// "inst-" followed by 16 random characters of [a-z2-7] (80 bits).
std::string NewInstanceId();
// OK when `id` has the form NewInstanceId returns.
absl::Status CheckInstanceId(absl::string_view id);

// An agent instance's SPIFFE ID.
absl::StatusOr<SpiffeId> AgentSpiffeId(const TrustDomain& td, const AgentName& name,
                                       absl::string_view instance_id);

// The parts of an agent instance's SPIFFE ID; InvalidArgument when `id` does not follow
// the convention.
struct AgentInstance {
  AgentName name;
  std::string instance_id;
};
absl::StatusOr<AgentInstance> ParseAgentSpiffeId(const SpiffeId& id);

}  // namespace tw::core
