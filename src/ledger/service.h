// The audit ledger as the server runs it: checks and appends agent-signed batches, signs
// the server's own lifecycle events and tree heads with the ledger key (separate from the
// CA key), builds proofs from the store and answers forensic queries. Transport-free.
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "base/rate_limiter.h"
#include "core/x509_verifier.h"
#include "crypto/signer.h"
#include "ledger/event.h"
#include "ledger/export.h"
#include "ledger/tree_head.h"
#include "store/store.h"

namespace tw::ledger {

// One instance in a trace's chain of custody.
struct TraceHop {
  store::IdentityRecord record;
  std::string parent_spiffe_id;  // empty for a root agent
};

// GET /v1/audit/trace/{event_id}: the event, who stood behind it, and its proof.
struct Trace {
  EntryRow row;
  Event event;
  std::vector<TraceHop> chain;  // the subject instance, then its parents up to the root agent
  std::string principal;        // the event's, else the subject instance's
  std::optional<store::StoredPolicy> policy;  // the version in force (without its source)
  TreeHead head;                              // a signed head covering the entry
  std::vector<Hash> audit_path;               // RFC 9162 inclusion proof under `head`
  bool verified = false;                      // head signature and proof both check
};

// A page of raw entries with the tree size it was read against.
struct EntryPage {
  std::vector<EntryRow> rows;
  uint64_t tree_size = 0;
};

struct ServiceOptions {
  const base::Clock* clock = &base::Clock::System();
  // Agent events appended per second and per instance (a burst of ten seconds' worth);
  // 0 = unlimited.
  double events_per_instance = 0;
};

class Service {
 public:
  // `key` signs tree heads and server events (ECDSA P-256). `store` must outlive this.
  Service(store::Store& store, std::unique_ptr<crypto::Signer> key, std::string trust_domain,
          std::string bundle_json, ServiceOptions options = {});

  // A lifecycle event signed by the server, ready to pass to a store mutation; `id` and
  // `time_ms` are filled in when empty.
  absl::StatusOr<store::LedgerAppend> ServerEvent(ledger::Event event) const;
  // Several, as one batch under one signature (InvalidArgument when empty).
  absl::StatusOr<store::LedgerAppend> ServerEvents(std::vector<ledger::Event> events) const;

  // POST /v1/ledger/events from `svid` (verified) whose leaf certificate is `leaf_der`:
  // `events` are base64url event bytes signed together by `signature`. When the signer's
  // instance was revoked at `revoked_at`, only events dated before it are admitted (a
  // spool written before the revocation). InvalidArgument for a malformed batch or event,
  // or a subject that is not the signer; PermissionDenied for an event dated after the
  // revocation; Unauthenticated when the signature does not verify; AlreadyExists for a
  // reused id; ResourceExhausted past the instance's rate.
  absl::StatusOr<store::LedgerAppended> AppendSigned(
      const core::VerifiedX509Svid& svid, base::ByteView leaf_der,
      const std::vector<std::string>& events, absl::string_view signature,
      std::optional<absl::Time> revoked_at = std::nullopt);

  // Signs and stores a tree head of the current tree.
  absl::StatusOr<ledger::TreeHead> SignTreeHead();
  // The same when the tree grew since the last head; returns whether it signed.
  absl::StatusOr<bool> SignIfGrown();
  // The latest stored head; NotFound when none.
  absl::StatusOr<ledger::TreeHead> LatestTreeHead();

  // RFC 9162 proofs over the stored tree. InvalidArgument for sizes beyond the tree.
  absl::StatusOr<std::vector<ledger::Hash>> InclusionProof(uint64_t index, uint64_t size);
  absl::StatusOr<std::vector<ledger::Hash>> ConsistencyProof(uint64_t first, uint64_t second);

  // The header every export segment starts with (tree size and range left to the store).
  ledger::ExportHeader ExportHeaderTemplate() const;
  // The latest head of `tree_size`. NotFound when none was signed at that size.
  absl::StatusOr<TreeHead> TreeHeadOfSize(uint64_t tree_size);
  // Every stored head, ascending by (size, time).
  absl::StatusOr<std::vector<TreeHead>> TreeHeads();
  // Entries [start, end) and the current tree size.
  absl::StatusOr<EntryPage> Entries(uint64_t start, uint64_t end);
  // The bytes of an export segment of entries [start, end) (ledger/export.h).
  absl::StatusOr<std::string> Export(uint64_t start, uint64_t end);
  // Matching entries; `instance` and `caller` may name an instance by its id instead of its
  // SPIFFE ID (an unknown id matches nothing).
  absl::StatusOr<std::vector<EntryRow>> Query(store::LedgerQuery query);
  // The trace of event `event_id`. A head covering the entry is signed first when none
  // does yet, so that the trace always carries a proof. InvalidArgument for a malformed
  // id; NotFound.
  absl::StatusOr<Trace> TraceEvent(absl::string_view event_id);
  const crypto::PublicKey& public_key() const { return key_->public_key(); }
  const std::string& key_id() const { return key_id_; }

 private:
  store::Store& store_;
  std::unique_ptr<crypto::Signer> key_;
  const std::string trust_domain_;
  const std::string bundle_json_;
  const base::Clock* clock_;
  const std::string key_id_;
  ledger::StoredSigner signer_;
  base::RateLimiter instance_limiter_;
};

}  // namespace tw::ledger
