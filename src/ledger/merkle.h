// The Merkle tree of RFC 9162 §2.1 (Certificate Transparency v2): hashing, proofs built
// from stored subtree hashes, proof verification, and an incremental tree. Free functions
// are thread-safe; MemoryTree and CompactRange are values without internal locking.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "base/bytes.h"
#include "crypto/digest.h"

namespace tw::ledger {

using Hash = crypto::Sha256Digest;

// RFC 9162 §2.1.1: MTH({}) = SHA-256(), leaves SHA-256(0x00 || d), nodes
// SHA-256(0x01 || left || right).
Hash EmptyHash();
Hash LeafHash(base::ByteView leaf);
Hash NodeHash(const Hash& left, const Hash& right);

// A perfect subtree: level l, index j covers leaves [j * 2^l, (j + 1) * 2^l).
struct NodeId {
  int level = 0;
  uint64_t index = 0;
  bool operator==(const NodeId&) const = default;
};

// Stored subtree hashes, e.g. a database table. Node returns NotFound for a node that is
// not (yet) complete.
class NodeSource {
 public:
  virtual ~NodeSource() = default;
  virtual absl::StatusOr<Hash> Node(NodeId id) const = 0;
};

// MTH(D[begin:end]) computed from perfect subtrees. InvalidArgument when begin >= end.
absl::StatusOr<Hash> RangeHash(const NodeSource& nodes, uint64_t begin, uint64_t end);
// The tree hash of the first `size` leaves (EmptyHash() for 0).
absl::StatusOr<Hash> RootHash(const NodeSource& nodes, uint64_t size);
// RFC 9162 §2.1.3.1 PATH(index, D[size]). InvalidArgument unless index < size.
absl::StatusOr<std::vector<Hash>> InclusionProof(const NodeSource& nodes, uint64_t index,
                                                 uint64_t size);
// RFC 9162 §2.1.4.1 PROOF(first, D[second]); empty when first is 0 or equal to second.
// InvalidArgument when first > second.
absl::StatusOr<std::vector<Hash>> ConsistencyProof(const NodeSource& nodes, uint64_t first,
                                                   uint64_t second);

// The root `proof` gives for `leaf` at `index` in a tree of `size` leaves: RFC 9162
// §2.1.3.2 without the final comparison. InvalidArgument when the proof's length is wrong.
absl::StatusOr<Hash> RootFromInclusionProof(uint64_t index, uint64_t size, const Hash& leaf,
                                            std::span<const Hash> proof);
// RFC 9162 §2.1.3.2. OK when `proof` shows `leaf` (a leaf hash) at `index` of the tree of
// `size` leaves with root `root`; InvalidArgument otherwise.
absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf,
                             std::span<const Hash> proof, const Hash& root);
// RFC 9162 §2.1.4.2. OK when the tree of `second` leaves with `second_root` extends the one
// of `first` leaves with `first_root`; InvalidArgument otherwise.
absl::Status VerifyConsistency(uint64_t first, uint64_t second, const Hash& first_root,
                               const Hash& second_root, std::span<const Hash> proof);

// The right edge of a growing tree: the roots of its perfect subtrees, O(log n) memory.
class CompactRange {
 public:
  uint64_t size() const { return size_; }
  // Appends a leaf hash; `completed` (if not null) receives every perfect subtree this
  // append completes, the leaf itself first.
  void Append(const Hash& leaf, std::vector<std::pair<NodeId, Hash>>* completed = nullptr);
  // MTH of the leaves appended so far.
  Hash Root() const;
  // Restores the state of a tree of `size` leaves from its stored nodes.
  static absl::StatusOr<CompactRange> FromNodes(const NodeSource& nodes, uint64_t size);

 private:
  uint64_t size_ = 0;
  std::vector<std::pair<NodeId, Hash>> edge_;  // left to right, levels decreasing
};

// A whole tree in memory, every perfect subtree kept: a NodeSource for small trees
// (a signed batch, tests).
class MemoryTree final : public NodeSource {
 public:
  MemoryTree() = default;
  explicit MemoryTree(std::span<const Hash> leaves);
  void Append(const Hash& leaf);
  uint64_t size() const { return levels_.empty() ? 0 : levels_[0].size(); }
  Hash Root() const;
  absl::StatusOr<Hash> Node(NodeId id) const override;

 private:
  std::vector<std::vector<Hash>> levels_;
};

}  // namespace tw::ledger
