// Signed tree heads: the ledger key's signature over RFC 9162 §4.10 TreeHeadDataV2.
// Thread-safe functions.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "base/bytes.h"
#include "crypto/public_key.h"
#include "crypto/signer.h"
#include "ledger/merkle.h"

namespace tw::ledger {

struct TreeHead {
  uint64_t tree_size = 0;
  int64_t timestamp_ms = 0;
  Hash root{};
  base::Bytes signature;

  bool operator==(const TreeHead&) const = default;
};

// uint64 timestamp || uint64 tree_size || uint8 32 || root || uint16 0 (no extensions).
base::Bytes TreeHeadData(const TreeHead& head);
// Signs head.tree_size/timestamp_ms/root into head.signature.
absl::Status SignTreeHead(const crypto::Signer& signer, TreeHead& head);
// Unauthenticated when the signature does not verify under `key`.
absl::Status VerifyTreeHead(const crypto::PublicKey& key, const TreeHead& head);
// base64url(SHA-256(SPKI DER)): the ledger key's id.
std::string LedgerKeyId(const crypto::PublicKey& key);

}  // namespace tw::ledger
