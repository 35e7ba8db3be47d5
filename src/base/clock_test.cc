#include "base/clock.h"

#include <thread>

#include "gtest/gtest.h"

namespace tw::base {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1800000000);

// A thread that waits on `clock` until `deadline` or until told to stop.
class Sleeper {
 public:
  Sleeper(const Clock& clock, absl::Time deadline)
      : thread_([this, &clock, deadline] {
          absl::MutexLock lock(&mu_);
          const bool stopped = clock.AwaitWithDeadline(mu_, absl::Condition(&stop_), deadline);
          woke_ = stopped ? "stopped" : "deadline";
        }) {}
  ~Sleeper() { thread_.join(); }
  void Stop() {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  // How the wait ended, once it has ("stopped" or "deadline"); empty before.
  std::string woke() {
    absl::MutexLock lock(&mu_);
    return woke_;
  }
  std::string AwaitWoken() {
    absl::MutexLock lock(&mu_);
    const auto done = [this] {
      mu_.AssertReaderHeld();
      return !woke_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(10));
    return woke_;
  }

 private:
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::string woke_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

TEST(FakeClockTest, AWaiterWakesOnlyWhenSetReachesItsDeadline) {
  FakeClock clock(kStart);
  Sleeper sleeper(clock, kStart + absl::Seconds(10));
  ASSERT_EQ(clock.NextWakeup(absl::Seconds(10)), kStart + absl::Seconds(10));
  clock.Set(kStart + absl::Seconds(9));
  EXPECT_EQ(sleeper.woke(), "");  // Set() has shown it 9 s, and it sleeps on
  EXPECT_EQ(clock.NextWakeup(absl::ZeroDuration()), kStart + absl::Seconds(10));
  clock.Set(kStart + absl::Seconds(10));
  EXPECT_EQ(clock.NextWakeup(absl::ZeroDuration()), std::nullopt);  // woken: not waiting
  EXPECT_EQ(sleeper.AwaitWoken(), "deadline");
}

TEST(FakeClockTest, AWaiterWakesWhenItsConditionHolds) {
  FakeClock clock(kStart);
  Sleeper sleeper(clock, kStart + absl::Hours(1));
  ASSERT_TRUE(clock.NextWakeup(absl::Seconds(10)).has_value());
  sleeper.Stop();
  EXPECT_EQ(sleeper.AwaitWoken(), "stopped");
}

TEST(FakeClockTest, APassedDeadlineDoesNotWait) {
  FakeClock clock(kStart);
  Sleeper sleeper(clock, kStart);
  EXPECT_EQ(sleeper.AwaitWoken(), "deadline");
  EXPECT_EQ(clock.NextWakeup(absl::ZeroDuration()), std::nullopt);
}

TEST(ClockTest, TheSystemClockWaitsInRealTime) {
  const Clock& clock = Clock::System();
  absl::Mutex mu;
  bool never = false;
  absl::MutexLock lock(&mu);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(clock.AwaitWithDeadline(mu, absl::Condition(&never), clock.Now()));
  EXPECT_FALSE(
      clock.AwaitWithDeadline(mu, absl::Condition(&never), clock.Now() + absl::Milliseconds(20)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
}

TEST(ClockTest, TheMonotonicClockNeverGoesBack) {
  const Clock& clock = Clock::Monotonic();
  const absl::Time a = clock.Now();
  EXPECT_LE(a, clock.Now());
}

}  // namespace
}  // namespace tw::base
