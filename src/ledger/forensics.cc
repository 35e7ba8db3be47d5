// The ledger service's read side: tree heads, entry pages, export segments, forensic
// queries and traces.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "core/agent_name.h"
#include "core/spiffe_id.h"
#include "ledger/entry.h"
#include "ledger/merkle.h"
#include "ledger/service.h"

namespace tw::ledger {
namespace {

constexpr int kMaxChain = 64;  // hops followed up a trace's parent chain

// The parent's SPIFFE ID of `record`; empty for a root agent or an unknown parent.
std::string ParentOf(store::Store& store, const store::IdentityRecord& record) {
  if (record.parent.empty()) return "";
  auto parent = store.GetIdentity(record.parent);
  return parent.ok() ? parent->spiffe_id : "";
}

}  // namespace

absl::StatusOr<TreeHead> Service::TreeHeadOfSize(uint64_t tree_size) {
  TW_ASSIGN_OR_RETURN(std::vector<TreeHead> heads, store_.ListTreeHeads(tree_size));
  if (heads.empty()) return absl::NotFoundError(absl::StrCat("no tree head of size ", tree_size));
  return heads.back();
}

absl::StatusOr<std::vector<TreeHead>> Service::TreeHeads() { return store_.ListTreeHeads(); }

absl::StatusOr<EntryPage> Service::Entries(uint64_t start, uint64_t end) {
  EntryPage page;
  TW_ASSIGN_OR_RETURN(page.rows, store_.LedgerEntries(start, end));
  TW_RETURN_IF_ERROR(store_.ReadLedgerTree([&page](uint64_t size, const NodeSource&) {
    page.tree_size = size;
    return absl::OkStatus();
  }));
  return page;
}

absl::StatusOr<std::string> Service::Export(uint64_t start, uint64_t end) {
  std::string out;
  ExportWriter writer([&out](base::ByteView b) {
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
    return absl::OkStatus();
  });
  TW_RETURN_IF_ERROR(
      store_.ExportLedger(ExportHeaderTemplate(), start, end,
                          [&writer](const ExportRecord& record) { return writer.Write(record); }));
  return out;
}

absl::StatusOr<std::vector<EntryRow>> Service::Query(store::LedgerQuery query) {
  for (std::string* id : {&query.instance, &query.caller}) {
    if (id->empty()) continue;
    const absl::Status valid = absl::StartsWith(*id, "spiffe://")
                                   ? core::SpiffeId::FromString(*id).status()
                                   : core::CheckInstanceId(*id);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          base::Quote(*id), " is neither an instance id nor a SPIFFE ID: ", valid.message()));
    }
    if (absl::StartsWith(*id, "spiffe://")) continue;
    auto record = store_.GetIdentity(*id);
    if (absl::IsNotFound(record.status())) return std::vector<EntryRow>{};
    TW_RETURN_IF_ERROR(record.status());
    *id = record->spiffe_id;
  }
  return store_.QueryLedger(query);
}

absl::StatusOr<Trace> Service::TraceEvent(absl::string_view event_id) {
  if (event_id.empty() || event_id.size() > 64 ||
      event_id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != event_id.npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("event id ", base::Quote(event_id), " is malformed"));
  }
  Trace trace;
  TW_ASSIGN_OR_RETURN(trace.row, store_.LedgerEntryById(event_id));
  TW_ASSIGN_OR_RETURN(Entry entry, DecodeEntry(trace.row.entry));
  TW_ASSIGN_OR_RETURN(trace.event, DecodeEvent(entry.event));
  trace.principal = trace.event.principal;
  int64_t policy_version = trace.event.policy_version;
  if (auto id = core::SpiffeId::FromString(trace.event.instance);
      id.ok() && !id->segments().empty()) {
    std::string at(id->segments().back());
    for (int hops = 0; !at.empty() && hops < kMaxChain; ++hops) {
      auto record = store_.GetIdentity(at);
      if (!record.ok()) break;
      if (trace.principal.empty()) trace.principal = record->principal;
      if (policy_version == 0) policy_version = record->policy_version;
      at = record->parent;
      std::string parent = ParentOf(store_, *record);
      trace.chain.push_back(TraceHop{*std::move(record), std::move(parent)});
    }
  }
  if (policy_version > 0) {
    if (auto p = store_.GetPolicy(policy_version); p.ok()) {
      p->source.clear();
      trace.policy = *std::move(p);
    }
  }
  auto head = LatestTreeHead();
  if (!head.ok() || head->tree_size <= trace.row.index) {
    TW_ASSIGN_OR_RETURN(head, SignTreeHead());
  }
  trace.head = *head;
  TW_ASSIGN_OR_RETURN(trace.audit_path, InclusionProof(trace.row.index, head->tree_size));
  trace.verified = VerifyTreeHead(public_key(), *head).ok() &&
                   VerifyInclusion(trace.row.index, head->tree_size, LeafHash(trace.row.entry),
                                   trace.audit_path, head->root)
                       .ok();
  return trace;
}

}  // namespace tw::ledger
