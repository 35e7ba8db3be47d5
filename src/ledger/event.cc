#include "ledger/event.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "core/json.h"
#include "core/scope.h"
#include "core/spiffe_id.h"
#include "crypto/digest.h"
#include "crypto/random.h"

namespace tw::ledger {
namespace {

using nlohmann::json;

constexpr size_t kMaxEventBytes = 64 << 10;
constexpr size_t kMaxString = 4096;

constexpr std::array<absl::string_view, 3> kAgentTypes = {"action", "outcome", "observation"};
constexpr std::array<absl::string_view, 5> kServerTypes = {"issuance", "renewal", "revocation",
                                                           "policy", "token"};

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

bool IsEventId(absl::string_view s) {
  if (!absl::ConsumePrefix(&s, "evt-")) return false;
  return s.size() >= 16 && s.size() <= 64 && IsLowerHex(s);
}

bool IsDigest(absl::string_view s) {
  return absl::ConsumePrefix(&s, "sha256:") && s.size() == 64 && IsLowerHex(s);
}

absl::Status Invalid(absl::string_view member, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("event member \"", member, "\" ", why));
}

absl::Status Require(absl::string_view member, const std::string& value) {
  return value.empty() ? Invalid(member, "is required for this type") : absl::OkStatus();
}

// Every string member, by name, for decoding and length checks.
template <typename Fn>
void ForEachString(Event& e, Fn fn) {
  fn("id", e.id);
  fn("type", e.type);
  fn("instance", e.instance);
  fn("serial", e.serial);
  fn("parent", e.parent);
  fn("principal", e.principal);
  fn("resource", e.resource);
  fn("action", e.action);
  fn("decision", e.decision);
  fn("reason", e.reason);
  fn("input_digest", e.input_digest);
  fn("payload_digest", e.payload_digest);
  fn("outcome", e.outcome);
  fn("ref", e.ref);
}

}  // namespace

bool IsServerType(absl::string_view type) {
  for (absl::string_view t : kServerTypes) {
    if (t == type) return true;
  }
  return false;
}

bool IsSelfType(absl::string_view type) { return type == "action" || type == "outcome"; }

std::string EncodeEvent(const Event& event) {
  json j = json::object();
  j["v"] = event.version;
  j["time"] = event.time_ms;
  if (event.policy_version != 0) j["policy_version"] = event.policy_version;
  Event copy = event;
  ForEachString(copy, [&j](const char* name, const std::string& value) {
    if (!value.empty()) j[name] = value;
  });
  // Keys come out sorted (nlohmann objects are std::map); invalid UTF-8 never reaches
  // here because ValidateEvent ran on decode, and in-process events are ours.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::Status ValidateEvent(const Event& e) {
  if (e.version != 1) return Invalid("v", "must be 1");
  if (!IsEventId(e.id)) return Invalid("id", "must be \"evt-\" and 16 to 64 lowercase hex digits");
  if (e.time_ms <= 0) return Invalid("time", "must be a positive Unix time in milliseconds");
  bool agent_type = false;
  for (absl::string_view t : kAgentTypes) agent_type = agent_type || t == e.type;
  if (!agent_type && !IsServerType(e.type)) return Invalid("type", "is not a known event type");
  Event copy = e;
  absl::Status length = absl::OkStatus();
  ForEachString(copy, [&length](const char* name, const std::string& value) {
    if (length.ok() && value.size() > kMaxString) length = Invalid(name, "is too long");
  });
  TW_RETURN_IF_ERROR(length);

  bool needs_subject = agent_type || e.type == "issuance" || e.type == "renewal";
  if (needs_subject) TW_RETURN_IF_ERROR(Require("instance", e.instance));
  if (!e.instance.empty()) {
    if (!core::SpiffeId::FromString(e.instance).ok())
      return Invalid("instance", "is not a SPIFFE ID");
    TW_RETURN_IF_ERROR(Require("serial", e.serial));
    TW_RETURN_IF_ERROR(Require("principal", e.principal));
    if (e.policy_version <= 0) return Invalid("policy_version", "is required with an instance");
  }
  if (!e.serial.empty() && !IsLowerHex(e.serial)) return Invalid("serial", "must be lowercase hex");
  if (!e.parent.empty() && !core::SpiffeId::FromString(e.parent).ok()) {
    return Invalid("parent", "is not a SPIFFE ID");
  }
  if (e.policy_version < 0) return Invalid("policy_version", "must be positive");
  if (e.type == "action" || e.type == "observation") {
    TW_RETURN_IF_ERROR(Require("resource", e.resource));
    TW_RETURN_IF_ERROR(Require("action", e.action));
    TW_RETURN_IF_ERROR(Require("decision", e.decision));
  }
  if (!e.action.empty() && !core::Scope::Parse(e.action).ok()) {
    return Invalid("action", "must be a scope \"action:object\"");
  }
  if (!e.decision.empty() && e.decision != "allow" && e.decision != "deny") {
    return Invalid("decision", "must be \"allow\" or \"deny\"");
  }
  if (e.decision == "deny") TW_RETURN_IF_ERROR(Require("reason", e.reason));
  if (!e.input_digest.empty() && !IsDigest(e.input_digest)) {
    return Invalid("input_digest", "must be \"sha256:\" and 64 lowercase hex digits");
  }
  if (!e.payload_digest.empty() && !IsDigest(e.payload_digest)) {
    return Invalid("payload_digest", "must be \"sha256:\" and 64 lowercase hex digits");
  }
  if (e.type == "outcome") {
    TW_RETURN_IF_ERROR(Require("outcome", e.outcome));
    TW_RETURN_IF_ERROR(Require("ref", e.ref));
  }
  if (!e.ref.empty() && !IsEventId(e.ref)) return Invalid("ref", "is not an event id");
  return absl::OkStatus();
}

absl::StatusOr<Event> DecodeEvent(absl::string_view bytes) {
  if (bytes.size() > kMaxEventBytes) return absl::InvalidArgumentError("event is too large");
  Event e;
  e.version = 0;
  TW_RETURN_IF_ERROR(core::VisitStrictJsonObject(
      bytes, "event",
      [&e](const std::string& name, json&& value) -> absl::Status {
        if (name == "v" || name == "time" || name == "policy_version") {
          if (!value.is_number_integer()) return Invalid(name, "must be an integer");
          int64_t v = value.get<int64_t>();
          (name == "v" ? e.version : name == "time" ? e.time_ms : e.policy_version) = v;
          return absl::OkStatus();
        }
        bool known = false;
        absl::Status s = absl::OkStatus();
        ForEachString(e, [&](const char* field, std::string& slot) {
          if (name != field) return;
          known = true;
          if (!value.is_string()) {
            s = Invalid(name, "must be a string");
          } else {
            slot = value.get<std::string>();
            if (slot.empty()) s = Invalid(name, "must be omitted when empty");
          }
        });
        if (!known) return Invalid(name, "is not a known member");
        return s;
      },
      kMaxEventBytes));
  TW_RETURN_IF_ERROR(ValidateEvent(e));
  if (EncodeEvent(e) != bytes) {
    return absl::InvalidArgumentError(
        "event is not in canonical form (sorted keys, no whitespace, minimal escapes)");
  }
  return e;
}

std::string AgentOf(absl::string_view instance_spiffe_id) {
  auto id = core::SpiffeId::FromString(instance_spiffe_id);
  if (!id.ok()) return "";
  std::vector<absl::string_view> segments = id->segments();
  if (segments.size() != 4 || !absl::StartsWith(segments[3], "inst-")) return "";
  return absl::StrCat(segments[0], "/", segments[1], "/", segments[2]);
}

std::string NewEventId() { return "evt-" + base::HexEncode(crypto::RandomBytes(16)); }

std::string DigestOf(absl::string_view data) {
  return "sha256:" + base::HexEncode(crypto::Sha256(base::AsBytes(data)));
}

}  // namespace tw::ledger
