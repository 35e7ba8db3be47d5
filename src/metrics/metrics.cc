#include "metrics/metrics.h"

#include "base/api_status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace tw::metrics {
namespace {

prometheus::Counter& NewCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      issuances_(
          NewCounter(*registry_, "trustwarden_issuances_total", "Agent identities created.")),
      renewals_(NewCounter(*registry_, "trustwarden_renewals_total", "X.509-SVIDs renewed.")),
      key_thefts_(NewCounter(
          *registry_, "trustwarden_suspected_key_thefts_total",
          "Renewals refused because the certificate was no longer the instance's current one.")),
      jwts_(NewCounter(*registry_, "trustwarden_jwt_svids_total", "JWT-SVIDs minted.")),
      revocations_(NewCounter(*registry_, "trustwarden_revocations_total",
                              "Revocation log entries appended.")),
      revoked_instances_(NewCounter(*registry_, "trustwarden_revoked_instances_total",
                                    "Agent instances revoked.")),
      requests_(
          NewCounter(*registry_, "trustwarden_http_requests_total", "HTTP requests handled.")),
      subscribers_(prometheus::BuildGauge()
                       .Name("trustwarden_stream_subscribers")
                       .Help("Open revocation streams.")
                       .Register(*registry_)
                       .Add({})),
      issuance_latency_(prometheus::BuildHistogram()
                            .Name("trustwarden_issuance_latency_seconds")
                            .Help("Time to create an identity.")
                            .Register(*registry_)
                            .Add({}, prometheus::Histogram::BucketBoundaries{
                                         0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5, 1, 2.5})) {
  auto& errors = prometheus::BuildCounter()
                     .Name("trustwarden_errors_total")
                     .Help("API errors by code.")
                     .Register(*registry_);
  for (const base::ApiStatus& row : base::ApiStatuses()) {
    errors_.push_back(&errors.Add({{"code", std::string(row.name)}}));
  }
}

Metrics::~Metrics() = default;

void Metrics::RecordIssuance(absl::Duration latency) {
  issuances_.Increment();
  issuance_latency_.Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::RecordRenewal() { renewals_.Increment(); }
void Metrics::RecordSuspectedKeyTheft() { key_thefts_.Increment(); }
void Metrics::RecordJwt() { jwts_.Increment(); }

void Metrics::RecordRevocation(size_t instances) {
  revocations_.Increment();
  revoked_instances_.Increment(static_cast<double>(instances));
}

void Metrics::RecordRequest() { requests_.Increment(); }

void Metrics::RecordError(absl::StatusCode code) {
  const base::ApiStatus& row = base::ApiStatusOf(code);
  errors_[static_cast<size_t>(&row - base::ApiStatuses().data())]->Increment();
}

void Metrics::SubscriberAdded() { subscribers_.Increment(); }
void Metrics::SubscriberRemoved() { subscribers_.Decrement(); }

std::string Metrics::Render() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace tw::metrics
