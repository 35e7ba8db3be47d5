#include "ledger/entry.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "ledger/wire.h"

namespace tw::ledger {
namespace {

constexpr uint8_t kEntryVersion = 1;
constexpr char kBatchContext[] = "trustwarden-ledger-batch-v1";

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("ledger entry: ", what));
}

crypto::SignatureScheme SchemeFor(const crypto::PublicKey& key) {
  return key.type() == crypto::KeyType::kEcP384 ? crypto::SignatureScheme::kEcdsaSha384
                                                : crypto::SignatureScheme::kEcdsaSha256;
}

}  // namespace

base::Bytes EncodeEntry(const Entry& e) {
  WireWriter w;
  w.U8(kEntryVersion);
  w.U64(e.index);
  w.U8(static_cast<uint8_t>(e.signer_kind));
  w.Vec(e.signer_id, 1);
  w.U16(e.batch_size);
  w.U16(e.batch_position);
  w.U8(static_cast<uint8_t>(e.batch_path.size() * 32));
  for (const Hash& h : e.batch_path) w.Raw(h);
  w.Vec(e.signature, 2);
  w.Vec(base::AsBytes(e.event), 3);
  return std::move(w.bytes());
}

absl::StatusOr<Entry> DecodeEntry(base::ByteView bytes) {
  WireReader r(bytes);
  Entry e;
  uint64_t version, kind, size, position;
  base::ByteView signer, path, signature, event;
  if (!r.Uint(1, &version) || !r.Uint(8, &e.index) || !r.Uint(1, &kind) || !r.Vec(1, &signer) ||
      !r.Uint(2, &size) || !r.Uint(2, &position) || !r.Vec(1, &path) || !r.Vec(2, &signature) ||
      !r.Vec(3, &event) || !r.done()) {
    return Malformed("truncated or trailing bytes");
  }
  if (version != kEntryVersion) return Malformed("unknown version");
  if (kind != 1 && kind != 2) return Malformed("unknown signer kind");
  if (signer.size() != 32) return Malformed("signer id is not 32 bytes");
  if (size == 0 || size > kMaxBatch || position >= size) return Malformed("bad batch position");
  if (path.size() % 32 != 0) return Malformed("batch path is not a list of hashes");
  if (signature.empty()) return Malformed("empty signature");
  if (event.empty()) return Malformed("empty event");
  e.signer_kind = static_cast<SignerKind>(kind);
  std::copy(signer.begin(), signer.end(), e.signer_id.begin());
  e.batch_size = static_cast<uint16_t>(size);
  e.batch_position = static_cast<uint16_t>(position);
  for (size_t i = 0; i < path.size(); i += 32) {
    Hash h;
    std::copy(path.begin() + i, path.begin() + i + 32, h.begin());
    e.batch_path.push_back(h);
  }
  e.signature.assign(signature.begin(), signature.end());
  e.event = std::string(base::AsChars(event));
  return e;
}

base::Bytes BatchMessage(uint32_t count, const Hash& root) {
  WireWriter w;
  w.Raw(base::AsBytes(kBatchContext));
  w.U8(0);
  w.U32(count);
  w.Raw(root);
  return std::move(w.bytes());
}

MemoryTree BatchTree(const std::vector<std::string>& events) {
  MemoryTree tree;
  for (const std::string& e : events) tree.Append(LeafHash(base::AsBytes(e)));
  return tree;
}

absl::StatusOr<base::Bytes> SignBatch(const crypto::Signer& signer,
                                      const std::vector<std::string>& events) {
  if (events.empty() || events.size() > kMaxBatch) {
    return absl::InvalidArgumentError(absl::StrCat("a batch holds 1 to ", kMaxBatch, " events"));
  }
  MemoryTree tree = BatchTree(events);
  return signer.Sign(BatchMessage(static_cast<uint32_t>(events.size()), tree.Root()));
}

absl::StatusOr<base::Bytes> EntryBatchMessage(const Entry& entry) {
  TW_ASSIGN_OR_RETURN(
      Hash root, RootFromInclusionProof(entry.batch_position, entry.batch_size,
                                        LeafHash(base::AsBytes(entry.event)), entry.batch_path));
  return BatchMessage(entry.batch_size, root);
}

absl::Status VerifyBatchSignature(const crypto::PublicKey& key, base::ByteView message,
                                  base::ByteView signature) {
  if (key.type() != crypto::KeyType::kEcP256 && key.type() != crypto::KeyType::kEcP384) {
    return absl::UnauthenticatedError("ledger signer key must be ECDSA P-256 or P-384");
  }
  absl::Status s = key.Verify(SchemeFor(key), message, signature);
  if (!s.ok()) return absl::UnauthenticatedError("batch signature does not verify");
  return absl::OkStatus();
}

EntryRow RowOf(const Entry& entry, const Event& event) {
  EntryRow row;
  row.index = entry.index;
  row.event_id = event.id;
  row.time_ms = event.time_ms;
  row.type = event.type;
  row.instance = event.instance;
  row.agent = AgentOf(event.instance);
  row.principal = event.principal;
  row.resource = event.resource;
  row.action = event.action;
  row.decision = event.decision;
  row.caller = event.caller;
  row.signer_id = entry.signer_id;
  row.entry = EncodeEntry(entry);
  return row;
}

bool ColumnsMatch(const EntryRow& row, const Entry& entry, const Event& event) {
  return row.event_id == event.id && row.time_ms == event.time_ms && row.type == event.type &&
         row.instance == event.instance && row.principal == event.principal &&
         row.resource == event.resource && row.action == event.action &&
         row.decision == event.decision && row.caller == event.caller &&
         row.signer_id == entry.signer_id && row.agent == AgentOf(event.instance);
}

}  // namespace tw::ledger
