// The injectable source of time: the system clock in production, FakeClock in tests.
// Thread-safe.
#pragma once

#include <atomic>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tw::base {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // The process-wide real-time clock (never null, never destroyed).
  static const Clock& System();
};

// A clock that only moves when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time now) : nanos_(absl::ToUnixNanos(now)) {}
  absl::Time Now() const override { return absl::FromUnixNanos(nanos_.load()); }
  void Set(absl::Time now) { nanos_.store(absl::ToUnixNanos(now)); }

 private:
  std::atomic<int64_t> nanos_;
};

// "2026-11-23T11:04:00Z": RFC 3339 in UTC, whole seconds.
std::string Rfc3339(absl::Time t);

}  // namespace tw::base
