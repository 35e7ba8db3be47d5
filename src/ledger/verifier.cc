#include "ledger/verifier.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/bundle.h"
#include "core/certificate.h"
#include "core/x509_verifier.h"

namespace tw::ledger {
namespace {

// Clock skew tolerated between an event's time and its signer's validity.
constexpr int64_t kSkewMs = 5 * 60 * 1000;

std::string Key(const Hash& h) { return std::string(h.begin(), h.end()); }

int64_t Ms(absl::Time t) { return absl::ToUnixMillis(t); }

// Entries checked together: enough to keep every core busy, small enough to stay cached.
constexpr size_t kChunk = 4096;

// Runs fn(k) for every k in [0, n) on the machine's cores, `grain` indexes at a time.
template <typename Fn>
void ParallelFor(size_t n, size_t grain, const Fn& fn) {
  const size_t threads = std::min<size_t>(
      {std::max(1u, std::thread::hardware_concurrency()), 16, (n + grain - 1) / grain});
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t first; (first = next.fetch_add(grain)) < n;) {
      for (size_t k = first; k < std::min(n, first + grain); ++k) fn(k);
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

}  // namespace

struct LedgerVerifier::Signer {
  SignerKind kind;
  std::string error;  // why this signer cannot be trusted; empty when it can
  std::optional<crypto::PublicKey> key;
  std::optional<core::VerifiedX509Svid> svid;
  int64_t not_before_ms = 0;
  int64_t not_after_ms = 0;
};

struct LedgerVerifier::EntryCheck {
  std::string error;  // why the entry is bad; empty when these checks passed
  Hash leaf{};        // its leaf hash in the ledger tree
  const Signer* signer = nullptr;
  std::string batch;  // signer id, batch message and signature, as one key
  size_t message_size = 0;
};

// Records taken together; their entries are checked on worker threads while the next
// chunk is read.
struct LedgerVerifier::Chunk {
  std::vector<std::variant<EntryRow, NodeRecord>> items;
  size_t checks_size = 0;                             // its entries
  std::vector<EntryCheck> checks;                     // one per entry, in order
  absl::flat_hash_map<std::string, bool> signatures;  // by batch key: whether it verifies
  std::future<void> checked;                          // last: waited for first on destruction
};

LedgerVerifier::LedgerVerifier(VerifyOptions options) : options_(std::move(options)) {}
LedgerVerifier::~LedgerVerifier() = default;

bool LedgerVerifier::Fail(std::optional<uint64_t> index, std::string error) {
  if (!failed_) {
    failed_ = true;
    report_.first_bad_index = index;
    report_.error = std::move(error);
  }
  return false;
}

bool LedgerVerifier::Add(ExportRecord record) {
  if (failed_) return false;
  if (!header_ && !std::holds_alternative<ExportHeader>(record)) {
    return Fail(std::nullopt, "export does not start with a header");
  }
  if (auto* row = std::get_if<EntryRow>(&record)) {
    chunk_.emplace_back(std::move(*row));
    if (++chunk_entries_ < kChunk) return true;
    // The next chunk is checked while this thread applies the one before it.
    StartChunk();
    return inflight_.size() < 2 || FinishChunk();
  }
  if (auto* node = std::get_if<NodeRecord>(&record)) {
    chunk_.emplace_back(*node);
    return true;
  }
  if (!Flush()) return false;
  return std::visit(
      [this](const auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, ExportHeader>) return AddHeader(r);
        if constexpr (std::is_same_v<T, StoredSigner>) return AddSigner(r);
        if constexpr (std::is_same_v<T, TreeHead>) return AddTreeHead(r);
        return true;  // entries and nodes went to the chunk
      },
      record);
}

bool LedgerVerifier::Flush() {
  if (!chunk_.empty()) StartChunk();
  while (!inflight_.empty()) {
    if (!FinishChunk()) return false;
  }
  return !failed_;
}

void LedgerVerifier::StartChunk() {
  uint64_t first = tree_.size();
  for (const auto& chunk : inflight_) first += chunk->checks_size;
  Chunk& c = *inflight_.emplace_back(std::make_unique<Chunk>());
  c.items.swap(chunk_);
  chunk_.reserve(c.items.size());
  c.checks_size = chunk_entries_;
  chunk_entries_ = 0;
  c.checked = std::async(std::launch::async, [this, &c, first] {
    std::vector<const EntryRow*> rows;
    for (const auto& item : c.items) {
      if (const auto* row = std::get_if<EntryRow>(&item)) rows.push_back(row);
    }
    c.checks.resize(c.checks_size);
    ParallelFor(rows.size(), 64, [&](size_t k) { c.checks[k] = CheckEntry(*rows[k], first + k); });
    // Each batch signature of the chunk once (a batch across two chunks is checked twice).
    std::vector<const EntryCheck*> batches;
    const std::string* previous = nullptr;
    for (const EntryCheck& check : c.checks) {
      if (!check.error.empty() || (previous != nullptr && check.batch == *previous)) continue;
      previous = &check.batch;
      if (c.signatures.emplace(check.batch, false).second) batches.push_back(&check);
    }
    std::vector<char> valid(batches.size());
    ParallelFor(batches.size(), 1, [&](size_t k) {
      const EntryCheck& check = *batches[k];
      auto message = base::AsBytes(check.batch).subspan(32, check.message_size);
      auto signature = base::AsBytes(check.batch).subspan(32 + check.message_size);
      valid[k] = VerifyBatchSignature(*check.signer->key, message, signature).ok();
    });
    for (size_t k = 0; k < batches.size(); ++k) c.signatures[batches[k]->batch] = valid[k];
  });
}

bool LedgerVerifier::FinishChunk() {
  std::unique_ptr<Chunk> c = std::move(inflight_.front());
  inflight_.pop_front();
  c->checked.get();
  size_t next = 0;
  for (const auto& item : c->items) {
    const auto* node = std::get_if<NodeRecord>(&item);
    if (!(node ? AddNode(*node) : CommitEntry(c->checks[next++], c->signatures))) return false;
  }
  return true;
}

bool LedgerVerifier::AddHeader(const ExportHeader& h) {
  if (next_node_ != expected_nodes_.size()) {
    return Fail(tree_.size() - 1, "a subtree hash is missing after this entry");
  }
  if (tree_.size() != segment_end_) {
    return Fail(tree_.size(),
                absl::StrCat("entries ", tree_.size(), " to ", segment_end_ - 1, " are missing"));
  }
  if (h.start != tree_.size() || h.end < h.start || h.end > h.tree_size) {
    return Fail(tree_.size(), absl::StrCat("segment [", h.start, ", ", h.end,
                                           ") does not continue at entry ", tree_.size()));
  }
  segment_end_ = h.end;
  if (header_) {
    if (h.ledger_key != header_->ledger_key || h.trust_domain != header_->trust_domain) {
      return Fail(std::nullopt, "segments name different ledger keys or trust domains");
    }
    return true;
  }
  if (h.ledger_key != options_.ledger_key) {
    return Fail(std::nullopt, "the export's ledger key is not the trusted ledger key");
  }
  auto key = crypto::PublicKey::FromSpkiDer(h.ledger_key);
  if (!key.ok() || key->type() != crypto::KeyType::kEcP256) {
    return Fail(std::nullopt, "the ledger key is not an ECDSA P-256 key");
  }
  if (options_.since && !VerifyTreeHead(*key, *options_.since).ok()) {
    return Fail(std::nullopt,
                "the saved tree head's signature does not verify with the ledger key");
  }
  auto td = core::TrustDomain::FromName(h.trust_domain);
  if (!td.ok()) return Fail(std::nullopt, "the export's trust domain is invalid");
  auto bundle = core::Bundle::Parse(options_.bundle, *td);
  if (!bundle.ok()) {
    return Fail(std::nullopt, absl::StrCat("the trusted bundle: ", bundle.status().message()));
  }
  if (bundle->trust_domain() != *td) {
    return Fail(std::nullopt,
                absl::StrCat("the trusted bundle is of ", bundle->trust_domain().name(),
                             ", the export of ", h.trust_domain));
  }
  auto set = std::make_shared<core::BundleSet>();
  set->Put(std::move(*bundle));
  core::X509VerifierOptions options;
  options.attribute_trust_domains = {*td};
  options.cache_capacity = 0;
  x509_ = std::make_unique<core::X509Verifier>(set, options);
  ledger_key_ = *key;
  ledger_key_id_ = crypto::Sha256Concat({h.ledger_key});
  header_ = h;
  return true;
}

bool LedgerVerifier::AddSigner(const StoredSigner& s) {
  auto signer = std::make_shared<Signer>();
  signer->kind = s.signer.kind;
  if (s.signer.id() != s.id) {
    signer->error = "its stored signer row does not match its id";
  } else if (s.signer.kind == SignerKind::kLedgerKey) {
    if (s.id != ledger_key_id_) signer->error = "it names a key other than the ledger key";
    signer->key = ledger_key_;
  } else if (auto cert = core::Certificate::Parse(s.signer.der); !cert.ok()) {
    signer->error = absl::StrCat("its certificate: ", cert.status().message());
  } else {
    absl::Time mid = cert->not_before() + (cert->not_after() - cert->not_before()) / 2;
    auto svid = x509_->VerifyAt({base::ByteView(s.signer.der)}, mid);
    auto key = crypto::PublicKey::FromSpkiDer(cert->spki());
    if (!svid.ok()) {
      signer->error = absl::StrCat("its certificate: ", svid.status().message());
    } else if (!key.ok()) {
      signer->error = "its certificate's key is unusable";
    } else {
      signer->svid = *svid;
      signer->key = *key;
      signer->not_before_ms = Ms(cert->not_before());
      signer->not_after_ms = Ms(cert->not_after());
    }
  }
  auto [it, inserted] = signers_.try_emplace(Key(s.id), signer);
  if (!inserted && it->second->error.empty() != signer->error.empty()) {
    return Fail(std::nullopt, "one signer id appears with different contents");
  }
  return true;
}

bool LedgerVerifier::AddTreeHead(const TreeHead& head) {
  if (!VerifyTreeHead(*ledger_key_, head).ok()) {
    return Fail(std::nullopt, absl::StrCat("the tree head of size ", head.tree_size, " at ",
                                           head.timestamp_ms, " ms has a bad signature"));
  }
  if (head.tree_size > header_->tree_size) {
    return Fail(header_->tree_size,
                absl::StrCat("a tree head covers ", head.tree_size, " entries but the ledger has ",
                             header_->tree_size));
  }
  if (head.tree_size < tree_.size()) {
    return Fail(std::nullopt, absl::StrCat("the tree head of size ", head.tree_size,
                                           " is out of order in the export"));
  }
  if (head.tree_size == tree_.size()) {
    if (head.root != tree_.Root()) {
      return Fail(verified_size_, absl::StrCat("the tree head of size ", head.tree_size,
                                               " does not match the entries"));
    }
    ++report_.tree_heads;
    return true;
  }
  pending_heads_.emplace(head.tree_size, head);
  return true;
}

std::string LedgerVerifier::SubjectError(const Event& event, const Signer& signer) {
  if (signer.kind == SignerKind::kLedgerKey) {
    if (!IsServerType(event.type))
      return absl::StrCat("a ", event.type, " event signed by the server");
    return "";
  }
  if (IsServerType(event.type))
    return absl::StrCat("a ", event.type, " event not signed by the server");
  if (event.time_ms < signer.not_before_ms - kSkewMs ||
      event.time_ms > signer.not_after_ms + kSkewMs) {
    return "event time outside its signer's validity";
  }
  if (!IsSelfType(event.type)) return "";
  // Observations written before 0.2 named the observed caller in `instance` and have no
  // `caller` member: read as they were for one release (the server no longer takes them).
  if (event.type == "observation" && event.caller.empty()) return "";
  const core::VerifiedX509Svid& svid = *signer.svid;
  const core::SvidAttributes empty;
  const core::SvidAttributes& attrs = svid.attributes ? *svid.attributes : empty;
  if (event.instance != svid.spiffe_id.str() || event.serial != svid.serial_hex ||
      event.principal != attrs.principal || event.policy_version != attrs.policy_version ||
      event.parent != (attrs.parent ? attrs.parent->str() : "")) {
    return "the event's subject is not its signer";
  }
  return "";
}

LedgerVerifier::EntryCheck LedgerVerifier::CheckEntry(const EntryRow& row, uint64_t i) const {
  EntryCheck c;
  auto bad = [&c, i](const auto&... why) {
    c.error = absl::StrCat("entry ", i, ": ", why...);
    return std::move(c);
  };
  if (i >= segment_end_) return bad("beyond its segment");
  if (row.index != i) return bad("the row is numbered ", row.index);
  auto entry = DecodeEntry(row.entry);
  if (!entry.ok()) return bad(entry.status().message());
  if (entry->index != i) return bad("it was appended as entry ", entry->index);
  auto event = DecodeEvent(entry->event);
  if (!event.ok()) return bad(event.status().message());
  if (!ColumnsMatch(row, *entry, *event)) return bad("a stored column does not match the entry");
  auto it = signers_.find(Key(entry->signer_id));
  if (it == signers_.end()) return bad("its signer is missing");
  const Signer& signer = *it->second;
  if (!signer.error.empty()) return bad(signer.error);
  if (signer.kind != entry->signer_kind) return bad("signer kind mismatch");
  if (std::string why = SubjectError(*event, signer); !why.empty()) return bad(why);
  auto message = EntryBatchMessage(*entry);
  if (!message.ok()) return bad(message.status().message());
  c.signer = &signer;
  c.batch =
      absl::StrCat(Key(entry->signer_id), base::AsChars(*message), base::AsChars(entry->signature));
  c.message_size = message->size();
  c.leaf = LeafHash(row.entry);
  return c;
}

bool LedgerVerifier::CommitEntry(const EntryCheck& c,
                                 const absl::flat_hash_map<std::string, bool>& signatures) {
  const uint64_t i = tree_.size();
  if (next_node_ != expected_nodes_.size()) {
    return Fail(i - 1, absl::StrCat("entry ", i - 1, ": a subtree hash is missing"));
  }
  if (!c.error.empty()) return Fail(i, c.error);
  if (c.batch != last_batch_) {
    auto valid = signatures.find(c.batch);
    if (valid == signatures.end() || !valid->second) {
      return Fail(i, absl::StrCat("entry ", i, ": its signature does not verify"));
    }
    if (verified_batches_.insert(c.batch).second) ++report_.signatures;
    last_batch_ = c.batch;
  }
  expected_nodes_.clear();
  next_node_ = 0;
  tree_.Append(c.leaf, &expected_nodes_);
  ++report_.entries;
  if (options_.since && options_.since->tree_size == tree_.size() &&
      options_.since->root != tree_.Root()) {
    return Fail(verified_size_, absl::StrCat("the entries differ from those the saved tree head of "
                                             "size ",
                                             tree_.size(), " signed"));
  }
  auto [first, last] = pending_heads_.equal_range(tree_.size());
  if (first != last) {
    Hash root = tree_.Root();
    for (auto h = first; h != last; ++h) {
      if (h->second.root != root) {
        return Fail(verified_size_,
                    absl::StrCat("the tree head of size ", tree_.size(),
                                 " does not match the entries; they differ from what was "
                                 "signed at or after entry ",
                                 verified_size_));
      }
      ++report_.tree_heads;
    }
    pending_heads_.erase(first, last);
    verified_size_ = tree_.size();
  }
  return true;
}

bool LedgerVerifier::AddNode(const NodeRecord& node) {
  uint64_t first_leaf = node.id.index << node.id.level;
  if (next_node_ >= expected_nodes_.size()) {
    return Fail(first_leaf, absl::StrCat("subtree hash ", node.id.level, "/", node.id.index,
                                         " is not expected here"));
  }
  const auto& [id, hash] = expected_nodes_[next_node_++];
  if (!(id == node.id) || hash != node.hash) {
    uint64_t bad = id.index << id.level;
    return Fail(bad, absl::StrCat("subtree hash ", id.level, "/", id.index, " (entries from ", bad,
                                  ") does not match the entries"));
  }
  return true;
}

const VerifyReport& LedgerVerifier::Finish() {
  if (!Flush()) return report_;
  if (!header_) {
    Fail(std::nullopt, "the export is empty");
    return report_;
  }
  if (next_node_ != expected_nodes_.size()) {
    Fail(tree_.size() - 1, "a subtree hash is missing after the last entry");
  } else if (tree_.size() != segment_end_) {
    Fail(tree_.size(), absl::StrCat("entries from ", tree_.size(), " are missing"));
  } else if (!pending_heads_.empty()) {
    Fail(tree_.size(), absl::StrCat("a tree head covers ", pending_heads_.begin()->first,
                                    " entries but the ledger ends at ", tree_.size()));
  } else if (options_.since && tree_.size() < options_.since->tree_size) {
    Fail(tree_.size(), absl::StrCat("the ledger has ", tree_.size(),
                                    " entries, fewer than the saved tree head's ",
                                    options_.since->tree_size, ": it was truncated"));
  } else if (!options_.allow_unsigned_tail && verified_size_ < tree_.size()) {
    Fail(verified_size_,
         absl::StrCat("entries from ", verified_size_, " on are covered by no signed tree head"));
  }
  return report_;
}

VerifyReport VerifyExport(std::istream& in, VerifyOptions options) {
  const auto progress = std::move(options.progress);
  LedgerVerifier verifier(std::move(options));
  ExportReader reader(in);
  uint64_t entries = 0, tree_size = 0;
  for (;;) {
    auto record = reader.Next();
    if (!record.ok()) {
      verifier.Flush();
      VerifyReport r = verifier.report();
      if (r.ok()) {
        r.error = std::string(record.status().message());
        r.first_bad_index = r.entries;
      }
      return r;
    }
    if (!record->has_value()) break;
    if (progress) {
      if (const auto* header = std::get_if<ExportHeader>(&**record)) tree_size = header->tree_size;
      if (std::holds_alternative<EntryRow>(**record) && ++entries % 1024 == 0) {
        progress(entries, tree_size);
      }
    }
    if (!verifier.Add(*std::move(*record))) return verifier.report();
  }
  if (progress) progress(entries, tree_size);
  return verifier.Finish();
}

}  // namespace tw::ledger
