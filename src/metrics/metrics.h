// The server's metrics (prometheus-cpp), rendered in the Prometheus text exposition format
// 0.0.4: issuance, renewal, revocation and request counters, API errors by code, open
// revocation streams and issuance latency. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace tw::metrics {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void RecordIssuance(absl::Duration latency);
  void RecordRenewal();
  void RecordSuspectedKeyTheft();
  void RecordJwt();
  void RecordRevocation(size_t instances);
  void RecordRequest();
  // Counted under the code's API name (base/api_status.h).
  void RecordError(absl::StatusCode code);
  void SubscriberAdded();
  void SubscriberRemoved();

  std::string Render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter& issuances_;
  prometheus::Counter& renewals_;
  prometheus::Counter& key_thefts_;
  prometheus::Counter& jwts_;
  prometheus::Counter& revocations_;
  prometheus::Counter& revoked_instances_;
  prometheus::Counter& requests_;
  prometheus::Gauge& subscribers_;
  prometheus::Histogram& issuance_latency_;
  std::vector<prometheus::Counter*> errors_;  // one per row of base::ApiStatuses()
};

}  // namespace tw::metrics
