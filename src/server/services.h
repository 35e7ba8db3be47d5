// The server below its listener, wired together: the store, the CA, the revocation hub
// (started from the store's log), the ledger service, the authority and the API. The
// server, the requests fuzzer and the ledger benchmark run the same wiring. Thread-safe
// once wired.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "authority/authority.h"
#include "base/clock.h"
#include "ledger/service.h"
#include "metrics/metrics.h"
#include "revocation/hub.h"
#include "server/api.h"
#include "server/server.h"
#include "store/store.h"

namespace tw::server {

struct Services {
  // Wires `store` and `keys` as `config` says (its limits and rates; not its listener).
  // `persist` saves a new admin token before it is stored (see Authority::Load); the token
  // goes to new_admin_token.
  static absl::StatusOr<std::unique_ptr<Services>> Wire(
      const ServerConfig& config, std::unique_ptr<store::Store> store, ServerKeys keys,
      const base::Clock& clock,
      const std::function<absl::Status(const std::string&)>& persist = nullptr);

  std::unique_ptr<store::Store> store;
  std::unique_ptr<ca::RotatingCa> ca;
  metrics::Metrics metrics;
  std::unique_ptr<revocation::Hub> hub;
  std::unique_ptr<ledger::Service> ledger;
  std::unique_ptr<authority::Authority> authority;
  std::unique_ptr<Api> api;
  std::string new_admin_token;  // when Wire created one; empty otherwise
};

}  // namespace tw::server
