// Ledger entries (the leaves of the tree), signed batches of events, and the stored row
// with its query columns (docs/ledger.md "Signing a batch", "Leaves"). Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/bytes.h"
#include "crypto/public_key.h"
#include "crypto/signer.h"
#include "ledger/event.h"
#include "ledger/merkle.h"

namespace tw::ledger {

enum class SignerKind : uint8_t { kSvid = 1, kLedgerKey = 2 };

// The signer of a batch as stored: a certificate (X.509-SVID) or a public key (SPKI).
struct SignerRecord {
  SignerKind kind = SignerKind::kSvid;
  base::Bytes der;
  Hash id() const { return crypto::Sha256Concat({der}); }
};

struct Entry {
  uint64_t index = 0;
  SignerKind signer_kind = SignerKind::kSvid;
  Hash signer_id{};
  uint16_t batch_size = 1;
  uint16_t batch_position = 0;
  std::vector<Hash> batch_path;
  base::Bytes signature;
  std::string event;  // canonical event bytes

  bool operator==(const Entry&) const = default;
};

// 128 events: a batch path then has at most 7 hashes, within its one-byte length.
inline constexpr size_t kMaxBatch = 128;

base::Bytes EncodeEntry(const Entry& entry);
// Strict inverse of EncodeEntry. InvalidArgument for anything else.
absl::StatusOr<Entry> DecodeEntry(base::ByteView bytes);

// The message a writer signs for `events`: "trustwarden-ledger-batch-v1" 0x00 uint32(n) R,
// R the RFC 9162 tree hash over the events' leaf hashes.
base::Bytes BatchMessage(uint32_t count, const Hash& root);
// The Merkle root and tree of a batch of event bytes.
MemoryTree BatchTree(const std::vector<std::string>& events);
// Signs `events` as one batch. InvalidArgument for an empty or oversized batch.
absl::StatusOr<base::Bytes> SignBatch(const crypto::Signer& signer,
                                      const std::vector<std::string>& events);
// The batch message `entry` claims to be part of (its event, position and path).
absl::StatusOr<base::Bytes> EntryBatchMessage(const Entry& entry);
// Checks `signature` over a batch message with `key` (ECDSA with the key's hash).
// Unauthenticated when it does not verify.
absl::Status VerifyBatchSignature(const crypto::PublicKey& key, base::ByteView message,
                                  base::ByteView signature);

// A stored ledger row: the entry and the columns derived from it for queries.
struct EntryRow {
  uint64_t index = 0;
  std::string event_id;
  int64_t time_ms = 0;
  std::string type;
  std::string instance;
  std::string agent;
  std::string principal;
  std::string resource;
  std::string action;
  std::string decision;
  std::string caller;  // an observation's observed caller, or the agent that asked the server
  Hash signer_id{};
  base::Bytes entry;

  bool operator==(const EntryRow&) const = default;
};

// The row of `entry` (whose event has been decoded as `event`).
EntryRow RowOf(const Entry& entry, const Event& event);
// True when the columns of `row` (all but its index and entry bytes) are those RowOf
// gives for `entry` and `event`.
bool ColumnsMatch(const EntryRow& row, const Entry& entry, const Event& event);

}  // namespace tw::ledger
