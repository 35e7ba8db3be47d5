// Offline verification of a ledger export: recomputes every leaf, subtree hash and tree
// head, checks every column against its entry and every signature, and names the first
// bad index. Not thread-safe (one per export stream).
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <string>

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

class LedgerVerifier {
 public:
  // `pinned_key`: when set, the ledger key (SPKI DER) the export must name.
  explicit LedgerVerifier(std::optional<base::Bytes> pinned_key = std::nullopt);
  ~LedgerVerifier();

  // Checks one record, in file order. Returns false once the ledger is known to be bad.
  bool Add(const ExportRecord& record);
  // The final checks (nothing missing at the end); returns the report.
  const VerifyReport& Finish();
  const VerifyReport& report() const { return report_; }

 private:
  struct Signer;
  bool Fail(std::optional<uint64_t> index, std::string error);
  bool AddHeader(const ExportHeader& header);
  bool AddSigner(const StoredSigner& signer);
  bool AddTreeHead(const TreeHead& head);
  bool AddEntry(const EntryRow& row);
  bool AddNode(const NodeRecord& node);
  bool CheckSubject(const EntryRow& row, const Event& event, const Signer& signer);

  std::optional<base::Bytes> pinned_key_;
  std::optional<ExportHeader> header_;
  std::optional<crypto::PublicKey> ledger_key_;
  Hash ledger_key_id_{};
  std::unique_ptr<core::X509Verifier> x509_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Signer>> signers_;  // by id
  std::multimap<uint64_t, TreeHead> pending_heads_;                          // by tree size
  absl::flat_hash_set<std::string> verified_batches_;
  CompactRange tree_;
  std::vector<std::pair<NodeId, Hash>> expected_nodes_;
  size_t next_node_ = 0;
  uint64_t verified_size_ = 0;  // entries below this are covered by a verified tree head
  uint64_t segment_end_ = 0;
  VerifyReport report_;
  bool failed_ = false;
};

// Reads and verifies a whole export stream.
VerifyReport VerifyExport(std::istream& in, std::optional<base::Bytes> pinned_key = std::nullopt);

}  // namespace tw::ledger
