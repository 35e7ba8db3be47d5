#include "base/clock.h"

#include <algorithm>
#include <chrono>

namespace tw::base {
namespace {

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

class MonotonicClock final : public Clock {
 public:
  absl::Time Now() const override {
    return absl::UnixEpoch() +
           absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
  }
};

}  // namespace

bool Clock::AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                              absl::Time deadline) const {
  return mu.AwaitWithTimeout(cond, deadline - Now());
}

const Clock& Clock::System() {
  static const SystemClock* const clock = new SystemClock();
  return *clock;
}

const Clock& Clock::Monotonic() {
  static const MonotonicClock* const clock = new MonotonicClock();
  return *clock;
}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&now_mu_);
  return now_;
}

void FakeClock::Set(absl::Time now) {
  absl::MutexLock lock(&mu_);
  {
    absl::MutexLock time(&now_mu_);
    now_ = now;
  }
  // absl::Mutex evaluates a waiter's condition when its mutex is released: releasing each
  // once wakes the waiters whose deadline has come, before Set() returns.
  for (const Waiter* w : waiters_) {
    w->mu->Lock();
    w->mu->Unlock();
  }
  // Those no longer wait, whenever their threads get to run.
  std::erase_if(waiters_, [now](const Waiter* w) { return w->deadline <= now; });
}

bool FakeClock::AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                                  absl::Time deadline) const {
  if (cond.Eval() || Now() >= deadline) return cond.Eval();
  const Waiter self{&mu, deadline};
  // Joined and left with `mu` released: Set() holds mu_ while it takes `mu`.
  mu.Unlock();
  {
    absl::MutexLock lock(&mu_);
    waiters_.push_back(&self);
  }
  mu.Lock();
  const auto woken = [&] { return cond.Eval() || Now() >= deadline; };
  mu.Await(absl::Condition(&woken));
  mu.Unlock();
  {
    absl::MutexLock lock(&mu_);
    std::erase(waiters_, &self);
  }
  mu.Lock();
  return cond.Eval();
}

std::optional<absl::Time> FakeClock::NextWakeup(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto waiting = [this] {
    mu_.AssertReaderHeld();
    return !waiters_.empty();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&waiting), timeout)) return std::nullopt;
  absl::Time earliest = absl::InfiniteFuture();
  for (const Waiter* w : waiters_) earliest = std::min(earliest, w->deadline);
  return earliest;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

}  // namespace tw::base
