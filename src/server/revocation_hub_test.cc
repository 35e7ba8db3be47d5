#include "server/revocation_hub.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::server {
namespace {

store::RevocationEntry Entry(int64_t sequence, const std::string& instance) {
  return store::RevocationEntry{.sequence = sequence,
                                .target = instance,
                                .instances = {instance},
                                .expires_at = absl::Now() + absl::Hours(1)};
}

// A durable log as the store keeps it; entries can be "pruned" by erasing them.
struct FakeLog {
  std::map<int64_t, store::RevocationEntry> entries;
  int reads = 0;
  RevocationHub::LogReader Reader() {
    return [this](int64_t after, size_t limit) {
      ++reads;
      std::vector<store::RevocationEntry> out;
      for (auto it = entries.upper_bound(after); it != entries.end() && out.size() < limit; ++it) {
        out.push_back(it->second);
      }
      return absl::StatusOr<std::vector<store::RevocationEntry>>(std::move(out));
    };
  }
};

std::vector<int64_t> Subscribe(RevocationHub& hub, std::vector<int64_t>* seen) {
  int64_t at = -1;
  hub.Subscribe([seen](const store::RevocationEntry& e) { seen->push_back(e.sequence); }, &at);
  return {at};
}

// Entry 3 is durable, so 1 and 2 are too: their publishers are late or gone. The hub reads
// them from the log at once instead of holding 3 back forever.
TEST(RevocationHubTest, FillsAGapFromTheLog) {
  FakeLog log;
  for (int64_t s = 1; s <= 3; ++s) log.entries[s] = Entry(s, "inst-" + std::to_string(s));
  RevocationHub hub(0, {}, log.Reader());
  std::vector<int64_t> seen;
  EXPECT_THAT(Subscribe(hub, &seen), ::testing::ElementsAre(0));
  hub.Publish(log.entries[3]);
  EXPECT_EQ(hub.sequence(), 3);
  EXPECT_THAT(seen, ::testing::ElementsAre(1, 2, 3));
  EXPECT_TRUE(hub.IsRevoked("inst-1"));
  EXPECT_TRUE(hub.IsRevoked("inst-2"));
  hub.Publish(log.entries[2]);  // the late publisher: already known
  EXPECT_THAT(seen, ::testing::ElementsAre(1, 2, 3));
}

TEST(RevocationHubTest, SkipsWhatTheLogPrunedAndPublishesInOrder) {
  FakeLog log;
  log.entries[2] = Entry(2, "inst-2");
  log.entries[4] = Entry(4, "inst-4");
  RevocationHub hub(0, {}, log.Reader());
  std::vector<int64_t> seen;
  Subscribe(hub, &seen);
  hub.Publish(log.entries[4]);
  EXPECT_EQ(hub.sequence(), 4);
  EXPECT_THAT(seen, ::testing::ElementsAre(2, 4));
  hub.Publish(Entry(5, "inst-5"));  // no gap: the log is not read
  const int reads = log.reads;
  hub.Publish(Entry(6, "inst-6"));
  EXPECT_EQ(log.reads, reads);
  EXPECT_THAT(seen, ::testing::ElementsAre(2, 4, 5, 6));
}

TEST(RevocationHubTest, WithoutALogAGapWaitsForItsPublisher) {
  RevocationHub hub(0, {});
  std::vector<int64_t> seen;
  Subscribe(hub, &seen);
  hub.Publish(Entry(2, "inst-2"));
  EXPECT_EQ(hub.sequence(), 0);
  hub.Publish(Entry(1, "inst-1"));
  EXPECT_THAT(seen, ::testing::ElementsAre(1, 2));
}

TEST(RevocationHubTest, SubscribersStartAtThePublishedSequenceAndPruneForgets) {
  RevocationHub hub(7, {Entry(7, "inst-7")});
  std::vector<int64_t> seen;
  EXPECT_THAT(Subscribe(hub, &seen), ::testing::ElementsAre(7));
  EXPECT_TRUE(hub.IsRevoked("inst-7"));
  hub.Prune(absl::Now() + absl::Hours(2));
  EXPECT_FALSE(hub.IsRevoked("inst-7"));
}

}  // namespace
}  // namespace tw::server
