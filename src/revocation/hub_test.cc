#include "revocation/hub.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::revocation {
namespace {

Entry MakeEntry(int64_t sequence, const std::string& instance) {
  return Entry{.sequence = sequence,
               .target = instance,
               .instances = {instance},
               .expires_at = absl::Now() + absl::Hours(1)};
}

// A durable log as the store keeps it; entries can be "pruned" by erasing them.
struct FakeLog {
  std::map<int64_t, Entry> entries;
  int reads = 0;
  Hub::LogReader Reader() {
    return [this](int64_t after, size_t limit) {
      ++reads;
      std::vector<Entry> out;
      for (auto it = entries.upper_bound(after); it != entries.end() && out.size() < limit; ++it) {
        out.push_back(it->second);
      }
      return absl::StatusOr<std::vector<Entry>>(std::move(out));
    };
  }
};

std::vector<int64_t> Subscribe(Hub& hub, std::vector<int64_t>* seen) {
  int64_t at = -1;
  hub.Subscribe([seen](const Entry& e) { seen->push_back(e.sequence); }, &at);
  return {at};
}

// Entry 3 is durable, so 1 and 2 are too: their publishers are late or gone. The hub reads
// them from the log at once instead of holding 3 back forever.
TEST(RevocationHubTest, FillsAGapFromTheLog) {
  FakeLog log;
  for (int64_t s = 1; s <= 3; ++s) log.entries[s] = MakeEntry(s, "inst-" + std::to_string(s));
  Hub hub(0, {}, log.Reader());
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
  log.entries[2] = MakeEntry(2, "inst-2");
  log.entries[4] = MakeEntry(4, "inst-4");
  Hub hub(0, {}, log.Reader());
  std::vector<int64_t> seen;
  Subscribe(hub, &seen);
  hub.Publish(log.entries[4]);
  EXPECT_EQ(hub.sequence(), 4);
  EXPECT_THAT(seen, ::testing::ElementsAre(2, 4));
  hub.Publish(MakeEntry(5, "inst-5"));  // no gap: the log is not read
  const int reads = log.reads;
  hub.Publish(MakeEntry(6, "inst-6"));
  EXPECT_EQ(log.reads, reads);
  EXPECT_THAT(seen, ::testing::ElementsAre(2, 4, 5, 6));
}

TEST(RevocationHubTest, WithoutALogAGapWaitsForItsPublisher) {
  Hub hub(0, {});
  std::vector<int64_t> seen;
  Subscribe(hub, &seen);
  hub.Publish(MakeEntry(2, "inst-2"));
  EXPECT_EQ(hub.sequence(), 0);
  hub.Publish(MakeEntry(1, "inst-1"));
  EXPECT_THAT(seen, ::testing::ElementsAre(1, 2));
}

TEST(RevocationHubTest, SubscribersStartAtThePublishedSequenceAndPruneForgets) {
  Hub hub(7, {MakeEntry(7, "inst-7")});
  std::vector<int64_t> seen;
  EXPECT_THAT(Subscribe(hub, &seen), ::testing::ElementsAre(7));
  EXPECT_TRUE(hub.IsRevoked("inst-7"));
  hub.Prune(absl::Now() + absl::Hours(2));
  EXPECT_FALSE(hub.IsRevoked("inst-7"));
}

}  // namespace
}  // namespace tw::revocation
