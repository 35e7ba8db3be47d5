// The process's registry behind AgentIdentity's static rules: the connector performing
// calls for each URI scheme (http and https built in), and the minimum trust levels for
// scopes. Not installed; thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/scope.h"
#include "trustwarden/agent_identity.h"

namespace trustwarden::internal {

// Every action that `scope` covers needs at least `level`.
struct TrustRule {
  tw::core::Scope scope;
  tw::core::TrustLevel level;
};

class ConnectorRegistry {
 public:
  // The process's registry (never destroyed).
  static ConnectorRegistry& Process();

  // `connector` performs calls on resources of `scheme` (any case), replacing another.
  void Register(const std::string& scheme, Connector connector) ABSL_LOCKS_EXCLUDED(mu_);
  void Require(TrustRule rule) ABSL_LOCKS_EXCLUDED(mu_);

  struct Route {
    Connector connector;  // empty when no connector serves the scheme
    std::optional<tw::core::TrustLevel> needed;
  };
  // The connector for resources of `scheme` (lower-case), and the trust level an action
  // `requested` needs: the highest of `needed` and those of the rules covering it.
  Route Find(const std::string& scheme, const tw::core::Scope& requested,
             std::optional<tw::core::TrustLevel> needed) const ABSL_LOCKS_EXCLUDED(mu_);

  // The rules in force, and putting back ones saved (a test undoing what it required).
  std::vector<TrustRule> trust_rules() const ABSL_LOCKS_EXCLUDED(mu_);
  void set_trust_rules(std::vector<TrustRule> rules) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ConnectorRegistry();

  mutable absl::Mutex mu_;
  std::map<std::string, Connector> connectors_ ABSL_GUARDED_BY(mu_);
  std::vector<TrustRule> trust_rules_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trustwarden::internal
