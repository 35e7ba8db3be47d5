#include "ledger/verifier.h"

#include <algorithm>
#include <sstream>

#include "core/bundle.h"
#include "core/x509_issuer.h"
#include "crypto/software_signer.h"
#include "gtest/gtest.h"

namespace tw::ledger {
namespace {

using Records = std::vector<ExportRecord>;

// A ledger built the way the server builds it: signed batches, leaves, subtree hashes
// and tree heads, exported as records.
class LedgerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto td = core::TrustDomain::FromName("td.example");
    ca_key_ = std::shared_ptr<crypto::Signer>(
        *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
    absl::Time now = absl::Now();
    auto ca = core::X509Issuer::SelfSignedCa(
        *ca_key_, {*td, now - absl::Hours(1), now + absl::Hours(24), {}});
    issuer_ = std::make_unique<core::X509Issuer>(*core::X509Issuer::Create(ca_key_, {*ca}));
    core::Bundle bundle(*td);
    ASSERT_TRUE(bundle.AddX509Authority(*ca).ok());
    bundle_json_ = bundle.ToJson();
    ledger_key_ = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
    agent_key_ = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
    core::LeafRequest leaf{*core::SpiffeId::FromString(kAgent),
                           now - absl::Minutes(1),
                           now + absl::Hours(1),
                           {},
                           {},
                           {}};
    leaf.attributes.principal = "admin";
    leaf.attributes.policy_version = 1;
    agent_cert_ = *issuer_->IssueLeaf(leaf, agent_key_->public_key());
    serial_ = core::Certificate::Parse(agent_cert_)->SerialHex();
  }

  Event AgentEvent(int n) {
    Event e;
    e.id = NewEventId();
    e.time_ms = absl::ToUnixMillis(absl::Now());
    e.type = "action";
    e.instance = kAgent;
    e.serial = serial_;
    e.principal = "admin";
    e.policy_version = 1;
    e.resource = "https://db/" + std::to_string(n);
    e.action = "read:transactions";
    e.decision = "allow";
    return e;
  }

  void AppendBatch(const crypto::Signer& signer, SignerKind kind, const base::Bytes& der,
                   const std::vector<Event>& events) {
    std::vector<std::string> bytes;
    for (const Event& e : events) bytes.push_back(EncodeEvent(e));
    MemoryTree batch = BatchTree(bytes);
    base::Bytes signature = *SignBatch(signer, bytes);
    SignerRecord record{kind, der};
    signers_.push_back(StoredSigner{record.id(), record});
    for (size_t i = 0; i < bytes.size(); ++i) {
      Entry entry{tree_.size(),
                  kind,
                  record.id(),
                  static_cast<uint16_t>(bytes.size()),
                  static_cast<uint16_t>(i),
                  *InclusionProof(batch, i, bytes.size()),
                  signature,
                  bytes[i]};
      EntryRow row = RowOf(entry, events[i]);
      std::vector<std::pair<NodeId, Hash>> done;
      tree_.Append(LeafHash(row.entry), &done);
      body_.push_back(row);
      for (auto& [id, h] : done) body_.push_back(NodeRecord{id, h});
    }
  }

  void AddTreeHead() {
    TreeHead head{tree_.size(), absl::ToUnixMillis(absl::Now()), tree_.Root(), {}};
    ASSERT_TRUE(SignTreeHead(*ledger_key_, head).ok());
    heads_.push_back(head);
  }

  void Build() {
    AppendBatch(*agent_key_, SignerKind::kSvid, agent_cert_,
                {AgentEvent(0), AgentEvent(1), AgentEvent(2)});
    Event token;
    token.id = NewEventId();
    token.time_ms = 1;
    token.type = "token";
    token.resource = "token:abc";
    AppendBatch(*ledger_key_, SignerKind::kLedgerKey, ledger_key_->public_key_der(), {token});
    AddTreeHead();
    for (int i = 0; i < 4; ++i)
      AppendBatch(*agent_key_, SignerKind::kSvid, agent_cert_, {AgentEvent(10 + i)});
    AddTreeHead();
  }

  Records Export() const {
    Records out;
    out.push_back(ExportHeader{"td.example", bundle_json_, ledger_key_->public_key_der(),
                               tree_.size(), 0, tree_.size()});
    for (const auto& s : signers_) out.push_back(s);
    for (const auto& h : heads_) out.push_back(h);
    out.insert(out.end(), body_.begin(), body_.end());
    return out;
  }

  static std::string FileOf(const Records& records) {
    std::string file;
    ExportWriter writer([&file](base::ByteView b) {
      file.append(reinterpret_cast<const char*>(b.data()), b.size());
      return absl::OkStatus();
    });
    for (const auto& r : records) EXPECT_TRUE(writer.Write(r).ok());
    return file;
  }

  // The trust anchors as an auditor holds them: the ledger key and the bundle.
  VerifyOptions Anchors() const { return {ledger_key_->public_key_der(), bundle_json_}; }

  VerifyReport Verify(const Records& records) const { return Verify(records, Anchors()); }
  static VerifyReport Verify(const Records& records, VerifyOptions options) {
    std::istringstream in(FileOf(records));
    return VerifyExport(in, std::move(options));
  }

  // The position in `records` of the entry with `index`.
  static size_t EntryAt(const Records& records, uint64_t index) {
    for (size_t i = 0; i < records.size(); ++i) {
      const auto* row = std::get_if<EntryRow>(&records[i]);
      if (row != nullptr && row->index == index) return i;
    }
    ADD_FAILURE() << "no entry " << index;
    return 0;
  }

  static constexpr char kAgent[] = "spiffe://td.example/acme/fin/pay/inst-abcdefghijklmnop";
  std::shared_ptr<crypto::Signer> ca_key_;
  std::unique_ptr<core::X509Issuer> issuer_;
  std::string bundle_json_;
  std::unique_ptr<crypto::SoftwareSigner> ledger_key_, agent_key_;
  base::Bytes agent_cert_;
  std::string serial_;
  CompactRange tree_;
  std::vector<StoredSigner> signers_;
  std::vector<TreeHead> heads_;
  Records body_;
};

TEST_F(LedgerFixture, IntactLedgerVerifies) {
  Build();
  VerifyReport r = Verify(Export());
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.entries, 8u);
  EXPECT_EQ(r.tree_heads, 2u);
  EXPECT_EQ(r.signatures, 6u);  // one per batch
}

TEST_F(LedgerFixture, ModifiedEntryBytesNameTheIndex) {
  Build();
  Records records = Export();
  auto& row = std::get<EntryRow>(records[EntryAt(records, 5)]);
  row.entry[row.entry.size() - 3] ^= 1;  // inside the event JSON
  VerifyReport r = Verify(records);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.first_bad_index, 5u) << r.error;
}

TEST_F(LedgerFixture, ModifiedColumnNamesTheIndex) {
  Build();
  Records records = Export();
  std::get<EntryRow>(records[EntryAt(records, 2)]).decision = "deny";
  VerifyReport r = Verify(records);
  EXPECT_EQ(r.first_bad_index, 2u) << r.error;
  EXPECT_NE(r.error.find("column"), std::string::npos);
}

TEST_F(LedgerFixture, ForgedSignatureNamesTheIndex) {
  Build();
  Records records = Export();
  auto& row = std::get<EntryRow>(records[EntryAt(records, 6)]);
  Entry entry = *DecodeEntry(row.entry);
  entry.signature = *SignBatch(*ledger_key_, {entry.event});  // signed by the wrong key
  row.entry = EncodeEntry(entry);
  VerifyReport r = Verify(records);
  EXPECT_EQ(r.first_bad_index, 6u) << r.error;
}

TEST_F(LedgerFixture, DeletedRowNamesTheIndex) {
  Build();
  Records records = Export();
  size_t at = EntryAt(records, 3);
  records.erase(records.begin() + at, records.begin() + EntryAt(records, 4));
  VerifyReport r = Verify(records);
  EXPECT_EQ(r.first_bad_index, 3u) << r.error;
}

TEST_F(LedgerFixture, RenumberedRowsAfterADeletionNameTheIndex) {
  Build();
  Records records = Export();
  records.erase(records.begin() + EntryAt(records, 3));
  for (auto& rec : records) {
    if (auto* row = std::get_if<EntryRow>(&rec); row != nullptr && row->index > 3) --row->index;
  }
  VerifyReport r = Verify(records);
  EXPECT_EQ(r.first_bad_index, 3u) << r.error;
}

TEST_F(LedgerFixture, SwappedRowsNameTheFirst) {
  Build();
  Records records = Export();
  auto& a = std::get<EntryRow>(records[EntryAt(records, 1)]);
  auto& b = std::get<EntryRow>(records[EntryAt(records, 5)]);
  std::swap(a, b);
  std::swap(a.index, b.index);
  VerifyReport r = Verify(records);
  EXPECT_EQ(r.first_bad_index, 1u) << r.error;
}

TEST_F(LedgerFixture, InsertedCopyNamesTheIndex) {
  Build();
  Records records = Export();
  EntryRow copy = std::get<EntryRow>(records[EntryAt(records, 0)]);
  copy.index = 2;
  records.insert(records.begin() + EntryAt(records, 2), copy);
  VerifyReport r = Verify(records);
  EXPECT_EQ(r.first_bad_index, 2u) << r.error;
}

TEST_F(LedgerFixture, ModifiedSubtreeHashNamesItsFirstLeaf) {
  Build();
  Records records = Export();
  for (auto& rec : records) {
    if (auto* n = std::get_if<NodeRecord>(&rec); n && n->id == NodeId{1, 2}) n->hash[0] ^= 1;
  }
  VerifyReport r = Verify(records);
  EXPECT_EQ(r.first_bad_index, 4u) << r.error;
}

TEST_F(LedgerFixture, BadTreeHeadsAreDetected) {
  Build();
  Records records = Export();
  for (auto& rec : records) {
    if (auto* h = std::get_if<TreeHead>(&rec)) h->root[0] ^= 1;
  }
  EXPECT_NE(Verify(records).error.find("signature"), std::string::npos);

  // A correctly signed head for a tree that is not this one.
  records = Export();
  TreeHead other{3, 1, LeafHash(base::AsBytes("other")), {}};
  ASSERT_TRUE(SignTreeHead(*ledger_key_, other).ok());
  records.insert(records.begin() + 1 + signers_.size(), other);
  VerifyReport r = Verify(records);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("size 3"), std::string::npos) << r.error;
}

TEST_F(LedgerFixture, TruncationBelowATreeHeadIsDetected) {
  Build();
  Records records = Export();
  records.resize(EntryAt(records, 7));
  std::get<ExportHeader>(records[0]).end = 7;
  std::get<ExportHeader>(records[0]).tree_size = 7;
  VerifyReport r = Verify(records);
  EXPECT_EQ(r.first_bad_index, 7u) << r.error;
}

TEST_F(LedgerFixture, ServerTypesMustBeSignedByTheLedgerKey) {
  Event by_server = AgentEvent(0);
  by_server.type = "issuance";
  Event by_agent = by_server;
  by_agent.id = NewEventId();
  AppendBatch(*ledger_key_, SignerKind::kLedgerKey, ledger_key_->public_key_der(), {by_server});
  AppendBatch(*agent_key_, SignerKind::kSvid, agent_cert_, {by_agent});
  AddTreeHead();  // both entries are covered: only the signer can fail
  VerifyReport r = Verify(Export());
  EXPECT_EQ(r.first_bad_index, 1u) << r.error;
  EXPECT_NE(r.error.find("issuance event not signed by the server"), std::string::npos) << r.error;
}

TEST_F(LedgerFixture, AgentEventsMustNameTheirSigner) {
  Event e = AgentEvent(0);
  e.principal = "someone-else";
  AppendBatch(*agent_key_, SignerKind::kSvid, agent_cert_, {e});
  VerifyReport r = Verify(Export());
  EXPECT_EQ(r.first_bad_index, 0u);
  EXPECT_NE(r.error.find("subject"), std::string::npos) << r.error;
}

// An observation names its signer; one written before 0.2 (no `caller`) named the caller
// in `instance` and is still read.
TEST_F(LedgerFixture, ObservationsNameTheirSignerExceptThoseBefore02) {
  Event legacy = AgentEvent(0);
  legacy.type = "observation";
  legacy.instance = "spiffe://td.example/acme/fin/caller/inst-qrstuvwxyzabcdef";
  AppendBatch(*agent_key_, SignerKind::kSvid, agent_cert_, {legacy});
  AddTreeHead();
  EXPECT_TRUE(Verify(Export()).ok()) << Verify(Export()).error;
  Event forged = legacy;
  forged.id = NewEventId();
  forged.caller = "spiffe://td.example/acme/fin/other/inst-aaaaaaaaaaaaaaaa";
  AppendBatch(*agent_key_, SignerKind::kSvid, agent_cert_, {forged});
  AddTreeHead();
  VerifyReport r = Verify(Export());
  EXPECT_EQ(r.first_bad_index, 1u) << r.error;
  EXPECT_NE(r.error.find("subject"), std::string::npos) << r.error;
}

TEST_F(LedgerFixture, SignersMustChainToTheBundle) {
  auto stranger = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  auto td = core::TrustDomain::FromName("td.example");
  absl::Time now = absl::Now();
  auto rogue_ca = core::X509Issuer::SelfSignedCa(
      *stranger, {*td, now - absl::Hours(1), now + absl::Hours(2), {}});
  auto rogue =
      *core::X509Issuer::Create(std::shared_ptr<crypto::Signer>(std::move(stranger)), {*rogue_ca});
  core::LeafRequest leaf{*core::SpiffeId::FromString(kAgent),
                         now - absl::Minutes(1),
                         now + absl::Hours(1),
                         {},
                         {},
                         {}};
  leaf.attributes.principal = "admin";
  leaf.attributes.policy_version = 1;
  base::Bytes cert = *rogue.IssueLeaf(leaf, agent_key_->public_key());
  serial_ = core::Certificate::Parse(cert)->SerialHex();
  AppendBatch(*agent_key_, SignerKind::kSvid, cert, {AgentEvent(0)});
  VerifyReport r = Verify(Export());
  EXPECT_EQ(r.first_bad_index, 0u);
  EXPECT_NE(r.error.find("certificate"), std::string::npos) << r.error;
}

// An attacker who rewrites the ledger re-signs it with a key of their own and puts that
// key (and a bundle of their own) in the export: the anchors come from elsewhere.
TEST_F(LedgerFixture, TrustAnchorsComeFromOutsideTheExport) {
  Build();
  VerifyOptions wrong_key = Anchors();
  wrong_key.ledger_key = agent_key_->public_key_der();
  EXPECT_NE(Verify(Export(), wrong_key).error.find("not the trusted ledger key"),
            std::string::npos);

  auto stranger = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  auto td = core::TrustDomain::FromName("td.example");
  auto rogue_ca = core::X509Issuer::SelfSignedCa(
      *stranger, {*td, absl::Now() - absl::Hours(1), absl::Now() + absl::Hours(2), {}});
  core::Bundle rogue(*td);
  ASSERT_TRUE(rogue.AddX509Authority(*rogue_ca).ok());
  Records records = Export();
  std::get<ExportHeader>(records[0]).bundle_json = rogue.ToJson();  // ignored
  EXPECT_TRUE(Verify(records).ok());
  VerifyOptions rogue_bundle = Anchors();
  rogue_bundle.bundle = rogue.ToJson();  // agents' certificates no longer chain
  VerifyReport r = Verify(Export(), rogue_bundle);
  EXPECT_EQ(r.first_bad_index, 0u) << r.error;

  core::Bundle other(*core::TrustDomain::FromName("other.example"));
  VerifyOptions other_domain = Anchors();
  other_domain.bundle = other.ToJson();
  EXPECT_FALSE(Verify(Export(), other_domain).ok());
}

TEST_F(LedgerFixture, AnUnsignedTailFailsUnlessAllowed) {
  Build();
  AppendBatch(*agent_key_, SignerKind::kSvid, agent_cert_, {AgentEvent(20), AgentEvent(21)});
  VerifyReport r = Verify(Export());
  EXPECT_EQ(r.first_bad_index, 8u) << r.error;
  EXPECT_NE(r.error.find("no signed tree head"), std::string::npos) << r.error;
  VerifyOptions allowed = Anchors();
  allowed.allow_unsigned_tail = true;
  EXPECT_TRUE(Verify(Export(), allowed).ok());
}

// A tail deleted together with the tree heads that covered it leaves a ledger that is
// consistent with itself; only a tree head saved before catches it.
TEST_F(LedgerFixture, ATailDeletedWithItsTreeHeadsFailsAgainstASavedHead) {
  Build();
  const TreeHead saved = heads_.back();  // size 8
  Records records = Export();
  records.erase(records.begin() + EntryAt(records, 4), records.end());
  records.erase(std::remove_if(records.begin(), records.end(),
                               [](const ExportRecord& rec) {
                                 const auto* h = std::get_if<TreeHead>(&rec);
                                 return h != nullptr && h->tree_size == 8;
                               }),
                records.end());
  std::get<ExportHeader>(records[0]).end = 4;
  std::get<ExportHeader>(records[0]).tree_size = 4;
  ASSERT_TRUE(Verify(records).ok()) << Verify(records).error;
  VerifyOptions since = Anchors();
  since.since = saved;
  VerifyReport r = Verify(records, since);
  EXPECT_EQ(r.first_bad_index, 4u) << r.error;
  EXPECT_NE(r.error.find("truncated"), std::string::npos) << r.error;
  EXPECT_TRUE(Verify(Export(), since).ok());
}

TEST_F(LedgerFixture, ARewrittenPrefixFailsAgainstASavedHead) {
  Build();
  TreeHead elsewhere{4, 1, LeafHash(base::AsBytes("another history")), {}};
  ASSERT_TRUE(SignTreeHead(*ledger_key_, elsewhere).ok());
  VerifyOptions since = Anchors();
  since.since = elsewhere;
  VerifyReport r = Verify(Export(), since);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("saved tree head of size 4"), std::string::npos) << r.error;
  since.since->signature[5] ^= 1;
  EXPECT_NE(Verify(Export(), since).error.find("saved tree head's signature"), std::string::npos);
}

TEST_F(LedgerFixture, MalformedFilesAreErrors) {
  std::istringstream empty("");
  EXPECT_FALSE(VerifyExport(empty, Anchors()).ok());
  std::istringstream junk("not a ledger");
  EXPECT_NE(VerifyExport(junk, Anchors()).error.find("not a TrustWarden"), std::string::npos);
  Build();
  std::string file = FileOf(Export());
  std::istringstream cut(file.substr(0, file.size() - 10));
  EXPECT_FALSE(VerifyExport(cut, Anchors()).ok());
}

}  // namespace
}  // namespace tw::ledger
