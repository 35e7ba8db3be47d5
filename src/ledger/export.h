// Ledger export files (docs/ledger.md "Export files"): a faithful dump of the stored
// ledger rows, written and read as a stream of records. Not thread-safe (one per stream).
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "base/bytes.h"
#include "ledger/entry.h"
#include "ledger/merkle.h"
#include "ledger/tree_head.h"

namespace tw::ledger {

// Starts a segment: entries [start, end) of a ledger of `tree_size` entries.
struct ExportHeader {
  std::string trust_domain;
  std::string bundle_json;  // the SPIFFE bundle that signer certificates chain to
  base::Bytes ledger_key;   // SPKI DER of the key that signs tree heads and server events
  uint64_t tree_size = 0;
  uint64_t start = 0;
  uint64_t end = 0;

  bool operator==(const ExportHeader&) const = default;
};

// A stored signer row: its id column and contents.
struct StoredSigner {
  Hash id{};
  SignerRecord signer;
};

// A stored subtree hash.
struct NodeRecord {
  NodeId id;
  Hash hash{};

  bool operator==(const NodeRecord&) const = default;
};

using ExportRecord = std::variant<ExportHeader, StoredSigner, TreeHead, EntryRow, NodeRecord>;

// Serializes records; the first call also writes the file magic.
class ExportWriter {
 public:
  using Sink = std::function<absl::Status(base::ByteView)>;
  explicit ExportWriter(Sink sink) : sink_(std::move(sink)) {}
  absl::Status Write(const ExportRecord& record);

 private:
  Sink sink_;
  bool started_ = false;
};

// The file magic, also accepted at the start of every later segment.
inline constexpr char kExportMagic[] = "TWLEDGER1\n";

// Parses records from `in`. InvalidArgument for a malformed file.
class ExportReader {
 public:
  explicit ExportReader(std::istream& in) : in_(in) {}
  // The next record; nullopt at the end of the stream.
  absl::StatusOr<std::optional<ExportRecord>> Next();

 private:
  std::istream& in_;
  std::string body_;
  bool started_ = false;
};

}  // namespace tw::ledger
