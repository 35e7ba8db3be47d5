// Authority's federation relationships: kept in the store, their bundles fetched by the
// refresh hint (federation/federation.h) and held bound to their trust domains.
#include "absl/strings/str_cat.h"
#include "authority/authority.h"
#include "base/status_macros.h"
#include "spdlog/spdlog.h"

namespace tw::authority {
namespace {

bool SameButTheHint(core::Bundle a, core::Bundle b) {
  a.set_refresh_hint_seconds(0);
  b.set_refresh_hint_seconds(0);
  return a.ToJson() == b.ToJson();
}

}  // namespace

absl::Status Authority::LoadFederations() {
  TW_ASSIGN_OR_RETURN(std::vector<store::FederationRecord> records, store_.ListFederations());
  const absl::Time now = options_.clock->Now();
  absl::MutexLock lock(&federation_mu_);
  for (store::FederationRecord& r : records) {
    auto relationship = federation::MakeRelationship(r.trust_domain, r.endpoint_url, r.profile,
                                                     r.endpoint_spiffe_id, ca_.trust_domain());
    if (!relationship.ok()) {
      return absl::DataLossError(absl::StrCat("stored federation ", r.trust_domain, ": ",
                                              relationship.status().message()));
    }
    if (!r.bundle_json.empty()) {
      auto bundle = core::Bundle::Parse(r.bundle_json, relationship->trust_domain);
      if (!bundle.ok()) {
        return absl::DataLossError(
            absl::StrCat("stored bundle of ", r.trust_domain, ": ", bundle.status().message()));
      }
      federated_.Put(*std::move(bundle));
    }
    const std::string td = r.trust_domain;
    federations_.insert_or_assign(td, FederationState{.relationship = *std::move(relationship),
                                                      .record = std::move(r),
                                                      .next_refresh = now});
  }
  return absl::OkStatus();
}

Authority::Federation Authority::Describe(const std::string& trust_domain) const {
  Federation out;
  {
    absl::MutexLock lock(&federation_mu_);
    auto it = federations_.find(trust_domain);
    if (it == federations_.end()) return out;
    out.record = it->second.record;
    out.last_error = it->second.last_error;
    out.next_refresh = it->second.next_refresh;
  }
  if (auto held = federated_.Get(trust_domain)) out.bundle_sequence = held->sequence();
  out.record.bundle_json.clear();  // the bundle map carries the bundles
  return out;
}

absl::StatusOr<Authority::Federation> Authority::FetchFederation(const std::string& td) {
  std::optional<federation::Relationship> relationship;
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&federation_mu_);
    auto it = federations_.find(td);
    if (it == federations_.end()) return store::FederationNotFound(td);
    relationship = it->second.relationship;
    generation = it->second.generation;
  }
  // What may authenticate an https_spiffe endpoint: our bundle and every foreign one held
  // (the foreign domain's own when the endpoint serves itself).
  core::BundleSet trusted;
  trusted.Put(*ca_.bundle());
  for (core::Bundle& b : FederatedBundles()) trusted.Put(std::move(b));
  absl::StatusOr<core::Bundle> fetched = federation::FetchBundle(*relationship, trusted);
  absl::MutexLock change(&federation_change_mu_);
  {
    absl::MutexLock lock(&federation_mu_);
    auto it = federations_.find(td);
    if (it == federations_.end()) return store::FederationNotFound(td);  // removed meanwhile
    if (it->second.generation != generation) {
      return absl::AbortedError(
          absl::StrCat("the relationship with ", td, " was replaced during the fetch"));
    }
  }
  const absl::Time now = options_.clock->Now();
  std::shared_ptr<const core::Bundle> held = federated_.Get(td);
  absl::Status kept = fetched.status();
  bool changed = false;
  if (fetched.ok() && held != nullptr && SameButTheHint(*fetched, *held)) {
    // The same bundle again (a new refresh hint alone changes no sequence): nothing to keep
    // or record; the next fetch follows the hint served.
  } else if (fetched.ok() && held != nullptr && !federation::Supersedes(*fetched, *held)) {
    kept = absl::FailedPreconditionError(
        absl::StrCat("the endpoint served sequence ", *fetched->sequence(), ", not above the held ",
                     *held->sequence(), ": the held bundle stays"));
  } else if (fetched.ok()) {
    const std::string sequence = fetched->sequence() ? absl::StrCat(*fetched->sequence()) : "none";
    absl::StatusOr<std::optional<store::LedgerAppend>> audit =
        Audit(ledger::Event{.type = "federation",
                            .principal = "federation",
                            .resource = absl::StrCat("federation:", td),
                            .reason = absl::StrCat("bundle sequence ", sequence)});
    kept = audit.status();
    if (kept.ok()) {
      kept = store_.UpdateFederatedBundle(td, fetched->ToJson(), now, *audit ? &**audit : nullptr);
    }
    changed = kept.ok();
  }
  {
    absl::MutexLock lock(&federation_mu_);
    auto it = federations_.find(td);  // still there: removals take the change lock
    it->second.last_error = kept.ok() ? "" : std::string(kept.message());
    it->second.next_refresh = now + federation::RefreshInterval(kept.ok() ? &*fetched : held.get());
    if (changed) {
      it->second.record.refreshed_at = now;
      federated_.Put(*fetched);
      ++federation_changes_;
    }
  }
  if (!kept.ok()) {
    spdlog::warn("federation with {}: {}", td, std::string(kept.message()));
    return kept;
  }
  if (changed) {
    spdlog::info("federation with {}: bundle sequence {} from {}", td,
                 fetched->sequence() ? absl::StrCat(*fetched->sequence()) : "none",
                 relationship->endpoint_url);
  }
  return Describe(td);
}

absl::StatusOr<Authority::Federation> Authority::AddFederation(
    const Caller& caller, const federation::Relationship& relationship,
    std::optional<core::Bundle> initial_bundle) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  const std::string td = relationship.trust_domain.name();
  absl::ReleasableMutexLock change(&federation_change_mu_);
  store::FederationRecord record{
      .trust_domain = td,
      .endpoint_url = relationship.endpoint_url,
      .profile = std::string(federation::ProfileName(relationship.profile)),
      .endpoint_spiffe_id =
          relationship.endpoint_spiffe_id ? relationship.endpoint_spiffe_id->str() : ""};
  if (initial_bundle) {
    if (initial_bundle->trust_domain() != relationship.trust_domain) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the bundle given is of ", initial_bundle->trust_domain().name(), ", not of ", td));
    }
    TW_RETURN_IF_ERROR(federation::CheckBoundTo(*initial_bundle, relationship.trust_domain));
    record.bundle_json = initial_bundle->ToJson();
    record.refreshed_at = options_.clock->Now();
  } else if (std::shared_ptr<const core::Bundle> held = federated_.Get(td)) {
    // A relationship replaced (another endpoint, say) keeps the bundle it holds.
    initial_bundle = *held;
    record.bundle_json = held->ToJson();
    absl::MutexLock lock(&federation_mu_);
    if (auto it = federations_.find(td); it != federations_.end()) {
      record.refreshed_at = it->second.record.refreshed_at;
    }
  }
  TW_ASSIGN_OR_RETURN(auto audit,
                      Audit(ledger::Event{.type = "federation",
                                          .principal = caller.principal,
                                          .resource = absl::StrCat("federation:", td),
                                          .reason = absl::StrCat("added: ", record.profile, " ",
                                                                 record.endpoint_url)}));
  TW_RETURN_IF_ERROR(store_.PutFederation(record, audit ? &*audit : nullptr));
  {
    absl::MutexLock lock(&federation_mu_);
    federations_.insert_or_assign(td, FederationState{.relationship = relationship,
                                                      .record = record,
                                                      // no poll before the first fetch
                                                      .next_refresh = absl::InfiniteFuture(),
                                                      .generation = ++federation_changes_});
    if (initial_bundle) federated_.Put(*std::move(initial_bundle));
  }
  change.Release();
  // The first fetch: its failure is shown, the relationship stays and is polled.
  absl::StatusOr<Federation> fetched = FetchFederation(td);
  if (absl::IsNotFound(fetched.status()) || absl::IsAborted(fetched.status())) {
    return fetched.status();  // removed or replaced meanwhile
  }
  return Describe(td);
}

absl::Status Authority::RemoveFederation(const Caller& caller, absl::string_view trust_domain) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  absl::MutexLock change(&federation_change_mu_);
  TW_ASSIGN_OR_RETURN(auto audit,
                      Audit(ledger::Event{.type = "federation",
                                          .principal = caller.principal,
                                          .resource = absl::StrCat("federation:", trust_domain),
                                          .reason = "removed"}));
  TW_RETURN_IF_ERROR(store_.DeleteFederation(trust_domain, audit ? &*audit : nullptr));
  absl::MutexLock lock(&federation_mu_);
  auto it = federations_.find(std::string(trust_domain));
  if (it != federations_.end()) {
    federated_.Remove(it->second.relationship.trust_domain);
    federations_.erase(it);
    ++federation_changes_;
  }
  return absl::OkStatus();
}

absl::StatusOr<Authority::Federation> Authority::RefreshFederation(const Caller& caller,
                                                                   absl::string_view trust_domain) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  return FetchFederation(std::string(trust_domain));
}

absl::StatusOr<std::vector<Authority::Federation>> Authority::ListFederations(
    const Caller& caller) const {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  std::vector<std::string> names;
  {
    absl::MutexLock lock(&federation_mu_);
    for (const auto& [td, state] : federations_) names.push_back(td);
  }
  std::vector<Federation> out;
  for (const std::string& td : names) out.push_back(Describe(td));
  return out;
}

void Authority::RefreshDueFederations(const std::function<bool()>& stopping) {
  const absl::Time now = options_.clock->Now();
  std::vector<std::string> due;
  {
    absl::MutexLock lock(&federation_mu_);
    for (const auto& [td, state] : federations_) {
      if (now >= state.next_refresh) due.push_back(td);
    }
  }
  for (const std::string& td : due) {
    if (stopping && stopping()) return;
    (void)FetchFederation(td);  // its error is logged and kept (last_error)
  }
}

std::string Authority::FederationVersion() const {
  return absl::StrCat(boot_, "-", federation_changes_.load());
}

std::vector<core::Bundle> Authority::FederatedBundles() const {
  std::vector<std::string> names;
  {
    absl::MutexLock lock(&federation_mu_);
    for (const auto& [td, state] : federations_) names.push_back(td);
  }
  std::vector<core::Bundle> out;
  for (const std::string& td : names) {
    if (auto b = federated_.Get(td)) out.push_back(*b);
  }
  return out;
}

}  // namespace tw::authority
