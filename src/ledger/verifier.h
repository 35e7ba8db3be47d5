// Offline verification of a ledger export: recomputes every leaf, subtree hash and tree
// head, checks every column against its entry and every signature, and names the first
// bad index. Entries are checked in chunks on every core; the tree is rebuilt in order.
// Not thread-safe (one per export stream).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "crypto/public_key.h"
#include "ledger/export.h"

namespace tw::core {
class X509Verifier;
}

namespace tw::ledger {

struct VerifyReport {
  uint64_t entries = 0;     // entries checked
  uint64_t tree_heads = 0;  // tree heads matched against the recomputed tree
  uint64_t signatures = 0;  // batch signatures verified
  std::string error;        // empty when the ledger is intact
  std::optional<uint64_t> first_bad_index;
  bool ok() const { return error.empty(); }
};

// What a ledger is checked against. The trust anchors come from outside what is
// verified: the copies in an export's header are compared with them, never trusted.
struct VerifyOptions {
  base::Bytes ledger_key;  // SPKI DER of the ledger key that signs tree heads and server events
  std::string bundle;      // the trust domain's bundle (SPIFFE JSON or PEM): agents' signers
  // Entries beyond the last signed tree head are accepted (normally a failure: a tail
  // deleted together with its tree heads would otherwise pass).
  bool allow_unsigned_tail = false;
  // A tree head saved earlier (and verified with `ledger_key`): the ledger must be at least
  // as long and hold exactly the entries it signed (RFC 9162 §8.1.2: the auditor's defence
  // against truncation and rewriting).
  std::optional<TreeHead> since;
  // Called by VerifyExport as entries are read: how many so far, of the tree size the
  // export's header gives (0 before it).
  std::function<void(uint64_t entries, uint64_t tree_size)> progress;
};

class LedgerVerifier {
 public:
  explicit LedgerVerifier(VerifyOptions options);
  ~LedgerVerifier();

  // Takes one record, in file order. Returns false once the ledger is known to be bad;
  // entries may be checked later, in a chunk, so a bad entry can surface a few calls on.
  bool Add(ExportRecord record);
  // Checks every record taken so far; false once the ledger is known to be bad.
  bool Flush();
  // The final checks (nothing missing at the end); returns the report.
  const VerifyReport& Finish();
  const VerifyReport& report() const { return report_; }

 private:
  struct Signer;
  struct EntryCheck;
  struct Chunk;
  bool Fail(std::optional<uint64_t> index, std::string error);
  bool AddHeader(const ExportHeader& header);
  bool AddSigner(const StoredSigner& signer);
  bool AddTreeHead(const TreeHead& head);
  bool AddNode(const NodeRecord& node);
  // Hands the records taken so far to the worker threads.
  void StartChunk();
  // Waits for the oldest chunk in flight and applies its results in order.
  bool FinishChunk();
  // The checks of entry `i` that need no other entry (run concurrently).
  EntryCheck CheckEntry(const EntryRow& row, uint64_t i) const;
  // The rest, in order: signature (verified once per batch), tree, subtree hashes, heads.
  static std::string SubjectError(const Event& event, const Signer& signer);
  bool CommitEntry(const EntryCheck& check,
                   const absl::flat_hash_map<std::string, bool>& signatures);

  const VerifyOptions options_;
  std::optional<ExportHeader> header_;
  std::optional<crypto::PublicKey> ledger_key_;
  Hash ledger_key_id_{};
  std::unique_ptr<core::X509Verifier> x509_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Signer>> signers_;  // by id
  std::multimap<uint64_t, TreeHead> pending_heads_;                          // by tree size
  absl::flat_hash_set<std::string> verified_batches_;      // signer id, message and signature
  std::string last_batch_;                                 // the one the previous entry used
  std::vector<std::variant<EntryRow, NodeRecord>> chunk_;  // taken, not yet handed over
  size_t chunk_entries_ = 0;
  CompactRange tree_;
  std::vector<std::pair<NodeId, Hash>> expected_nodes_;
  size_t next_node_ = 0;
  uint64_t verified_size_ = 0;  // entries below this are covered by a verified tree head
  uint64_t segment_end_ = 0;
  VerifyReport report_;
  bool failed_ = false;
  std::deque<std::unique_ptr<Chunk>> inflight_;  // last: their checks use the members above
};

// Reads and verifies a whole export stream.
VerifyReport VerifyExport(std::istream& in, VerifyOptions options);

}  // namespace tw::ledger
