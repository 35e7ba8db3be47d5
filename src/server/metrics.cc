#include "server/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tw::server {

void Metrics::RecordIssuance(absl::Duration latency) {
  issuances_.fetch_add(1, std::memory_order_relaxed);
  double seconds = absl::ToDoubleSeconds(latency);
  latency_micros_sum_.fetch_add(static_cast<uint64_t>(absl::ToInt64Microseconds(latency)),
                                std::memory_order_relaxed);
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
}

void Metrics::RecordRevocation(size_t instances) {
  revocations_.fetch_add(1, std::memory_order_relaxed);
  revoked_instances_.fetch_add(instances, std::memory_order_relaxed);
}

void Metrics::RecordError(absl::string_view code) {
  for (size_t i = 0; i < kErrorCodes.size(); ++i) {
    if (kErrorCodes[i] == code) {
      errors_[i].fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  errors_.back().fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::Render() const {
  auto load = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  std::string out;
  auto counter = [&](absl::string_view name, absl::string_view help, uint64_t value) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " counter\n", name, " ",
                    value, "\n");
  };
  counter("trustwarden_issuances_total", "Agent identities created.", load(issuances_));
  counter("trustwarden_renewals_total", "X.509-SVIDs renewed.", load(renewals_));
  counter("trustwarden_suspected_key_thefts_total",
          "Renewals refused because the certificate was no longer the instance's current one.",
          load(key_thefts_));
  counter("trustwarden_jwt_svids_total", "JWT-SVIDs minted.", load(jwts_));
  counter("trustwarden_revocations_total", "Revocation log entries appended.", load(revocations_));
  counter("trustwarden_revoked_instances_total", "Agent instances revoked.",
          load(revoked_instances_));
  counter("trustwarden_http_requests_total", "HTTP requests handled.", load(requests_));
  absl::StrAppend(&out,
                  "# HELP trustwarden_stream_subscribers Open revocation streams.\n"
                  "# TYPE trustwarden_stream_subscribers gauge\n"
                  "trustwarden_stream_subscribers ",
                  load(subscribers_), "\n");
  absl::StrAppend(&out,
                  "# HELP trustwarden_errors_total API errors by code.\n"
                  "# TYPE trustwarden_errors_total counter\n");
  for (size_t i = 0; i < kErrorCodes.size(); ++i) {
    absl::StrAppend(&out, "trustwarden_errors_total{code=\"", kErrorCodes[i], "\"} ",
                    load(errors_[i]), "\n");
  }
  absl::StrAppend(&out,
                  "# HELP trustwarden_issuance_latency_seconds Time to create an identity.\n"
                  "# TYPE trustwarden_issuance_latency_seconds histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += load(buckets_[i]);
    absl::StrAppend(&out, "trustwarden_issuance_latency_seconds_bucket{le=\"",
                    absl::StrFormat("%g", kBuckets[i]), "\"} ", cumulative, "\n");
  }
  absl::StrAppend(&out, "trustwarden_issuance_latency_seconds_bucket{le=\"+Inf\"} ",
                  load(issuances_), "\n", "trustwarden_issuance_latency_seconds_sum ",
                  absl::StrFormat("%.6f", static_cast<double>(load(latency_micros_sum_)) / 1e6),
                  "\ntrustwarden_issuance_latency_seconds_count ", load(issuances_), "\n");
  return out;
}

}  // namespace tw::server
