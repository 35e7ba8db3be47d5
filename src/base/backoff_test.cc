#include "base/backoff.h"

#include "gtest/gtest.h"

namespace tw::base {
namespace {

TEST(BackoffTest, DoublesUpToTheCap) {
  Backoff b(absl::Milliseconds(100), absl::Milliseconds(500));
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
  EXPECT_EQ(b.Next(), absl::Milliseconds(200));
  EXPECT_EQ(b.Next(), absl::Milliseconds(400));
  EXPECT_EQ(b.Next(), absl::Milliseconds(500));
  EXPECT_EQ(b.Next(), absl::Milliseconds(500));
}

TEST(BackoffTest, ResetStartsOverFromTheFirstDelay) {
  Backoff b(absl::Seconds(1), absl::Seconds(30));
  b.Next();
  b.Next();
  b.Reset();
  EXPECT_EQ(b.Next(), absl::Seconds(1));
  EXPECT_EQ(b.Next(), absl::Seconds(2));
}

}  // namespace
}  // namespace tw::base
