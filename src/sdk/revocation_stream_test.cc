#include "sdk/revocation_stream.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace trustwarden::internal {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

std::string Entry(int64_t sequence, const std::string& instance) {
  return absl::StrCat("id: ", sequence, "\nevent: revocation\ndata: {\"sequence\":", sequence,
                      ",\"instances\":[\"", instance,
                      "\"],\"expires_at\":\"2099-01-01T00:00:00Z\"}\n\n");
}

TEST(RevocationStreamReaderTest, ReadsEntriesSplitAnywhere) {
  RevocationStreamReader r;
  const std::string text = Entry(1, "inst-a") + ": heartbeat 1\n\n" + Entry(2, "inst-b");
  for (char c : text) ASSERT_TRUE(r.Consume(absl::string_view(&c, 1), kNow));
  EXPECT_EQ(r.sequence(), 2);
  EXPECT_TRUE(r.revoked().contains("inst-a"));
  EXPECT_TRUE(r.revoked().contains("inst-b"));
}

// An entry it cannot read drops the connection with the sequence before it, so the
// reconnection asks for that entry again instead of stepping over it.
TEST(RevocationStreamReaderTest, NeverStepsOverAnEntryItCannotRead) {
  for (const std::string& bad :
       {std::string("id: 2\ndata: {not json\n\n"),
        std::string("id: 2\ndata: {\"instances\":7}\n\n"),
        std::string("id: 2\ndata: {\"instances\":[7]}\n\n"), std::string("id: two\ndata: {}\n\n"),
        std::string("data: {\"instances\":[\"inst-x\"]}\n\n"), std::string("id: 2\n\n")}) {
    RevocationStreamReader r;
    ASSERT_TRUE(r.Consume(Entry(1, "inst-a"), kNow));
    EXPECT_FALSE(r.Consume(bad + Entry(3, "inst-c"), kNow)) << bad;
    EXPECT_EQ(r.sequence(), 1) << bad;
    EXPECT_FALSE(r.revoked().contains("inst-c")) << bad;
    r.Restart();
    ASSERT_TRUE(r.Consume(Entry(2, "inst-b") + Entry(3, "inst-c"), kNow));
    EXPECT_EQ(r.sequence(), 3);
  }
}

// Only whole events and heartbeats are signs of life; a trickle of bytes is not.
TEST(RevocationStreamReaderTest, OnlyCompleteEventsAndHeartbeatsAreFresh) {
  RevocationStreamReader partial;
  EXPECT_TRUE(partial.Consume("id: 1\ndata: {\"inst", kNow));
  EXPECT_FALSE(partial.last_seen().has_value());
  RevocationStreamReader r;
  EXPECT_TRUE(r.Consume(": some other comment\n\n", kNow));
  EXPECT_TRUE(r.Consume("\n\n", kNow));
  EXPECT_FALSE(r.last_seen().has_value());
  EXPECT_TRUE(r.Consume(": heartbeat 0\n\n", kNow));
  EXPECT_EQ(r.last_seen(), kNow);
  EXPECT_TRUE(r.Consume(": heartbeat 0\n\n", kNow + absl::Seconds(1)));
  EXPECT_EQ(r.last_seen(), kNow + absl::Seconds(1));
  EXPECT_FALSE(r.Consume(": heartbeat many\n\n", kNow));
}

TEST(RevocationStreamReaderTest, ResynchronisesWhenBehindAtTwoHeartbeats) {
  RevocationStreamReader r;
  ASSERT_TRUE(r.Consume(Entry(1, "inst-a"), kNow));
  EXPECT_TRUE(r.Consume(": heartbeat 2\n\n", kNow));  // entry 2 may be on its way
  EXPECT_TRUE(r.Consume(Entry(2, "inst-b") + ": heartbeat 2\n\n", kNow));
  EXPECT_TRUE(r.Consume(": heartbeat 3\n\n", kNow));
  EXPECT_FALSE(r.Consume(": heartbeat 3\n\n", kNow));  // entry 3 never came
  r.Restart();
  EXPECT_TRUE(r.Consume(": heartbeat 3\n\n", kNow));
}

// The federation version is opaque and bounded; a server that sends none leaves it empty.
TEST(RevocationStreamReaderTest, KeepsTheLastFederationVersionAnnounced) {
  RevocationStreamReader r;
  ASSERT_TRUE(r.Consume(": heartbeat 0\n: bundle 1\n\n", kNow));
  EXPECT_EQ(r.federation_version(), "");
  ASSERT_TRUE(r.Consume(": heartbeat 0\n: bundle 1\n: federation 9f2c-1\n\n", kNow));
  EXPECT_EQ(r.federation_version(), "9f2c-1");
  ASSERT_TRUE(r.Consume(": heartbeat 0\n: federation 9f2c-2\n\n", kNow));
  EXPECT_EQ(r.federation_version(), "9f2c-2");
  ASSERT_TRUE(r.Consume(": heartbeat 0\n: federation " + std::string(65, 'x') + "\n\n", kNow));
  EXPECT_EQ(r.federation_version(), "9f2c-2");
}

TEST(RevocationStreamReaderTest, RefusesAnEndlessEvent) {
  RevocationStreamReader r;
  EXPECT_FALSE(r.Consume("data: " + std::string(2 << 20, 'x'), kNow));
}

}  // namespace
}  // namespace trustwarden::internal
