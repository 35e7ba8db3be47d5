#include "ledger/event.h"

#include <array>
#include <cstring>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "core/scope.h"
#include "core/spiffe_id.h"
#include "crypto/digest.h"
#include "crypto/random.h"
#include "nlohmann/json.hpp"

namespace tw::ledger {
namespace {

using nlohmann::json;

constexpr size_t kMaxEventBytes = 64 << 10;
constexpr size_t kMaxString = 4096;

constexpr std::array<absl::string_view, 3> kAgentTypes = {"action", "outcome", "observation"};
constexpr std::array<absl::string_view, 7> kServerTypes = {
    "issuance", "renewal", "revocation", "policy", "token", "authority", "federation"};

bool IsLowerHex(absl::string_view s) {
  static constexpr auto kHex = [] {
    std::array<bool, 256> t{};
    for (char c : absl::string_view("0123456789abcdef")) t[static_cast<unsigned char>(c)] = true;
    return t;
  }();
  for (char c : s) {
    if (!kHex[static_cast<unsigned char>(c)]) return false;
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

// Every member, in byte order of the names (the canonical order): a string or an integer.
struct Member {
  absl::string_view name;
  std::string Event::*text;
  int64_t Event::*number;
};
constexpr Member kMembers[] = {
    {"action", &Event::action, nullptr},
    {"caller", &Event::caller, nullptr},
    {"decision", &Event::decision, nullptr},
    {"id", &Event::id, nullptr},
    {"input_digest", &Event::input_digest, nullptr},
    {"instance", &Event::instance, nullptr},
    {"outcome", &Event::outcome, nullptr},
    {"parent", &Event::parent, nullptr},
    {"payload_digest", &Event::payload_digest, nullptr},
    {"policy_version", nullptr, &Event::policy_version},
    {"principal", &Event::principal, nullptr},
    {"reason", &Event::reason, nullptr},
    {"ref", &Event::ref, nullptr},
    {"resource", &Event::resource, nullptr},
    {"serial", &Event::serial, nullptr},
    {"time", nullptr, &Event::time_ms},
    {"type", &Event::type, nullptr},
    {"v", nullptr, &Event::version},
};
constexpr size_t kMemberCount = sizeof(kMembers) / sizeof(kMembers[0]);

// One member of the canonical encoding: `"name":"value",` with JSON's short escapes for
// quote, backslash and \b \f \n \r \t, \u00xx for other control characters, and every
// other byte as it is (the form nlohmann::json::dump gives without ensure_ascii).
void AppendString(std::string& out, absl::string_view name, absl::string_view value) {
  if (value.empty()) return;
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  out.append(name.data(), name.size());
  out += "\":\"";
  size_t plain = 0;  // start of the run of bytes copied as they are
  for (size_t k = 0; k < value.size(); ++k) {
    const char c = value[k];
    if (static_cast<unsigned char>(c) >= 0x20 && c != '"' && c != '\\') continue;
    out.append(value.data() + plain, k - plain);
    plain = k + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
  }
  out.append(value.data() + plain, value.size() - plain);
  out += "\",";
}

void AppendInt(std::string& out, absl::string_view name, int64_t value) {
  out += '"';
  out.append(name.data(), name.size());
  out += "\":";
  absl::StrAppend(&out, value, ",");
}

// Fills an Event straight from nlohmann's SAX events: members go to their slots without a
// DOM. Only the top-level object's string and integer members are accepted; a repeated
// member is caught afterwards, since its bytes cannot equal the canonical encoding.
class EventReader final : public nlohmann::json_sax<json> {
 public:
  explicit EventReader(Event& e) : e_(e) {}

  bool start_object(std::size_t) override {
    if (depth_++ == 0) return true;
    return WrongType();
  }
  bool end_object() override { return --depth_ >= 0; }
  bool key(string_t& name) override {
    // Canonical input names the members in table order: start after the last one.
    text_ = nullptr;
    number_ = nullptr;
    name_ = std::move(name);
    for (size_t k = 0; k < kMemberCount; ++k) {
      const Member& m = kMembers[(next_ + k) % kMemberCount];
      if (m.name != name_) continue;
      next_ = (next_ + k + 1) % kMemberCount;
      if (m.text != nullptr) text_ = &(e_.*m.text);
      if (m.number != nullptr) number_ = &(e_.*m.number);
      return true;
    }
    return Fail(Invalid(name_, "is not a known member"));
  }
  bool string(string_t& v) override {
    if (text_ == nullptr) return WrongType();
    if (v.empty()) return Fail(Invalid(name_, "must be omitted when empty"));
    *text_ = std::move(v);
    return true;
  }
  bool number_integer(number_integer_t v) override {
    if (number_ == nullptr) return WrongType();
    *number_ = v;
    return true;
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (number_ == nullptr) return WrongType();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Fail(Invalid(name_, "is out of range"));
    }
    *number_ = static_cast<int64_t>(v);
    return true;
  }
  bool number_float(number_float_t, const string_t&) override { return WrongType(); }
  bool null() override { return WrongType(); }
  bool boolean(bool) override { return WrongType(); }
  bool binary(binary_t&) override { return WrongType(); }
  bool start_array(std::size_t) override { return WrongType(); }
  bool end_array() override { return false; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return Fail(absl::InvalidArgumentError("event is not valid JSON"));
  }

  const absl::Status& status() const { return status_; }

 private:
  bool Fail(absl::Status s) {
    if (status_.ok()) status_ = std::move(s);
    return false;
  }
  bool WrongType() {
    if (depth_ == 0) return Fail(absl::InvalidArgumentError("event is not a JSON object"));
    return Fail(Invalid(name_, number_ != nullptr ? "must be an integer" : "must be a string"));
  }

  Event& e_;
  int depth_ = 0;
  size_t next_ = 0;  // where the next member's name is looked up first
  std::string name_;
  std::string* text_ = nullptr;
  int64_t* number_ = nullptr;
  absl::Status status_;
};

// Reads a string value at `pos` exactly as AppendString writes it: bytes from 0x20 up as
// they are, and only the escapes it uses. False for anything else.
bool ReadCanonicalString(absl::string_view in, size_t& pos, std::string& out) {
  if (pos >= in.size() || in[pos] != '"') return false;
  size_t plain = ++pos;
  for (; pos < in.size(); ++pos) {
    const char c = in[pos];
    if (c == '"') break;
    if (static_cast<unsigned char>(c) < 0x20) return false;
    if (c != '\\') continue;
    out.append(in.data() + plain, pos - plain);
    if (++pos >= in.size()) return false;
    switch (in[pos]) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        // \u00xx in lowercase hex, for the control characters without a short escape.
        if (in.size() - pos < 5 || in.substr(pos + 1, 2) != "00") return false;
        const char hi = in[pos + 3], lo = in[pos + 4];
        const int lo_value = lo >= '0' && lo <= '9'   ? lo - '0'
                             : lo >= 'a' && lo <= 'f' ? lo - 'a' + 10
                                                      : -1;
        if ((hi != '0' && hi != '1') || lo_value < 0) return false;
        const char value = static_cast<char>((hi - '0') * 16 + lo_value);
        if (value == '\b' || value == '\f' || value == '\n' || value == '\r' || value == '\t') {
          return false;
        }
        out += value;
        pos += 4;
        break;
      }
      default:
        return false;
    }
    plain = pos + 1;
  }
  if (pos >= in.size()) return false;
  out.append(in.data() + plain, pos - plain);
  ++pos;
  return !out.empty();
}

// Reads an integer at `pos` exactly as AppendInt writes it ("0" or no leading zero).
bool ReadCanonicalInt(absl::string_view in, size_t& pos, int64_t& out) {
  const size_t end =
      in.find_first_not_of("0123456789", pos < in.size() && in[pos] == '-' ? pos + 1 : pos);
  if (end == absl::string_view::npos) return false;
  const absl::string_view text = in.substr(pos, end - pos);
  const absl::string_view digits = absl::StripPrefix(text, "-");
  if (digits.empty() || (digits[0] == '0' && text != "0")) return false;
  if (!absl::SimpleAtoi(text, &out)) return false;
  pos = end;
  return true;
}

// Decodes bytes laid out exactly as EncodeEvent writes them, without a general JSON
// parser: the same members in the same order, the same escapes, the same integers, so
// that whatever this accepts is its own encoding (the random-edit test checks it). False
// for anything else; the caller then decodes the general way, which says what is wrong.
bool DecodeCanonical(absl::string_view in, Event& e) {
  if (in.empty() || in[0] != '{') return false;
  size_t pos = 1;
  size_t next = 0;
  bool time = false, version = false;  // the members EncodeEvent always writes
  for (;;) {
    if (pos >= in.size() || in[pos] != '"') return false;
    const size_t end = in.find('"', pos + 1);
    if (end == absl::string_view::npos) return false;
    const absl::string_view name = in.substr(pos + 1, end - pos - 1);
    while (next < kMemberCount && kMembers[next].name != name) ++next;
    if (next == kMemberCount) return false;
    const Member& m = kMembers[next++];
    pos = end + 1;
    if (pos >= in.size() || in[pos++] != ':') return false;
    if (m.text != nullptr) {
      if (!ReadCanonicalString(in, pos, e.*m.text)) return false;
    } else {
      if (!ReadCanonicalInt(in, pos, e.*m.number)) return false;
      if (m.number == &Event::policy_version && e.policy_version == 0) return false;
      time = time || m.number == &Event::time_ms;
      version = version || m.number == &Event::version;
    }
    if (pos >= in.size()) return false;
    if (in[pos] == '}') return pos + 1 == in.size() && time && version;
    if (in[pos++] != ',') return false;
  }
}

}  // namespace

bool IsServerType(absl::string_view type) {
  for (absl::string_view t : kServerTypes) {
    if (t == type) return true;
  }
  return false;
}

bool IsSelfType(absl::string_view type) {
  return type == "action" || type == "outcome" || type == "observation";
}

std::string EncodeEvent(const Event& e) {
  std::string out = "{";
  out.reserve(512);
  for (const Member& m : kMembers) {
    if (m.text != nullptr) {
      AppendString(out, m.name, e.*m.text);
    } else if (m.number != &Event::policy_version || e.policy_version != 0) {
      AppendInt(out, m.name, e.*m.number);
    }
  }
  out.back() = '}';
  return out;
}

absl::Status ValidateEvent(const Event& e) {
  if (e.version != 1) return Invalid("v", "must be 1");
  if (!IsEventId(e.id)) return Invalid("id", "must be \"evt-\" and 16 to 64 lowercase hex digits");
  if (e.time_ms <= 0) return Invalid("time", "must be a positive Unix time in milliseconds");
  bool agent_type = false;
  for (absl::string_view t : kAgentTypes) agent_type = agent_type || t == e.type;
  if (!agent_type && !IsServerType(e.type)) return Invalid("type", "is not a known event type");
  for (const Member& m : kMembers) {
    if (m.text == nullptr) continue;
    const std::string& value = e.*m.text;
    if (value.size() > kMaxString) return Invalid(m.name, "is too long");
    if (!base::IsUtf8(value)) return Invalid(m.name, "is not UTF-8");
  }

  // A refused creation or renewal has no subject yet (or none it may sign as).
  bool needs_subject =
      agent_type || ((e.type == "issuance" || e.type == "renewal") && e.decision != "deny");
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
  if (!e.caller.empty() && !core::SpiffeId::FromString(e.caller).ok()) {
    return Invalid("caller", "is not a SPIFFE ID");
  }
  if (!e.caller.empty() && e.type != "observation" && !IsServerType(e.type)) {
    return Invalid("caller", "belongs to observation and server events only");
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
  if (DecodeCanonical(bytes, e)) {
    TW_RETURN_IF_ERROR(ValidateEvent(e));
    return e;
  }
  e = Event{};
  e.version = 0;
  EventReader reader(e);
  bool parsed;
  try {
    parsed = json::sax_parse(bytes.begin(), bytes.end(), &reader);
  } catch (const json::exception&) {
    parsed = false;
  }
  if (!parsed) {
    return reader.status().ok() ? absl::InvalidArgumentError("event is not valid JSON")
                                : reader.status();
  }
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

std::string NewEventId() {
  // As UUIDv7 does: the time first, so that ids made close together sort close together
  // and the ledger's id index grows at its end instead of at random pages.
  const uint64_t ms = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
  return absl::StrCat("evt-", absl::Hex(ms & 0xFFFFFFFFFFFF, absl::kZeroPad12),
                      base::HexEncode(crypto::RandomBytes(10)));
}

std::string DigestOf(absl::string_view data) {
  return "sha256:" + base::HexEncode(crypto::Sha256(base::AsBytes(data)));
}

}  // namespace tw::ledger
