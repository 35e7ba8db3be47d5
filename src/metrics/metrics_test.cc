#include "metrics/metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tw::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, CountsErrorsUnderTheirApiNames) {
  Metrics m;
  m.RecordError(absl::StatusCode::kUnimplemented);
  m.RecordError(absl::StatusCode::kUnavailable);
  m.RecordError(absl::StatusCode::kUnavailable);
  m.RecordError(absl::StatusCode::kOutOfRange);
  const std::string text = m.Render();
  EXPECT_THAT(text, HasSubstr("trustwarden_errors_total{code=\"method_not_allowed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("trustwarden_errors_total{code=\"unavailable\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("trustwarden_errors_total{code=\"payload_too_large\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("trustwarden_errors_total{code=\"internal\"} 0\n"));
}

TEST(MetricsTest, RendersCountersGaugeAndLatencyHistogram) {
  Metrics m;
  m.RecordIssuance(absl::Milliseconds(3));
  m.RecordIssuance(absl::Seconds(2));
  m.RecordRevocation(3);
  m.SubscriberAdded();
  m.SubscriberAdded();
  m.SubscriberRemoved();
  const std::string text = m.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE trustwarden_issuances_total counter\n"));
  EXPECT_THAT(text, HasSubstr("trustwarden_issuances_total 2\n"));
  EXPECT_THAT(text, HasSubstr("trustwarden_revoked_instances_total 3\n"));
  EXPECT_THAT(text, HasSubstr("trustwarden_stream_subscribers 1\n"));
  EXPECT_THAT(text, HasSubstr("trustwarden_issuance_latency_seconds_bucket{le=\"0.005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("trustwarden_issuance_latency_seconds_bucket{le=\"2.5\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("trustwarden_issuance_latency_seconds_count 2\n"));
}

}  // namespace
}  // namespace tw::metrics
