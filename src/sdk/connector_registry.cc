#include "sdk/connector_registry.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "sdk/http_connector.h"

namespace trustwarden::internal {

ConnectorRegistry& ConnectorRegistry::Process() {
  static auto* registry = new ConnectorRegistry();
  return *registry;
}

ConnectorRegistry::ConnectorRegistry()
    : connectors_{{"http", HttpConnector}, {"https", HttpConnector}} {}

void ConnectorRegistry::Register(const std::string& scheme, Connector connector) {
  {
    absl::MutexLock lock(&mu_);
    std::swap(connectors_[absl::AsciiStrToLower(scheme)], connector);
  }
  // The replaced connector (now in `connector`) goes after the lock: destroying it may run
  // code of its own (a binding's cleanup) that calls back into the SDK.
}

void ConnectorRegistry::Require(TrustRule rule) {
  absl::MutexLock lock(&mu_);
  trust_rules_.push_back(std::move(rule));
}

ConnectorRegistry::Route ConnectorRegistry::Find(const std::string& scheme,
                                                 const tw::core::Scope& requested,
                                                 std::optional<tw::core::TrustLevel> needed) const {
  Route route{.needed = needed};
  absl::MutexLock lock(&mu_);
  auto it = connectors_.find(scheme);
  if (it != connectors_.end()) route.connector = it->second;
  for (const TrustRule& rule : trust_rules_) {
    if (tw::core::ScopesAllow({rule.scope}, requested) &&
        (!route.needed || *route.needed < rule.level)) {
      route.needed = rule.level;
    }
  }
  return route;
}

std::vector<TrustRule> ConnectorRegistry::trust_rules() const {
  absl::MutexLock lock(&mu_);
  return trust_rules_;
}

void ConnectorRegistry::set_trust_rules(std::vector<TrustRule> rules) {
  absl::MutexLock lock(&mu_);
  trust_rules_ = std::move(rules);
}

}  // namespace trustwarden::internal
