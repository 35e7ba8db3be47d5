// Token-bucket rate limits keyed by a string (a principal, a client address).
// Thread-safe.
#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tw::base {

class RateLimiter {
 public:
  // `rate` tokens per second, at most `burst` saved; rate 0 disables the limit.
  RateLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}

  // Takes `cost` tokens from `key`'s bucket; false (taking none) when it holds fewer.
  bool Allow(absl::string_view key, absl::Time now, double cost = 1);
  // True when `key`'s bucket has a token, without taking it.
  bool HasToken(absl::string_view key, absl::Time now);

 private:
  struct Bucket {
    double tokens;
    absl::Time updated;
  };
  Bucket& Refill(absl::string_view key, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const double rate_, burst_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tw::base
