#include "core/agent_name.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/random.h"

namespace tw::core {
namespace {

constexpr absl::string_view kInstancePrefix = "inst-";
constexpr size_t kInstanceChars = 16;
constexpr absl::string_view kBase32 = "abcdefghijklmnopqrstuvwxyz234567";

absl::Status CheckNameSegment(absl::string_view what, absl::string_view seg) {
  if (seg.empty() || seg.size() > 63) {
    return absl::InvalidArgumentError(absl::StrCat("agent name: ", what, " must be 1 to 63 bytes"));
  }
  if (seg == "." || seg == "..") {
    return absl::InvalidArgumentError(absl::StrCat("agent name: ", what, " cannot be '.' or '..'"));
  }
  for (char c : seg) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("agent name: ", what, " may hold only a-z 0-9 . - _"));
    }
  }
  return absl::OkStatus();
}

bool SegmentMatches(absl::string_view pattern, absl::string_view value) {
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);
    return value.substr(0, pattern.size()) == pattern;
  }
  return pattern == value;
}

}  // namespace

absl::StatusOr<AgentName> AgentName::Parse(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError("agent name: want ORG/TEAM/AGENT");
  }
  if (auto s = CheckNameSegment("org", parts[0]); !s.ok()) return s;
  if (auto s = CheckNameSegment("team", parts[1]); !s.ok()) return s;
  if (auto s = CheckNameSegment("agent", parts[2]); !s.ok()) return s;
  return AgentName{std::string(parts[0]), std::string(parts[1]), std::string(parts[2])};
}

absl::StatusOr<NamePattern> NamePattern::Parse(absl::string_view pattern) {
  std::vector<absl::string_view> parts = absl::StrSplit(pattern, '/');
  if (parts.size() != 3) return absl::InvalidArgumentError("name pattern is not org/team/agent");
  for (absl::string_view part : parts) {
    absl::string_view stem = part;
    if (!stem.empty() && stem.back() == '*') stem.remove_suffix(1);
    if (stem.empty()) continue;
    // A stem must be a valid name segment prefix: same alphabet, no inner wildcard.
    auto probe = AgentName::Parse(absl::StrCat(stem, "/x/x"));
    if (!probe.ok() || stem.size() > 63) {
      return absl::InvalidArgumentError(
          absl::StrCat("name pattern segment \"", part, "\" is not a name, `*` or a prefix*"));
    }
  }
  return NamePattern(std::string(pattern));
}

bool NamePattern::Matches(const AgentName& name) const {
  std::vector<absl::string_view> parts = absl::StrSplit(text_, '/');
  return SegmentMatches(parts[0], name.org) && SegmentMatches(parts[1], name.team) &&
         SegmentMatches(parts[2], name.agent);
}

std::string QualifyAgentName(absl::string_view name, absl::string_view org,
                             absl::string_view team) {
  if (name.empty() || absl::StrContains(name, '/')) return std::string(name);
  return absl::StrCat(org, "/", team, "/", name);
}

std::string NewInstanceId() {
  base::Bytes random = crypto::RandomBytes(kInstanceChars);
  std::string id(kInstancePrefix);
  for (uint8_t b : random) id.push_back(kBase32[b & 31]);  // 32 divides 256: no bias
  return id;
}

absl::Status CheckInstanceId(absl::string_view id) {
  if (!absl::StartsWith(id, kInstancePrefix) ||
      id.size() != kInstancePrefix.size() + kInstanceChars ||
      id.find_first_not_of(kBase32, kInstancePrefix.size()) != absl::string_view::npos) {
    return absl::InvalidArgumentError("instance id: want inst- and 16 characters of a-z 2-7");
  }
  return absl::OkStatus();
}

absl::StatusOr<SpiffeId> AgentSpiffeId(const TrustDomain& td, const AgentName& name,
                                       absl::string_view instance_id) {
  if (auto s = CheckInstanceId(instance_id); !s.ok()) return s;
  return SpiffeId::FromSegments(td, {name.org, name.team, name.agent, instance_id});
}

absl::StatusOr<AgentInstance> ParseAgentSpiffeId(const SpiffeId& id) {
  std::vector<absl::string_view> segs = id.segments();
  if (segs.size() != 4) {
    return absl::InvalidArgumentError("agent SPIFFE ID: want spiffe://TD/ORG/TEAM/AGENT/INSTANCE");
  }
  auto name = AgentName::Parse(absl::StrCat(segs[0], "/", segs[1], "/", segs[2]));
  if (!name.ok()) return name.status();
  if (auto s = CheckInstanceId(segs[3]); !s.ok()) return s;
  return AgentInstance{*std::move(name), std::string(segs[3])};
}

}  // namespace tw::core
