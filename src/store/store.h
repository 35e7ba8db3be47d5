// The store interface: identities, the revocation log, policy versions, tokens and the
// audit ledger. Implementations are thread-safe; every mutation is durable when it returns
// OK. Times are kept to the second (an identity's revoked_at to the millisecond): a read
// returns what was written, truncated so.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/bytes.h"
#include "ledger/entry.h"
#include "ledger/export.h"
#include "ledger/merkle.h"
#include "ledger/tree_head.h"
#include "revocation/entry.h"

namespace tw::store {

// One agent instance and its current SVID.
struct IdentityRecord {
  std::string instance_id;
  std::string spiffe_id;
  std::string name;    // org/team/agent
  std::string parent;  // the parent's instance id; empty for a root agent
  std::string principal;
  int64_t policy_version = 0;
  int depth = 0;  // 0 for a root agent, parent's + 1 otherwise
  std::string serial_hex;
  std::vector<std::string> scopes;
  std::string trust_level;
  absl::Time not_before;
  absl::Time not_after;
  absl::Time created_at;
  std::optional<int64_t> revoked_sequence;  // set once revoked
  std::optional<absl::Time> revoked_at;     // when (ms precision); unset for records
                                            // revoked before 0.2

  bool operator==(const IdentityRecord&) const = default;
};

struct IdentityFilter {
  std::string agent;                  // org/team/agent; empty: any
  std::string principal;              // empty: any
  std::optional<absl::Time> live_at;  // only unrevoked instances valid at this time:
                                      // not_before <= live_at < not_after
  size_t limit = 1000;
};

struct StoredPolicy {
  int64_t version = 0;  // 1, 2, 3, ...
  std::string sha256_hex;
  absl::Time created_at;
  std::string source;  // as applied (TOML)
};

// A principal's API token; only a hash of the secret part is stored.
struct TokenRecord {
  std::string id;  // public token id
  std::string principal;
  base::Bytes secret_hash;  // SHA-256 of the secret part
  bool admin = false;
  absl::Time created_at;
  bool auditor = false;                  // may read the ledger and the audit queries; never write
  std::optional<absl::Time> expires_at;  // unset: does not expire
  std::optional<absl::Time> revoked_at;  // set once revoked
};

// A federation relationship (SPIFFE Federation §5.1: the foreign trust domain, its bundle
// endpoint and profile, never inferred) and the latest bundle fetched through it.
struct FederationRecord {
  std::string trust_domain;                // the foreign trust domain's name
  std::string endpoint_url;                // its bundle endpoint (https)
  std::string profile;                     // "https_web" or "https_spiffe"
  std::string endpoint_spiffe_id;          // https_spiffe: the SPIFFE ID the endpoint must present
  std::string bundle_json;                 // its latest bundle (SPIFFE format); empty before any
  std::optional<absl::Time> refreshed_at;  // when bundle_json was fetched or given
};

// One signed batch of ledger events to append. Entries' indexes are assigned by the store,
// in order; `events` are the decoded entries' events (for the query columns).
struct LedgerAppend {
  ledger::StoredSigner signer;
  std::vector<ledger::Entry> entries;
  std::vector<ledger::Event> events;
};

struct LedgerAppended {
  std::vector<uint64_t> indexes;  // one per entry
  uint64_t tree_size = 0;         // after the append
};

// Filters of a forensic query; empty strings and unset times match anything.
struct LedgerQuery {
  std::string instance;  // SPIFFE ID of the subject (an observation's: its signer)
  std::string caller;    // SPIFFE ID an observation observed
  std::string agent;     // org/team/agent
  std::string principal;
  std::string resource;
  std::string action;
  std::string decision;
  std::optional<int64_t> since_ms;  // inclusive
  std::optional<int64_t> until_ms;  // exclusive
  std::string type;
  size_t limit = 1000;
};

// Builds the ledger batch stored with a revocation, inside its transaction: from the entry
// (its sequence and instances) and the records of the instances it revoked, in the entry's
// order. An error aborts the revocation.
using RevocationAudit = std::function<absl::StatusOr<LedgerAppend>(
    const revocation::Entry& entry, const std::vector<IdentityRecord>& revoked)>;

// Receives the records of a ledger export, in file order.
using LedgerSink = std::function<absl::Status(const ledger::ExportRecord&)>;

class Store {
 public:
  virtual ~Store() = default;

  // Every mutation takes an optional `audit` batch of ledger events that is appended in
  // the same transaction: both are stored, or neither.

  // Inserts a new instance, unrevoked (the record's revoked_* fields are ignored).
  // AlreadyExists for a known instance id; FailedPrecondition when the parent is unknown or
  // revoked (checked atomically with the insert).
  virtual absl::Status InsertIdentity(const IdentityRecord& record,
                                      const LedgerAppend* audit = nullptr) = 0;
  // Records a renewed SVID: the serial, validity, scopes, trust level and policy version of
  // `renewed` replace those of its instance, provided the instance's certificate is still
  // `current_serial` (checked atomically: of two renewals by one certificate, one wins).
  // NotFound; FailedPrecondition when revoked or when `current_serial` is no longer current.
  virtual absl::Status RenewIdentity(const IdentityRecord& renewed,
                                     absl::string_view current_serial,
                                     const LedgerAppend* audit = nullptr) = 0;
  // NotFound for an unknown instance.
  virtual absl::StatusOr<IdentityRecord> GetIdentity(absl::string_view instance_id) = 0;
  // Matching instances, newest first.
  virtual absl::StatusOr<std::vector<IdentityRecord>> ListIdentities(
      const IdentityFilter& filter) = 0;

  // Appends a revocation with the next sequence. It covers the target's instances (an
  // instance or subtree: that instance; an agent name or principal: every instance of it)
  // and all their descendants, skipping those already revoked or expired at `now` (their
  // descendants are still reached). NotFound when an instance or subtree target is
  // unknown; FailedPrecondition, writing nothing (no sequence is used), when nothing is left
  // to revoke: no such agent name or principal, or every instance reached is already
  // revoked or expired. `revoked_by` is kept with the entry (Entry::revoked_by).
  virtual absl::StatusOr<revocation::Entry> Revoke(revocation::Kind kind, absl::string_view target,
                                                   absl::string_view reason, absl::Time now,
                                                   const RevocationAudit& audit = nullptr,
                                                   absl::string_view revoked_by = "") = 0;
  // The entry of `sequence`, with its revoked_by; NotFound when unknown or pruned.
  virtual absl::StatusOr<revocation::Entry> GetRevocation(int64_t sequence) = 0;
  // Entries with sequence > `after`, ascending, at most `limit`.
  virtual absl::StatusOr<std::vector<revocation::Entry>> ListRevocations(int64_t after,
                                                                         size_t limit) = 0;
  // The last sequence handed out (0 before any); pruning never lowers it.
  virtual absl::StatusOr<int64_t> LastRevocationSequence() = 0;
  // Deletes entries whose expires_at is before `now`; returns how many.
  virtual absl::StatusOr<size_t> PruneRevocations(absl::Time now) = 0;

  // Appends a policy version; returns its number.
  virtual absl::StatusOr<int64_t> AppendPolicy(absl::string_view source,
                                               absl::string_view sha256_hex, absl::Time created_at,
                                               const LedgerAppend* audit = nullptr) = 0;
  // NotFound for an unknown version; version 0 is the latest (NotFound when none).
  virtual absl::StatusOr<StoredPolicy> GetPolicy(int64_t version) = 0;
  // Every version, ascending, without sources.
  virtual absl::StatusOr<std::vector<StoredPolicy>> ListPolicies() = 0;

  // Inserts an unrevoked token (its revoked_at is ignored). AlreadyExists for a known id.
  virtual absl::Status InsertToken(const TokenRecord& token,
                                   const LedgerAppend* audit = nullptr) = 0;
  // Every token, by creation time, then id.
  virtual absl::StatusOr<std::vector<TokenRecord>> ListTokens() = 0;
  // Marks token `id` revoked at `now`. NotFound; FailedPrecondition when already revoked.
  virtual absl::Status RevokeToken(absl::string_view id, absl::Time now,
                                   const LedgerAppend* audit = nullptr) = 0;

  // Adds the relationship with `record.trust_domain`, or replaces it.
  virtual absl::Status PutFederation(const FederationRecord& record,
                                     const LedgerAppend* audit = nullptr) = 0;
  // Keeps `bundle_json`, fetched at `refreshed_at`, as the relationship's latest bundle.
  // NotFound when the relationship is gone (removed meanwhile: nothing comes back).
  virtual absl::Status UpdateFederatedBundle(absl::string_view trust_domain,
                                             absl::string_view bundle_json, absl::Time refreshed_at,
                                             const LedgerAppend* audit = nullptr) = 0;
  // Every relationship, by trust domain.
  virtual absl::StatusOr<std::vector<FederationRecord>> ListFederations() = 0;
  // Ends the relationship and forgets its bundle. NotFound for an unknown trust domain.
  virtual absl::Status DeleteFederation(absl::string_view trust_domain,
                                        const LedgerAppend* audit = nullptr) = 0;

  // Appends a batch to the ledger: leaves, subtree hashes and the signer, atomically.
  // An event id already stored (or earlier in the batch) with the same event bytes keeps its
  // index (a replayed batch is acknowledged again); with other bytes the batch fails with
  // AlreadyExists. InvalidArgument when entries and events differ in number.
  virtual absl::StatusOr<LedgerAppended> AppendLedger(const LedgerAppend& batch) = 0;
  // Runs `fn` on one consistent snapshot of the tree: its size and stored subtree hashes
  // (NotFound for a subtree not complete at that size). `fn` may call into the store; what
  // it appends is not in the snapshot.
  virtual absl::Status ReadLedgerTree(
      const std::function<absl::Status(uint64_t size, const ledger::NodeSource& nodes)>& fn) = 0;
  // Rows with start <= index < end, ascending.
  virtual absl::StatusOr<std::vector<ledger::EntryRow>> LedgerEntries(uint64_t start,
                                                                      uint64_t end) = 0;
  // NotFound for an unknown event id.
  virtual absl::StatusOr<ledger::EntryRow> LedgerEntryById(absl::string_view event_id) = 0;
  // Matching rows, ascending by index, at most query.limit.
  virtual absl::StatusOr<std::vector<ledger::EntryRow>> QueryLedger(const LedgerQuery& query) = 0;
  // The stored signer with `id`. NotFound.
  virtual absl::StatusOr<ledger::SignerRecord> LedgerSigner(const ledger::Hash& id) = 0;
  virtual absl::Status InsertTreeHead(const ledger::TreeHead& head) = 0;
  // The head of the largest tree size (the latest of those, the last inserted of equal
  // times); nullopt when none.
  virtual absl::StatusOr<std::optional<ledger::TreeHead>> LatestTreeHead() = 0;
  // Tree heads ascending by (tree size, time, insertion), those of `tree_size` only when
  // given.
  virtual absl::StatusOr<std::vector<ledger::TreeHead>> ListTreeHeads(
      std::optional<uint64_t> tree_size = std::nullopt) = 0;
  // Streams entries [start, min(end, size)) of one snapshot as an export segment: the
  // header (`header` completed with tree_size/start/end), every signer, the tree heads of
  // sizes in the segment (and of size 0 when `start` is 0), then each entry followed by the
  // subtree hashes it completes, the lower levels first. `sink` may call into the store.
  virtual absl::Status ExportLedger(ledger::ExportHeader header, uint64_t start, uint64_t end,
                                    const LedgerSink& sink) = 0;
};

// What the federation methods return for an unknown trust domain.
inline absl::Status FederationNotFound(absl::string_view trust_domain) {
  return absl::NotFoundError(
      absl::StrCat("no federation relationship with trust domain ", trust_domain));
}

// What Store::Revoke returns when nothing is left to revoke.
inline absl::Status NothingToRevoke(revocation::Kind kind, absl::string_view target) {
  return absl::FailedPreconditionError(
      absl::StrCat("nothing to revoke: ", revocation::KindName(kind), " ", target,
                   " has no live instance (none, or already revoked or expired)"));
}

}  // namespace tw::store
