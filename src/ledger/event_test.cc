#include "ledger/event.h"

#include <random>

#include "gtest/gtest.h"
#include "ledger/entry.h"
#include "nlohmann/json.hpp"

namespace tw::ledger {
namespace {

Event Action() {
  Event e;
  e.id = "evt-00112233445566778899aabbccddeeff";
  e.time_ms = 1795000000000;
  e.type = "action";
  e.instance = "spiffe://td/acme/fin/pay/inst-abcdefghijklmnop";
  e.serial = "0a1b";
  e.principal = "admin";
  e.policy_version = 2;
  e.resource = "https://db.example/records";
  e.action = "delete:records";
  e.decision = "deny";
  e.reason = "scope delete:records not granted";
  e.input_digest = DigestOf("prompt");
  return e;
}

TEST(EventTest, EncodesCanonicallyAndRoundTrips) {
  std::string bytes = EncodeEvent(Action());
  EXPECT_EQ(bytes.find("\": "), std::string::npos);
  EXPECT_EQ(bytes.find(", \""), std::string::npos);
  EXPECT_LT(bytes.find("\"action\""), bytes.find("\"decision\""));  // sorted keys
  EXPECT_EQ(bytes.find("parent"), std::string::npos);               // empty members omitted
  auto decoded = DecodeEvent(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, Action());
}

// The canonical form is what a JSON library gives for the same members with sorted keys
// and no whitespace; checked with every member set and every character class that needs
// escaping or must pass through (controls, quote, backslash, DEL, multi-byte UTF-8).
TEST(EventTest, EncodingMatchesASortedJsonDump) {
  const std::string tricky =
      std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f", 14) + "\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x91";
  Event e = Action();
  e.parent = "spiffe://td/acme/fin/pay/inst-parent0000000000";
  e.payload_digest = DigestOf("payload");
  e.outcome = "ok";
  e.ref = "evt-ffeeddccbbaa99887766554433221100";
  for (std::string Event::*field :
       {&Event::reason, &Event::resource, &Event::principal, &Event::outcome}) {
    Event v = e;
    v.*field = "x" + tricky + "y";
    nlohmann::json j = {{"v", v.version},
                        {"id", v.id},
                        {"time", v.time_ms},
                        {"type", v.type},
                        {"instance", v.instance},
                        {"serial", v.serial},
                        {"parent", v.parent},
                        {"principal", v.principal},
                        {"policy_version", v.policy_version},
                        {"resource", v.resource},
                        {"action", v.action},
                        {"decision", v.decision},
                        {"reason", v.reason},
                        {"input_digest", v.input_digest},
                        {"payload_digest", v.payload_digest},
                        {"outcome", v.outcome},
                        {"ref", v.ref}};
    EXPECT_EQ(EncodeEvent(v), j.dump());
  }
  Event minimal;
  minimal.id = e.id;
  minimal.time_ms = 7;
  minimal.type = "token";
  EXPECT_EQ(EncodeEvent(minimal),
            R"({"id":"evt-00112233445566778899aabbccddeeff","time":7,"type":"token","v":1})");
}

// Whatever DecodeEvent accepts is canonical and means what a JSON library reads in it;
// checked over random edits of valid events (byte changes, insertions, deletions, escapes).
TEST(EventTest, AcceptsOnlyCanonicalBytesUnderRandomEdits) {
  Event base = Action();
  base.reason = "a\tb\"c\\d\x01 \xc3\xa9";
  const std::string valid = EncodeEvent(base);
  const std::string alphabet = "{}[]\":,\\ 0123456789-abcdefnrtu\x01\x7f\xc3\xa9";
  std::mt19937 rng(7);
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string bytes = valid;
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
      size_t at = rng() % bytes.size();
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 4) {
        case 0:
          bytes[at] = c;
          break;
        case 1:
          bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        case 2:
          bytes.erase(at, 1);
          break;
        default:
          bytes.insert(at, "\\u00" + std::string(1, "01"[rng() % 2]) + c);
          break;
      }
    }
    auto decoded = DecodeEvent(bytes);
    if (!decoded.ok()) {
      EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
      continue;
    }
    ++accepted;
    ASSERT_EQ(EncodeEvent(*decoded), bytes);
    nlohmann::json j = nlohmann::json::parse(bytes);
    EXPECT_EQ(j.at("reason").get<std::string>(), decoded->reason);
    EXPECT_EQ(j.at("resource").get<std::string>(), decoded->resource);
    EXPECT_EQ(j.at("time").get<int64_t>(), decoded->time_ms);
    EXPECT_EQ(j.at("policy_version").get<int64_t>(), decoded->policy_version);
    EXPECT_EQ(j.size(), nlohmann::json::parse(valid).size());
  }
  EXPECT_GT(accepted, 100);  // edits inside string values keep many events valid
}

TEST(EventTest, RefusesStringsThatAreNotUtf8) {
  for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x80",
                          "\xf8\x88\x80\x80\x80"}) {
    Event e = Action();
    e.reason = std::string("reason: ") + bad;  // after a whole word of ASCII, and alone
    EXPECT_FALSE(ValidateEvent(e).ok()) << bad;
    e.reason = std::string("r") + bad;
    absl::Status s = ValidateEvent(e);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("UTF-8"), std::string::npos);
  }
  Event e = Action();
  e.reason = "\xf0\x9f\x94\x91 \xe2\x82\xac \xc3\xa9";
  EXPECT_TRUE(ValidateEvent(e).ok());
}

TEST(EventTest, RefusesNonCanonicalBytes) {
  std::string bytes = EncodeEvent(Action());
  std::string spaced = bytes;
  spaced.insert(1, " ");
  auto s = DecodeEvent(spaced);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("canonical"), std::string::npos);
  std::string unsorted =
      R"({"v":1,"id":"evt-00112233445566778899aabbccddeeff","time":5,"type":"token"})";
  EXPECT_NE(DecodeEvent(unsorted).status().message().find("canonical"), std::string::npos);
  std::string escaped = bytes;
  escaped.replace(escaped.find("admin"), 5, "\\u0061dmin");
  EXPECT_FALSE(DecodeEvent(escaped).ok());
  // Valid JSON with the same meaning, spelled other than the canonical way.
  Event tabbed = Action();
  tabbed.reason = "a\tb\x1f";
  const std::string canonical = EncodeEvent(tabbed);
  ASSERT_TRUE(DecodeEvent(canonical).ok());
  auto respell = [&canonical](const std::string& from, const std::string& to) {
    std::string b = canonical;
    b.replace(b.find(from), from.size(), to);
    return b;
  };
  for (const std::string& other :
       {respell("\\t", "\\u0009"), respell("\\u001f", "\\u001F"),
        respell("\"policy_version\":2", "\"policy_version\":02"), respell("\"v\":1", "\"v\":1.0"),
        respell("a\\t", "\\u0061\\t"), respell("\"time\":", "\"time\":-0,\"time\":")}) {
    auto s = DecodeEvent(other);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << other;
  }
}

TEST(EventTest, RefusesUnknownMembersAndWrongTypes) {
  EXPECT_NE(DecodeEvent(R"({"extra":1})").status().message().find("extra"), std::string::npos);
  EXPECT_NE(DecodeEvent(R"({"time":"now"})").status().message().find("time"), std::string::npos);
  EXPECT_NE(DecodeEvent(R"({"reason":""})").status().message().find("omitted"), std::string::npos);
  EXPECT_FALSE(DecodeEvent("[]").ok());
  EXPECT_FALSE(DecodeEvent("{").ok());
}

TEST(EventTest, EnforcesTheRulesPerType) {
  auto check = [](auto mutate, const char* member) {
    Event e = Action();
    mutate(e);
    absl::Status s = ValidateEvent(e);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << member;
    EXPECT_NE(s.message().find(member), std::string::npos) << s;
  };
  check([](Event& e) { e.id = "evt-short"; }, "id");
  check([](Event& e) { e.id = "evt-00112233445566778899AABBCCDDEEFF"; }, "id");
  check([](Event& e) { e.version = 2; }, "v");
  check([](Event& e) { e.time_ms = 0; }, "time");
  check([](Event& e) { e.type = "delete"; }, "type");
  check([](Event& e) { e.instance = "http://x/y"; }, "instance");
  check([](Event& e) { e.instance.clear(); }, "instance");
  check([](Event& e) { e.serial.clear(); }, "serial");
  check([](Event& e) { e.policy_version = 0; }, "policy_version");
  check([](Event& e) { e.decision = "maybe"; }, "decision");
  check([](Event& e) { e.reason.clear(); }, "reason");
  check([](Event& e) { e.action = "delete"; }, "action");
  check([](Event& e) { e.resource.clear(); }, "resource");
  check([](Event& e) { e.input_digest = "md5:00"; }, "input_digest");
  check([](Event& e) { e.parent = "not an id"; }, "parent");
  check([](Event& e) { e.reason = std::string(5000, 'x'); }, "reason");
  check(
      [](Event& e) {
        e.type = "outcome";
        e.ref = "evt-00112233445566778899aabbccddeeff";
      },
      "outcome");
  check(
      [](Event& e) {
        e.type = "outcome";
        e.outcome = "ok";
      },
      "ref");
}

TEST(EventTest, ServerTypesNeedNoSubject) {
  Event e;
  e.id = NewEventId();
  e.time_ms = 1;
  e.type = "policy";
  e.resource = "policy:3";
  EXPECT_TRUE(ValidateEvent(e).ok());
  EXPECT_TRUE(IsServerType("policy"));
  EXPECT_FALSE(IsServerType("action"));
  EXPECT_TRUE(IsSelfType("outcome"));
  EXPECT_TRUE(IsSelfType("observation"));  // signed by the resource's own SVID
}

TEST(EventTest, CallerBelongsToObservationsAndServerEventsAndIsASpiffeId) {
  Event e = Action();  // its instance is the observer, the resource's verifier
  e.type = "observation";
  e.caller = "spiffe://td/acme/fin/payer/inst-bbbbbbbbbbbbbbbb";
  ASSERT_TRUE(ValidateEvent(e).ok());
  EXPECT_EQ(*DecodeEvent(EncodeEvent(e)), e);
  e.caller = "not an id";
  EXPECT_FALSE(ValidateEvent(e).ok());
  e.caller = "spiffe://td/x";
  e.type = "action";
  EXPECT_EQ(ValidateEvent(e).message(),
            "event member \"caller\" belongs to observation and server events only");
  // A server event names the agent that asked, when it is not the subject.
  e.type = "revocation";
  EXPECT_TRUE(ValidateEvent(e).ok()) << ValidateEvent(e);
}

TEST(EventTest, AgentOfNamesTheAgent) {
  EXPECT_EQ(AgentOf("spiffe://td/acme/fin/pay/inst-abcdefghijklmnop"), "acme/fin/pay");
  EXPECT_EQ(AgentOf("spiffe://td/trustwarden/server"), "");
  EXPECT_EQ(AgentOf("nonsense"), "");
}

TEST(EntryTest, RoundTripsAndRefusesMalformedBytes) {
  Entry e;
  e.index = 42;
  e.signer_id[0] = 7;
  e.batch_size = 3;
  e.batch_position = 2;
  e.batch_path = {LeafHash(base::AsBytes("a"))};
  e.signature = {1, 2, 3};
  e.event = EncodeEvent(Action());
  base::Bytes bytes = EncodeEntry(e);
  auto decoded = DecodeEntry(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, e);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{20}, bytes.size() - 1}) {
    EXPECT_FALSE(DecodeEntry(base::ByteView(bytes).first(cut)).ok()) << cut;
  }
  base::Bytes longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(DecodeEntry(longer).ok());
  base::Bytes bad_position = bytes;
  bad_position[1 + 8 + 1 + 1 + 32 + 3] = 9;  // position 9 of 3
  EXPECT_FALSE(DecodeEntry(bad_position).ok());
}

}  // namespace
}  // namespace tw::ledger
