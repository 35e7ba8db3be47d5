// Exponential backoff for retry loops: each delay doubles the one before, up to a cap, and
// a success starts over from the first. Not thread-safe: one loop owns one.
#pragma once

#include <algorithm>

#include "absl/time/time.h"

namespace tw::base {

class Backoff {
 public:
  // Delays of `first`, twice that, ... up to `max`.
  Backoff(absl::Duration first, absl::Duration max) : first_(first), max_(max), next_(first) {}

  // The delay before the next attempt; the one after it is twice as long, at most max.
  absl::Duration Next() {
    const absl::Duration delay = next_;
    next_ = std::min(next_ * 2, max_);
    return delay;
  }
  // After a success: the next delay is the first again.
  void Reset() { next_ = first_; }

 private:
  absl::Duration first_;
  absl::Duration max_;
  absl::Duration next_;
};

}  // namespace tw::base
