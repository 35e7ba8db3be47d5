// The injectable source of time: the system clock in production, FakeClock in tests, and
// waiting for a time on either. Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tw::base {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // With `mu` held, waits until `cond` holds or Now() reaches `deadline`, as
  // absl::Mutex::AwaitWithDeadline does on the system clock; true when `cond` holds on
  // return. `mu` may be released meanwhile. This version waits `deadline - Now()` of real
  // time, which suits every clock that runs at real speed.
  virtual bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                                 absl::Time deadline) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // The process-wide real-time clock (never null, never destroyed).
  static const Clock& System();
  // A process-wide monotonic clock: it never steps when the system time is set, so it
  // measures intervals (silences, timeouts). Its times mean nothing beyond their
  // differences.
  static const Clock& Monotonic();
};

// A clock that only moves when told to. Threads waiting on it (AwaitWithDeadline) wake
// when Set() reaches their deadline, never on real time.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time now) : now_(now) {}
  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(now_mu_);
  // Moves the time to `now`. When it returns, every waiter whose deadline `now` reaches is
  // woken and no longer counts as waiting, and every other one has seen `now` and sleeps
  // on. Not to be called holding a mutex that a waiter waits with.
  void Set(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                         absl::Time deadline) const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The earliest deadline a thread waits for in AwaitWithDeadline, after waiting up to
  // `timeout` of real time for one to wait; nullopt when none did. Tests use it to learn
  // that a background loop has gone back to sleep, and until when. (A wait that needs no
  // waiting, its condition or deadline met on entry, never counts.)
  std::optional<absl::Time> NextWakeup(absl::Duration timeout) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    absl::Mutex* mu;
    absl::Time deadline;
  };

  // A lock of its own, taken last: waiters' conditions read the time wherever they run.
  mutable absl::Mutex now_mu_;
  absl::Time now_ ABSL_GUARDED_BY(now_mu_);
  // Taken before a waiter's mutex (Set() releases each one), never after it.
  mutable absl::Mutex mu_;
  mutable std::vector<const Waiter*> waiters_ ABSL_GUARDED_BY(mu_);
};

// "2026-11-23T11:04:00Z": RFC 3339 in UTC, whole seconds.
std::string Rfc3339(absl::Time t);

}  // namespace tw::base
