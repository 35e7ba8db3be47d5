#include "store/memory/memory_store.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace tw::store {
namespace {

// SqliteStore keeps these times as whole Unix seconds (an identity's revoked_at as
// milliseconds): the same truncation here gives the same answers.
absl::Time ToSeconds(absl::Time t) { return absl::FromUnixSeconds(absl::ToUnixSeconds(t)); }
absl::Time ToMillis(absl::Time t) { return absl::FromUnixMillis(absl::ToUnixMillis(t)); }

// An empty filter matches anything.
bool Matches(const std::string& filter, const std::string& value) {
  return filter.empty() || filter == value;
}

// True when `row` holds the event bytes `event`.
bool HoldsEvent(const ledger::EntryRow& row, const std::string& event) {
  absl::StatusOr<ledger::Entry> stored = ledger::DecodeEntry(row.entry);
  return stored.ok() && stored->event == event;
}

// Tree heads ascend by (tree size, time); stable sorting keeps insertion order for ties.
bool HeadBefore(const ledger::TreeHead& a, const ledger::TreeHead& b) {
  return std::tie(a.tree_size, a.timestamp_ms) < std::tie(b.tree_size, b.timestamp_ms);
}

}  // namespace

// The stored subtree hashes of the first `size` entries. A stored node never changes, so
// reading them one lock at a time still sees the tree of the moment `size` was read.
class MemoryStore::TreeSnapshot final : public ledger::NodeSource {
 public:
  TreeSnapshot(const MemoryStore& store, uint64_t size) : store_(store), size_(size) {}

  absl::StatusOr<ledger::Hash> Node(ledger::NodeId id) const override {
    // Subtree (l, j) is complete in a tree of n leaves when j < n / 2^l.
    if (id.level < 0 || id.level >= 64 || id.index >= (size_ >> id.level)) {
      return absl::NotFoundError(
          absl::StrCat("ledger: subtree ", id.level, "/", id.index, " is not stored"));
    }
    absl::ReaderMutexLock lock(&store_.mu_);
    return store_.tree_.Node(id);
  }

 private:
  const MemoryStore& store_;
  const uint64_t size_;
};

std::optional<size_t> MemoryStore::PositionOf(absl::string_view instance_id) const {
  auto it = identity_at_.find(instance_id);
  if (it == identity_at_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<MemoryStore::LedgerPlan> MemoryStore::PlanLedger(const LedgerAppend& batch) const {
  if (batch.entries.size() != batch.events.size()) {
    return absl::InvalidArgumentError("ledger: entries and events differ in number");
  }
  LedgerPlan plan;
  if (!signer_at_.contains(batch.signer.id)) plan.new_signer = batch.signer;
  uint64_t size = rows_.size();
  absl::flat_hash_map<std::string, size_t> planned;  // event id -> its row in plan.rows
  for (size_t i = 0; i < batch.entries.size(); ++i) {
    const ledger::Event& event = batch.events[i];
    const ledger::EntryRow* taken = nullptr;
    if (auto it = row_of_event_.find(event.id); it != row_of_event_.end()) {
      taken = &rows_[it->second];
    } else if (auto it = planned.find(event.id); it != planned.end()) {
      taken = &plan.rows[it->second];
    }
    if (taken != nullptr) {
      // A replay of the same bytes keeps its index; anything else is refused.
      if (!HoldsEvent(*taken, batch.entries[i].event)) {
        return absl::AlreadyExistsError(
            absl::StrCat("event ", event.id, " is already in the ledger with other contents"));
      }
      plan.appended.indexes.push_back(taken->index);
      continue;
    }
    ledger::Entry entry = batch.entries[i];
    entry.index = size;
    planned.emplace(event.id, plan.rows.size());
    plan.rows.push_back(ledger::RowOf(entry, event));
    plan.appended.indexes.push_back(size++);
  }
  plan.appended.tree_size = size;
  return plan;
}

absl::StatusOr<MemoryStore::LedgerPlan> MemoryStore::PlanAudit(const LedgerAppend* audit) const {
  if (audit == nullptr) return LedgerPlan{};
  return PlanLedger(*audit);
}

void MemoryStore::ApplyLedger(LedgerPlan plan) {
  if (plan.new_signer) {
    signer_at_.emplace(plan.new_signer->id, signers_.size());
    signers_.push_back(*std::move(plan.new_signer));
  }
  for (ledger::EntryRow& row : plan.rows) {
    // The leaf, and with it every perfect subtree it completes (RFC 9162 §2.1.1).
    tree_.Append(ledger::LeafHash(row.entry));
    row_of_event_.emplace(row.event_id, row.index);
    rows_.push_back(std::move(row));
  }
}

absl::Status MemoryStore::InsertIdentity(const IdentityRecord& record, const LedgerAppend* audit) {
  absl::MutexLock lock(&mu_);
  if (!record.parent.empty()) {
    std::optional<size_t> parent = PositionOf(record.parent);
    if (!parent) return absl::FailedPreconditionError("parent instance is unknown");
    if (identities_[*parent].revoked_sequence) {
      return absl::FailedPreconditionError("parent instance is revoked");
    }
  }
  if (identity_at_.contains(record.instance_id)) {
    return absl::AlreadyExistsError(absl::StrCat("instance ", record.instance_id, " exists"));
  }
  TW_ASSIGN_OR_RETURN(LedgerPlan plan, PlanAudit(audit));
  IdentityRecord stored = record;
  stored.not_before = ToSeconds(record.not_before);
  stored.not_after = ToSeconds(record.not_after);
  stored.created_at = ToSeconds(record.created_at);
  stored.revoked_sequence.reset();
  stored.revoked_at.reset();
  const size_t at = identities_.size();
  identity_at_.emplace(stored.instance_id, at);
  if (!stored.parent.empty()) children_at_[stored.parent].push_back(at);
  identities_.push_back(std::move(stored));
  ApplyLedger(std::move(plan));
  return absl::OkStatus();
}

absl::Status MemoryStore::RenewIdentity(const IdentityRecord& renewed,
                                        absl::string_view current_serial,
                                        const LedgerAppend* audit) {
  absl::MutexLock lock(&mu_);
  std::optional<size_t> at = PositionOf(renewed.instance_id);
  if (!at)
    return absl::NotFoundError(absl::StrCat("instance ", renewed.instance_id, " is unknown"));
  IdentityRecord& stored = identities_[*at];
  if (stored.revoked_sequence) {
    return absl::FailedPreconditionError(
        absl::StrCat("instance ", renewed.instance_id, " is revoked"));
  }
  if (stored.serial_hex != current_serial) {
    return absl::FailedPreconditionError(absl::StrCat(
        "certificate ", current_serial, " is no longer the current one of ", renewed.instance_id));
  }
  TW_ASSIGN_OR_RETURN(LedgerPlan plan, PlanAudit(audit));
  stored.serial_hex = renewed.serial_hex;
  stored.not_before = ToSeconds(renewed.not_before);
  stored.not_after = ToSeconds(renewed.not_after);
  stored.scopes = renewed.scopes;
  stored.trust_level = renewed.trust_level;
  stored.policy_version = renewed.policy_version;
  ApplyLedger(std::move(plan));
  return absl::OkStatus();
}

absl::StatusOr<IdentityRecord> MemoryStore::GetIdentity(absl::string_view instance_id) {
  absl::ReaderMutexLock lock(&mu_);
  std::optional<size_t> at = PositionOf(instance_id);
  if (!at) return absl::NotFoundError(absl::StrCat("instance ", instance_id, " is unknown"));
  return identities_[*at];
}

absl::StatusOr<std::vector<IdentityRecord>> MemoryStore::ListIdentities(
    const IdentityFilter& filter) {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<IdentityRecord> out;
  const int64_t live = filter.live_at ? absl::ToUnixSeconds(*filter.live_at) : 0;
  for (auto it = identities_.rbegin(); it != identities_.rend() && out.size() < filter.limit;
       ++it) {
    if (!Matches(filter.agent, it->name) || !Matches(filter.principal, it->principal)) continue;
    if (filter.live_at && (it->revoked_sequence || absl::ToUnixSeconds(it->not_before) > live ||
                           absl::ToUnixSeconds(it->not_after) <= live)) {
      continue;
    }
    out.push_back(*it);
  }
  return out;
}

absl::StatusOr<revocation::Entry> MemoryStore::Revoke(revocation::Kind kind,
                                                      absl::string_view target,
                                                      absl::string_view reason, absl::Time now,
                                                      const RevocationAudit& audit,
                                                      absl::string_view revoked_by) {
  absl::MutexLock lock(&mu_);
  // The seeds the kind chooses, then every descendant (through revoked or expired ones).
  std::vector<bool> reached(identities_.size());
  std::vector<size_t> pending;
  if (kind == revocation::Kind::kAgent || kind == revocation::Kind::kPrincipal) {
    for (size_t i = 0; i < identities_.size(); ++i) {
      const IdentityRecord& r = identities_[i];
      if ((kind == revocation::Kind::kAgent ? r.name : r.principal) == target) pending.push_back(i);
    }
  } else {
    std::optional<size_t> at = PositionOf(target);
    if (!at) return absl::NotFoundError(absl::StrCat("instance ", target, " is unknown"));
    pending.push_back(*at);
  }
  for (size_t i : pending) reached[i] = true;
  while (!pending.empty()) {
    const size_t at = pending.back();
    pending.pop_back();
    auto children = children_at_.find(identities_[at].instance_id);
    if (children == children_at_.end()) continue;
    for (size_t child : children->second) {
      if (!reached[child]) {
        reached[child] = true;
        pending.push_back(child);
      }
    }
  }
  revocation::Entry entry{.kind = kind,
                          .target = std::string(target),
                          .reason = std::string(reason),
                          .revoked_at = now,
                          .expires_at = now,
                          .revoked_by = std::string(revoked_by)};
  // Of those, the unrevoked and unexpired ones, in insertion order.
  const int64_t now_seconds = absl::ToUnixSeconds(now);
  std::vector<size_t> revoked;
  for (size_t i = 0; i < identities_.size(); ++i) {
    const IdentityRecord& r = identities_[i];
    if (!reached[i] || r.revoked_sequence || absl::ToUnixSeconds(r.not_after) <= now_seconds) {
      continue;
    }
    revoked.push_back(i);
    entry.instances.push_back(r.instance_id);
    entry.expires_at = std::max(entry.expires_at, r.not_after);
  }
  if (revoked.empty()) return NothingToRevoke(kind, target);
  entry.sequence = last_sequence_ + 1;
  LedgerPlan plan;
  if (audit) {
    std::vector<IdentityRecord> records;
    records.reserve(revoked.size());
    for (size_t i : revoked) records.push_back(identities_[i]);
    TW_ASSIGN_OR_RETURN(LedgerAppend batch, audit(entry, records));
    TW_ASSIGN_OR_RETURN(plan, PlanLedger(batch));
  }
  last_sequence_ = entry.sequence;
  for (size_t i : revoked) {
    identities_[i].revoked_sequence = entry.sequence;
    identities_[i].revoked_at = ToMillis(now);
  }
  revocation::Entry stored = entry;
  stored.revoked_at = ToSeconds(entry.revoked_at);
  stored.expires_at = ToSeconds(entry.expires_at);
  revocations_.emplace(entry.sequence, std::move(stored));
  ApplyLedger(std::move(plan));
  return entry;
}

absl::StatusOr<std::vector<revocation::Entry>> MemoryStore::ListRevocations(int64_t after,
                                                                            size_t limit) {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<revocation::Entry> out;
  for (auto it = revocations_.upper_bound(after); it != revocations_.end() && out.size() < limit;
       ++it) {
    out.push_back(it->second);
  }
  return out;
}

absl::StatusOr<revocation::Entry> MemoryStore::GetRevocation(int64_t sequence) {
  absl::ReaderMutexLock lock(&mu_);
  auto it = revocations_.find(sequence);
  if (it == revocations_.end()) {
    return absl::NotFoundError(absl::StrCat("no revocation ", sequence));
  }
  return it->second;
}

absl::StatusOr<int64_t> MemoryStore::LastRevocationSequence() {
  absl::ReaderMutexLock lock(&mu_);
  return last_sequence_;
}

absl::StatusOr<size_t> MemoryStore::PruneRevocations(absl::Time now) {
  absl::MutexLock lock(&mu_);
  const int64_t cutoff = absl::ToUnixSeconds(now);
  return std::erase_if(revocations_, [cutoff](const auto& sequence_and_entry) {
    return absl::ToUnixSeconds(sequence_and_entry.second.expires_at) < cutoff;
  });
}

absl::StatusOr<int64_t> MemoryStore::AppendPolicy(absl::string_view source,
                                                  absl::string_view sha256_hex,
                                                  absl::Time created_at,
                                                  const LedgerAppend* audit) {
  absl::MutexLock lock(&mu_);
  TW_ASSIGN_OR_RETURN(LedgerPlan plan, PlanAudit(audit));
  const int64_t version = static_cast<int64_t>(policies_.size()) + 1;
  policies_.push_back(
      StoredPolicy{version, std::string(sha256_hex), ToSeconds(created_at), std::string(source)});
  ApplyLedger(std::move(plan));
  return version;
}

absl::StatusOr<StoredPolicy> MemoryStore::GetPolicy(int64_t version) {
  absl::ReaderMutexLock lock(&mu_);
  if (version == 0) {
    if (policies_.empty()) return absl::NotFoundError("no policy has been applied");
    return policies_.back();
  }
  if (version < 0 || version > static_cast<int64_t>(policies_.size())) {
    return absl::NotFoundError(absl::StrCat("policy version ", version, " does not exist"));
  }
  return policies_[version - 1];
}

absl::StatusOr<std::vector<StoredPolicy>> MemoryStore::ListPolicies() {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<StoredPolicy> out;
  for (const StoredPolicy& p : policies_)
    out.push_back({p.version, p.sha256_hex, p.created_at, {}});
  return out;
}

absl::Status MemoryStore::InsertToken(const TokenRecord& token, const LedgerAppend* audit) {
  absl::MutexLock lock(&mu_);
  if (tokens_.contains(token.id)) {
    return absl::AlreadyExistsError(absl::StrCat("token ", token.id, " exists"));
  }
  TW_ASSIGN_OR_RETURN(LedgerPlan plan, PlanAudit(audit));
  TokenRecord stored = token;
  stored.created_at = ToSeconds(token.created_at);
  if (token.expires_at) stored.expires_at = ToSeconds(*token.expires_at);
  stored.revoked_at.reset();
  tokens_.emplace(stored.id, std::move(stored));
  ApplyLedger(std::move(plan));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenRecord>> MemoryStore::ListTokens() {
  std::vector<TokenRecord> out;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [id, token] : tokens_) out.push_back(token);
  }
  std::sort(out.begin(), out.end(), [](const TokenRecord& a, const TokenRecord& b) {
    return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
  });
  return out;
}

absl::Status MemoryStore::PutFederation(const FederationRecord& record, const LedgerAppend* audit) {
  absl::MutexLock lock(&mu_);
  TW_ASSIGN_OR_RETURN(LedgerPlan plan, PlanAudit(audit));
  FederationRecord stored = record;
  if (record.refreshed_at) stored.refreshed_at = ToSeconds(*record.refreshed_at);
  federations_[record.trust_domain] = std::move(stored);
  ApplyLedger(std::move(plan));
  return absl::OkStatus();
}

absl::Status MemoryStore::UpdateFederatedBundle(absl::string_view trust_domain,
                                                absl::string_view bundle_json,
                                                absl::Time refreshed_at,
                                                const LedgerAppend* audit) {
  absl::MutexLock lock(&mu_);
  auto it = federations_.find(std::string(trust_domain));
  if (it == federations_.end()) return FederationNotFound(trust_domain);
  TW_ASSIGN_OR_RETURN(LedgerPlan plan, PlanAudit(audit));
  it->second.bundle_json = std::string(bundle_json);
  it->second.refreshed_at = ToSeconds(refreshed_at);
  ApplyLedger(std::move(plan));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<FederationRecord>> MemoryStore::ListFederations() {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<FederationRecord> out;
  for (const auto& [td, record] : federations_) out.push_back(record);
  return out;
}

absl::Status MemoryStore::DeleteFederation(absl::string_view trust_domain,
                                           const LedgerAppend* audit) {
  absl::MutexLock lock(&mu_);
  auto it = federations_.find(std::string(trust_domain));
  if (it == federations_.end()) return FederationNotFound(trust_domain);
  TW_ASSIGN_OR_RETURN(LedgerPlan plan, PlanAudit(audit));
  federations_.erase(it);
  ApplyLedger(std::move(plan));
  return absl::OkStatus();
}

absl::Status MemoryStore::RevokeToken(absl::string_view id, absl::Time now,
                                      const LedgerAppend* audit) {
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(id);
  if (it == tokens_.end()) return absl::NotFoundError(absl::StrCat("token ", id, " is unknown"));
  if (it->second.revoked_at) {
    return absl::FailedPreconditionError(absl::StrCat("token ", id, " is already revoked"));
  }
  TW_ASSIGN_OR_RETURN(LedgerPlan plan, PlanAudit(audit));
  it->second.revoked_at = ToSeconds(now);
  ApplyLedger(std::move(plan));
  return absl::OkStatus();
}

absl::StatusOr<LedgerAppended> MemoryStore::AppendLedger(const LedgerAppend& batch) {
  absl::MutexLock lock(&mu_);
  TW_ASSIGN_OR_RETURN(LedgerPlan plan, PlanLedger(batch));
  LedgerAppended out = plan.appended;
  ApplyLedger(std::move(plan));
  return out;
}

absl::Status MemoryStore::ReadLedgerTree(
    const std::function<absl::Status(uint64_t size, const ledger::NodeSource& nodes)>& fn) {
  uint64_t size = 0;
  {
    absl::ReaderMutexLock lock(&mu_);
    size = rows_.size();
  }
  const TreeSnapshot nodes(*this, size);
  return fn(size, nodes);
}

absl::StatusOr<std::vector<ledger::EntryRow>> MemoryStore::LedgerEntries(uint64_t start,
                                                                         uint64_t end) {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ledger::EntryRow> out;
  for (uint64_t i = start; i < std::min<uint64_t>(end, rows_.size()); ++i) out.push_back(rows_[i]);
  return out;
}

absl::StatusOr<ledger::EntryRow> MemoryStore::LedgerEntryById(absl::string_view event_id) {
  absl::ReaderMutexLock lock(&mu_);
  auto it = row_of_event_.find(event_id);
  if (it == row_of_event_.end()) {
    return absl::NotFoundError(absl::StrCat("event ", event_id, " is not in the ledger"));
  }
  return rows_[it->second];
}

absl::StatusOr<std::vector<ledger::EntryRow>> MemoryStore::QueryLedger(const LedgerQuery& query) {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ledger::EntryRow> out;
  for (const ledger::EntryRow& row : rows_) {
    if (out.size() >= query.limit) break;
    if (!Matches(query.instance, row.instance) || !Matches(query.caller, row.caller) ||
        !Matches(query.agent, row.agent) || !Matches(query.principal, row.principal) ||
        !Matches(query.resource, row.resource) || !Matches(query.action, row.action) ||
        !Matches(query.decision, row.decision) || !Matches(query.type, row.type)) {
      continue;
    }
    if (query.since_ms && row.time_ms < *query.since_ms) continue;
    if (query.until_ms && row.time_ms >= *query.until_ms) continue;
    out.push_back(row);
  }
  return out;
}

absl::StatusOr<ledger::SignerRecord> MemoryStore::LedgerSigner(const ledger::Hash& id) {
  absl::ReaderMutexLock lock(&mu_);
  auto it = signer_at_.find(id);
  if (it == signer_at_.end()) return absl::NotFoundError("ledger signer is unknown");
  return signers_[it->second].signer;
}

absl::Status MemoryStore::InsertTreeHead(const ledger::TreeHead& head) {
  absl::MutexLock lock(&mu_);
  tree_heads_.push_back(head);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ledger::TreeHead>> MemoryStore::LatestTreeHead() {
  absl::ReaderMutexLock lock(&mu_);
  std::optional<ledger::TreeHead> latest;
  for (const ledger::TreeHead& head : tree_heads_) {
    // A tie goes to the later insertion.
    if (!latest || !HeadBefore(head, *latest)) latest = head;
  }
  return latest;
}

absl::StatusOr<std::vector<ledger::TreeHead>> MemoryStore::ListTreeHeads(
    std::optional<uint64_t> tree_size) {
  std::vector<ledger::TreeHead> out;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const ledger::TreeHead& head : tree_heads_) {
      if (!tree_size || head.tree_size == *tree_size) out.push_back(head);
    }
  }
  std::stable_sort(out.begin(), out.end(), HeadBefore);
  return out;
}

absl::Status MemoryStore::ExportLedger(ledger::ExportHeader header, uint64_t start, uint64_t end,
                                       const LedgerSink& sink) {
  std::vector<ledger::StoredSigner> signers;
  std::vector<ledger::TreeHead> heads;
  {
    absl::ReaderMutexLock lock(&mu_);
    const uint64_t size = rows_.size();
    header.tree_size = size;
    header.start = std::min(start, size);
    header.end = std::clamp(end, header.start, size);
    signers = signers_;
    for (const ledger::TreeHead& head : tree_heads_) {
      if ((head.tree_size > header.start && head.tree_size <= header.end) ||
          (header.start == 0 && head.tree_size == 0)) {
        heads.push_back(head);
      }
    }
  }
  std::stable_sort(heads.begin(), heads.end(), HeadBefore);
  TW_RETURN_IF_ERROR(sink(header));
  for (const ledger::StoredSigner& signer : signers) TW_RETURN_IF_ERROR(sink(signer));
  for (const ledger::TreeHead& head : heads) TW_RETURN_IF_ERROR(sink(head));
  // Each entry, then the subtree hashes it completes, level by level: (l, j) is completed by
  // entry (j + 1) * 2^l - 1, so a reader can check it as soon as it can recompute it.
  for (uint64_t i = header.start; i < header.end; ++i) {
    ledger::EntryRow row;
    std::vector<ledger::NodeRecord> completed;
    {
      absl::ReaderMutexLock lock(&mu_);
      row = rows_[i];
      for (int l = 0; l < 64 && (i + 1) % (uint64_t{1} << l) == 0; ++l) {
        const ledger::NodeId id{l, ((i + 1) >> l) - 1};
        TW_ASSIGN_OR_RETURN(ledger::Hash hash, tree_.Node(id));
        completed.push_back({id, hash});
      }
    }
    TW_RETURN_IF_ERROR(sink(row));
    for (const ledger::NodeRecord& node : completed) TW_RETURN_IF_ERROR(sink(node));
  }
  return absl::OkStatus();
}

}  // namespace tw::store
