// The audit ledger as the server runs it: checks and appends agent-signed batches, signs
// the server's own lifecycle events and tree heads with the ledger key (separate from the
// CA key), and builds proofs from the store. Transport-free. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "core/x509_verifier.h"
#include "crypto/signer.h"
#include "ledger/event.h"
#include "ledger/export.h"
#include "ledger/tree_head.h"
#include "server/rate_limiter.h"
#include "store/store.h"

namespace tw::server {

struct LedgerServiceOptions {
  const base::Clock* clock = &base::Clock::System();
  // Agent events appended per second and per instance (a burst of ten seconds' worth);
  // 0 = unlimited.
  double events_per_instance = 0;
};

class LedgerService {
 public:
  // `key` signs tree heads and server events (ECDSA P-256). `store` must outlive this.
  LedgerService(store::Store& store, std::unique_ptr<crypto::Signer> key, std::string trust_domain,
                std::string bundle_json, LedgerServiceOptions options = {});

  // A lifecycle event signed by the server, ready to pass to a store mutation; `id` and
  // `time_ms` are filled in when empty.
  absl::StatusOr<store::LedgerAppend> ServerEvent(ledger::Event event) const;

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
  RateLimiter instance_limiter_;
};

}  // namespace tw::server
