#include "ledger/merkle.h"

#include <bit>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace tw::ledger {
namespace {

constexpr uint8_t kLeafPrefix = 0x00;
constexpr uint8_t kNodePrefix = 0x01;

// The largest power of two smaller than n (n > 1), the split point k of RFC 9162 §2.1.1.
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

absl::Status Path(const NodeSource& nodes, uint64_t m, uint64_t begin, uint64_t end,
                  std::vector<Hash>* out) {
  uint64_t n = end - begin;
  if (n == 1) return absl::OkStatus();
  uint64_t k = SplitPoint(n);
  if (m < k) {
    TW_RETURN_IF_ERROR(Path(nodes, m, begin, begin + k, out));
    TW_ASSIGN_OR_RETURN(Hash h, RangeHash(nodes, begin + k, end));
    out->push_back(h);
  } else {
    TW_RETURN_IF_ERROR(Path(nodes, m - k, begin + k, end, out));
    TW_ASSIGN_OR_RETURN(Hash h, RangeHash(nodes, begin, begin + k));
    out->push_back(h);
  }
  return absl::OkStatus();
}

absl::Status SubProof(const NodeSource& nodes, uint64_t m, uint64_t begin, uint64_t end, bool whole,
                      std::vector<Hash>* out) {
  uint64_t n = end - begin;
  if (m == n) {
    if (!whole) {
      TW_ASSIGN_OR_RETURN(Hash h, RangeHash(nodes, begin, end));
      out->push_back(h);
    }
    return absl::OkStatus();
  }
  uint64_t k = SplitPoint(n);
  if (m <= k) {
    TW_RETURN_IF_ERROR(SubProof(nodes, m, begin, begin + k, whole, out));
    TW_ASSIGN_OR_RETURN(Hash h, RangeHash(nodes, begin + k, end));
    out->push_back(h);
  } else {
    TW_RETURN_IF_ERROR(SubProof(nodes, m - k, begin + k, end, false, out));
    TW_ASSIGN_OR_RETURN(Hash h, RangeHash(nodes, begin, begin + k));
    out->push_back(h);
  }
  return absl::OkStatus();
}

bool Lsb(uint64_t x) { return (x & 1) != 0; }

// RFC 9162 §2.1.3.2 / §2.1.4.2: right-shift both until LSB(fn) is set or fn is 0.
void SkipRightEdge(uint64_t& fn, uint64_t& sn) {
  do {
    fn >>= 1;
    sn >>= 1;
  } while (!Lsb(fn) && fn != 0);
}

}  // namespace

Hash EmptyHash() { return crypto::Sha256Concat({}); }

Hash LeafHash(base::ByteView leaf) { return crypto::Sha256Concat({{&kLeafPrefix, 1}, leaf}); }

Hash NodeHash(const Hash& left, const Hash& right) {
  return crypto::Sha256Concat({{&kNodePrefix, 1}, left, right});
}

absl::StatusOr<Hash> RangeHash(const NodeSource& nodes, uint64_t begin, uint64_t end) {
  if (begin >= end) return absl::InvalidArgumentError("merkle: empty range");
  uint64_t n = end - begin;
  if (std::has_single_bit(n) && begin % n == 0) {
    return nodes.Node({std::countr_zero(n), begin / n});
  }
  // Unaligned powers of two split in halves; everything else at RFC 9162's k.
  uint64_t k = std::has_single_bit(n) ? n / 2 : SplitPoint(n);
  TW_ASSIGN_OR_RETURN(Hash left, RangeHash(nodes, begin, begin + k));
  TW_ASSIGN_OR_RETURN(Hash right, RangeHash(nodes, begin + k, end));
  return NodeHash(left, right);
}

absl::StatusOr<Hash> RootHash(const NodeSource& nodes, uint64_t size) {
  if (size == 0) return EmptyHash();
  return RangeHash(nodes, 0, size);
}

absl::StatusOr<std::vector<Hash>> InclusionProof(const NodeSource& nodes, uint64_t index,
                                                 uint64_t size) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("index ", index, " is not below the tree size ", size));
  }
  std::vector<Hash> out;
  TW_RETURN_IF_ERROR(Path(nodes, index, 0, size, &out));
  return out;
}

absl::StatusOr<std::vector<Hash>> ConsistencyProof(const NodeSource& nodes, uint64_t first,
                                                   uint64_t second) {
  if (first > second) {
    return absl::InvalidArgumentError(
        absl::StrCat("first size ", first, " is larger than the second ", second));
  }
  std::vector<Hash> out;
  if (first == 0 || first == second) return out;
  TW_RETURN_IF_ERROR(SubProof(nodes, first, 0, second, true, &out));
  return out;
}

absl::StatusOr<Hash> RootFromInclusionProof(uint64_t index, uint64_t size, const Hash& leaf,
                                            std::span<const Hash> proof) {
  if (index >= size) return absl::InvalidArgumentError("inclusion: index outside the tree");
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf;
  for (const Hash& p : proof) {
    if (sn == 0) return absl::InvalidArgumentError("inclusion: proof too long");
    if (Lsb(fn) || fn == sn) {
      r = NodeHash(p, r);
      if (!Lsb(fn)) SkipRightEdge(fn, sn);
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::InvalidArgumentError("inclusion: proof too short");
  return r;
}

absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf,
                             std::span<const Hash> proof, const Hash& root) {
  TW_ASSIGN_OR_RETURN(Hash r, RootFromInclusionProof(index, size, leaf, proof));
  if (r != root) return absl::InvalidArgumentError("inclusion: root mismatch");
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t first, uint64_t second, const Hash& first_root,
                               const Hash& second_root, std::span<const Hash> proof) {
  if (first > second) return absl::InvalidArgumentError("consistency: first > second");
  if (first == second || first == 0) {
    if (!proof.empty()) return absl::InvalidArgumentError("consistency: proof must be empty");
    if (first == second && first_root != second_root) {
      return absl::InvalidArgumentError("consistency: roots differ at the same size");
    }
    return absl::OkStatus();
  }
  if (proof.empty()) return absl::InvalidArgumentError("consistency: empty proof");
  std::vector<Hash> path;
  path.reserve(proof.size() + 1);
  if (std::has_single_bit(first)) path.push_back(first_root);
  path.insert(path.end(), proof.begin(), proof.end());
  uint64_t fn = first - 1;
  uint64_t sn = second - 1;
  while (Lsb(fn)) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return absl::InvalidArgumentError("consistency: proof too long");
    if (Lsb(fn) || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      if (!Lsb(fn)) SkipRightEdge(fn, sn);
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::InvalidArgumentError("consistency: proof too short");
  if (fr != first_root || sr != second_root) {
    return absl::InvalidArgumentError("consistency: root mismatch");
  }
  return absl::OkStatus();
}

void CompactRange::Append(const Hash& leaf, std::vector<std::pair<NodeId, Hash>>* completed) {
  NodeId id{0, size_};
  Hash h = leaf;
  if (completed != nullptr) completed->emplace_back(id, h);
  while (!edge_.empty() && edge_.back().first.level == id.level) {
    h = NodeHash(edge_.back().second, h);
    id = NodeId{id.level + 1, id.index / 2};
    edge_.pop_back();
    if (completed != nullptr) completed->emplace_back(id, h);
  }
  edge_.emplace_back(id, h);
  ++size_;
}

Hash CompactRange::Root() const {
  if (edge_.empty()) return EmptyHash();
  Hash r = edge_.back().second;
  for (size_t i = edge_.size() - 1; i-- > 0;) r = NodeHash(edge_[i].second, r);
  return r;
}

absl::StatusOr<CompactRange> CompactRange::FromNodes(const NodeSource& nodes, uint64_t size) {
  CompactRange out;
  out.size_ = size;
  uint64_t begin = 0;
  for (int level = 63; level >= 0; --level) {
    uint64_t width = uint64_t{1} << level;
    if ((size & width) == 0) continue;
    NodeId id{level, begin / width};
    TW_ASSIGN_OR_RETURN(Hash h, nodes.Node(id));
    out.edge_.emplace_back(id, h);
    begin += width;
  }
  return out;
}

MemoryTree::MemoryTree(std::span<const Hash> leaves) {
  for (const Hash& h : leaves) Append(h);
}

void MemoryTree::Append(const Hash& leaf) {
  if (levels_.empty()) levels_.emplace_back();
  levels_[0].push_back(leaf);
  for (size_t l = 0; levels_[l].size() % 2 == 0; ++l) {
    if (levels_.size() == l + 1) levels_.emplace_back();
    const auto& below = levels_[l];
    levels_[l + 1].push_back(NodeHash(below[below.size() - 2], below.back()));
  }
}

Hash MemoryTree::Root() const {
  auto root = RootHash(*this, size());
  TW_CHECK(root.ok());
  return *root;
}

absl::StatusOr<Hash> MemoryTree::Node(NodeId id) const {
  if (id.level < 0 || static_cast<size_t>(id.level) >= levels_.size() ||
      id.index >= levels_[id.level].size()) {
    return absl::NotFoundError(absl::StrCat("merkle: no node ", id.level, "/", id.index));
  }
  return levels_[id.level][id.index];
}

}  // namespace tw::ledger
