#include "base/rate_limiter.h"

#include <algorithm>

namespace tw::base {

RateLimiter::Bucket& RateLimiter::Refill(absl::string_view key, absl::Time now) {
  if (buckets_.size() > 100000) {
    // Forget full buckets: they carry no state a fresh bucket would not.
    absl::erase_if(buckets_, [&](const auto& kv) {
      return kv.second.tokens + absl::ToDoubleSeconds(now - kv.second.updated) * rate_ >= burst_;
    });
  }
  auto [it, inserted] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!inserted && now > b.updated) {
    b.tokens = std::min(burst_, b.tokens + absl::ToDoubleSeconds(now - b.updated) * rate_);
    b.updated = now;
  }
  return b;
}

bool RateLimiter::Allow(absl::string_view key, absl::Time now, double cost) {
  if (rate_ <= 0) return true;
  absl::MutexLock lock(&mu_);
  Bucket& b = Refill(key, now);
  if (b.tokens < cost) return false;
  b.tokens -= cost;
  return true;
}

bool RateLimiter::HasToken(absl::string_view key, absl::Time now) {
  if (rate_ <= 0) return true;
  absl::MutexLock lock(&mu_);
  return Refill(key, now).tokens >= 1;
}

}  // namespace tw::base
