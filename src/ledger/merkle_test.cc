#include "ledger/merkle.h"

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace tw::ledger {
namespace {

Hash FromHex(const std::string& hex) {
  Hash h{};
  for (size_t i = 0; i < 32; ++i)
    h[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return h;
}

std::vector<Hash> HashList(const std::string& field) {
  std::vector<Hash> out;
  if (field == "-") return out;
  for (absl::string_view h : absl::StrSplit(field, ',')) out.push_back(FromHex(std::string(h)));
  return out;
}

struct Vectors {
  std::vector<base::Bytes> leaves;
  std::map<uint64_t, Hash> roots;
  std::map<std::pair<uint64_t, uint64_t>, std::vector<Hash>> inclusion, consistency;
};

// testdata/merkle/rfc9162_vectors.txt: computed by an independent implementation.
const Vectors& LoadVectors() {
  static const Vectors* v = [] {
    auto* out = new Vectors;
    std::ifstream in(TW_TESTDATA_DIR "/merkle/rfc9162_vectors.txt");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream f(line);
      std::string kind, a, b, c;
      f >> kind >> a >> b >> c;
      if (kind == "leaf") {
        base::Bytes d;
        for (size_t i = 0; b != "-" && i < b.size(); i += 2) {
          d.push_back(static_cast<uint8_t>(std::stoi(b.substr(i, 2), nullptr, 16)));
        }
        out->leaves.push_back(d);
      } else if (kind == "root") {
        out->roots[std::stoull(a)] = FromHex(b);
      } else if (kind == "inclusion") {
        out->inclusion[{std::stoull(a), std::stoull(b)}] = HashList(c);
      } else if (kind == "consistency") {
        out->consistency[{std::stoull(a), std::stoull(b)}] = HashList(c);
      }
    }
    return out;
  }();
  return *v;
}

MemoryTree TreeOf(size_t n) {
  MemoryTree t;
  for (size_t i = 0; i < n; ++i) t.Append(LeafHash(LoadVectors().leaves[i]));
  return t;
}

TEST(MerkleTest, VectorsLoaded) {
  const Vectors& v = LoadVectors();
  EXPECT_EQ(v.leaves.size(), 21u);
  EXPECT_EQ(v.inclusion.size(), 231u);
  EXPECT_EQ(v.consistency.size(), 210u);
}

// The roots the RFC 6962 reference implementation publishes for its eight test leaves.
TEST(MerkleTest, MatchesPublishedCtRoots) {
  const char* kRoots[] = {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                          "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                          "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
                          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                          "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
                          "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
                          "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
                          "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  for (size_t n = 1; n <= 8; ++n) EXPECT_EQ(TreeOf(n).Root(), FromHex(kRoots[n - 1])) << n;
  EXPECT_EQ(EmptyHash(),
            FromHex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

TEST(MerkleTest, RootsMatchVectorsForEveryBuilder) {
  const Vectors& v = LoadVectors();
  for (const auto& [n, root] : v.roots) {
    MemoryTree tree = TreeOf(n);
    EXPECT_EQ(tree.Root(), root) << n;
    CompactRange range;
    for (size_t i = 0; i < n; ++i) range.Append(LeafHash(v.leaves[i]));
    EXPECT_EQ(range.Root(), root) << n;
    auto restored = CompactRange::FromNodes(TreeOf(v.leaves.size()), n);
    ASSERT_TRUE(restored.ok());
    EXPECT_EQ(restored->Root(), root) << n;
  }
}

TEST(MerkleTest, CompactRangeReportsEveryCompletedSubtree) {
  MemoryTree full = TreeOf(21);
  CompactRange range;
  size_t reported = 0;
  for (size_t i = 0; i < 21; ++i) {
    std::vector<std::pair<NodeId, Hash>> done;
    range.Append(LeafHash(LoadVectors().leaves[i]), &done);
    ASSERT_FALSE(done.empty());
    EXPECT_EQ(done[0].first, (NodeId{0, i}));
    for (const auto& [id, hash] : done) {
      EXPECT_EQ(*full.Node(id), hash);
      EXPECT_EQ(((id.index + 1) << id.level) - 1, i);  // completed by leaf i
    }
    reported += done.size();
  }
  EXPECT_EQ(reported, 21u + 10 + 5 + 2 + 1);  // every perfect subtree exactly once
}

TEST(MerkleTest, InclusionProofsMatchVectorsAndVerify) {
  const Vectors& v = LoadVectors();
  MemoryTree tree = TreeOf(v.leaves.size());
  for (const auto& [key, expected] : v.inclusion) {
    auto [m, n] = key;
    auto proof = InclusionProof(tree, m, n);
    ASSERT_TRUE(proof.ok());
    EXPECT_EQ(*proof, expected) << m << " " << n;
    EXPECT_TRUE(VerifyInclusion(m, n, LeafHash(v.leaves[m]), *proof, v.roots.at(n)).ok());
  }
}

TEST(MerkleTest, InclusionRejectsAnyAlteration) {
  const Vectors& v = LoadVectors();
  MemoryTree tree = TreeOf(v.leaves.size());
  for (uint64_t n = 2; n <= v.leaves.size(); ++n) {
    for (uint64_t m = 0; m < n; ++m) {
      std::vector<Hash> proof = *InclusionProof(tree, m, n);
      Hash leaf = LeafHash(v.leaves[m]);
      const Hash& root = v.roots.at(n);
      EXPECT_FALSE(VerifyInclusion(m, n, leaf, proof, v.roots.at(n - 1)).ok());
      EXPECT_FALSE(VerifyInclusion((m + 1) % n, n, leaf, proof, root).ok());
      EXPECT_FALSE(VerifyInclusion(m, n, LeafHash(v.leaves[(m + 1) % n]), proof, root).ok());
      for (size_t i = 0; i < proof.size(); ++i) {
        std::vector<Hash> bad = proof;
        bad[i][0] ^= 1;
        EXPECT_FALSE(VerifyInclusion(m, n, leaf, bad, root).ok());
      }
      std::vector<Hash> longer = proof;
      longer.push_back(leaf);
      EXPECT_FALSE(VerifyInclusion(m, n, leaf, longer, root).ok());
      if (!proof.empty()) {
        proof.pop_back();
        EXPECT_FALSE(VerifyInclusion(m, n, leaf, proof, root).ok());
      }
    }
  }
  EXPECT_FALSE(VerifyInclusion(3, 3, Hash{}, {}, Hash{}).ok());
  EXPECT_EQ(InclusionProof(tree, 5, 5).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MerkleTest, ConsistencyProofsMatchVectorsAndVerify) {
  const Vectors& v = LoadVectors();
  MemoryTree tree = TreeOf(v.leaves.size());
  for (const auto& [key, expected] : v.consistency) {
    auto [m, n] = key;
    auto proof = ConsistencyProof(tree, m, n);
    ASSERT_TRUE(proof.ok());
    EXPECT_EQ(*proof, expected) << m << " " << n;
    EXPECT_TRUE(VerifyConsistency(m, n, v.roots.at(m), v.roots.at(n), *proof).ok()) << m << n;
  }
}

TEST(MerkleTest, ConsistencyRejectsAnyAlteration) {
  const Vectors& v = LoadVectors();
  MemoryTree tree = TreeOf(v.leaves.size());
  for (uint64_t n = 2; n <= v.leaves.size(); ++n) {
    for (uint64_t m = 1; m < n; ++m) {
      std::vector<Hash> proof = *ConsistencyProof(tree, m, n);
      const Hash& r1 = v.roots.at(m);
      const Hash& r2 = v.roots.at(n);
      EXPECT_FALSE(VerifyConsistency(m, n, r2, r2, proof).ok());
      EXPECT_FALSE(VerifyConsistency(m, n, r1, r1, proof).ok());
      EXPECT_FALSE(VerifyConsistency(m, n, r1, r2, {}).ok());
      for (size_t i = 0; i < proof.size(); ++i) {
        std::vector<Hash> bad = proof;
        bad[i][31] ^= 0x80;
        EXPECT_FALSE(VerifyConsistency(m, n, r1, r2, bad).ok()) << m << " " << n << " " << i;
      }
      std::vector<Hash> longer = proof;
      longer.push_back(r1);
      EXPECT_FALSE(VerifyConsistency(m, n, r1, r2, longer).ok());
    }
  }
  EXPECT_TRUE(VerifyConsistency(4, 4, v.roots.at(4), v.roots.at(4), {}).ok());
  EXPECT_FALSE(VerifyConsistency(4, 4, v.roots.at(4), v.roots.at(5), {}).ok());
  EXPECT_FALSE(VerifyConsistency(5, 4, v.roots.at(5), v.roots.at(4), {}).ok());
}

TEST(MerkleTest, NodeSourceMissingNodesAreErrors) {
  MemoryTree tree = TreeOf(5);
  EXPECT_EQ(RootHash(tree, 6).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(InclusionProof(tree, 0, 9).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(RangeHash(tree, 3, 3).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tw::ledger
