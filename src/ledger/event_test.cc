#include "ledger/event.h"

#include "gtest/gtest.h"
#include "ledger/entry.h"

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
  EXPECT_FALSE(IsSelfType("observation"));
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
