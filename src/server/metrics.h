// Server metrics in the Prometheus text exposition format (version 0.0.4). Debian 12 has
// no prometheus-cpp package, so the few series we export are kept here. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tw::server {

class Metrics {
 public:
  void RecordIssuance(absl::Duration latency);
  void RecordRenewal() { renewals_.fetch_add(1, std::memory_order_relaxed); }
  void RecordSuspectedKeyTheft() { key_thefts_.fetch_add(1, std::memory_order_relaxed); }
  void RecordJwt() { jwts_.fetch_add(1, std::memory_order_relaxed); }
  void RecordRevocation(size_t instances);
  void RecordRequest() { requests_.fetch_add(1, std::memory_order_relaxed); }
  // `code` is an error code of the API ("invalid_argument", ...).
  void RecordError(absl::string_view code);
  void SubscriberAdded() { subscribers_.fetch_add(1, std::memory_order_relaxed); }
  void SubscriberRemoved() { subscribers_.fetch_sub(1, std::memory_order_relaxed); }

  std::string Render() const;

  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    2.5};
  static constexpr std::array<absl::string_view, 9> kErrorCodes = {
      "invalid_argument",   "unauthenticated",   "permission_denied",
      "not_found",          "already_exists",    "failed_precondition",
      "resource_exhausted", "payload_too_large", "internal"};

 private:
  std::atomic<uint64_t> issuances_{0}, renewals_{0}, key_thefts_{0}, jwts_{0}, revocations_{0},
      revoked_instances_{0}, requests_{0};
  std::atomic<int64_t> subscribers_{0};
  std::array<std::atomic<uint64_t>, kBuckets.size()> buckets_{};
  std::atomic<uint64_t> latency_micros_sum_{0};
  std::array<std::atomic<uint64_t>, kErrorCodes.size()> errors_{};
};

}  // namespace tw::server
