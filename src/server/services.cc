#include "server/services.h"

#include <limits>

#include "base/status_macros.h"

namespace tw::server {

absl::StatusOr<std::unique_ptr<Services>> Services::Wire(
    const ServerConfig& config, std::unique_ptr<store::Store> store, ServerKeys keys,
    const base::Clock& clock, const std::function<absl::Status(const std::string&)>& persist) {
  auto s = std::make_unique<Services>();
  s->store = std::move(store);
  s->ca = std::move(keys.ca);
  TW_ASSIGN_OR_RETURN(int64_t sequence, s->store->LastRevocationSequence());
  TW_ASSIGN_OR_RETURN(std::vector<revocation::Entry> entries,
                      s->store->ListRevocations(0, std::numeric_limits<int64_t>::max()));
  s->hub = std::make_unique<revocation::Hub>(sequence, entries,
                                             [store = s->store.get()](int64_t after, size_t limit) {
                                               return store->ListRevocations(after, limit);
                                             });
  s->hub->Prune(clock.Now());
  s->ledger = std::make_unique<ledger::Service>(
      *s->store, std::move(keys.ledger), std::string(s->ca->trust_domain().name()),
      s->ca->history()->ToJson(),
      ledger::ServiceOptions{.clock = &clock,
                             .events_per_instance = config.ledger_events_per_instance});
  s->authority = std::make_unique<authority::Authority>(
      *s->ca, *s->store, *s->hub, s->metrics,
      authority::AuthorityOptions{.clock = &clock,
                                  .issuances_per_principal = config.rate_per_principal,
                                  .max_instance_lifetime = config.max_instance_lifetime,
                                  .ledger = s->ledger.get()});
  TW_ASSIGN_OR_RETURN(s->new_admin_token, s->authority->Load(persist));
  s->api = std::make_unique<Api>(
      *s->authority, s->metrics,
      ApiOptions{.clock = &clock,
                 .requests_per_address = config.rate_per_address,
                 .auth_failures_per_address = config.auth_failures_per_address,
                 .ledger = s->ledger.get()});
  return s;
}

}  // namespace tw::server
