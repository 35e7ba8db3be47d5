#include "ledger/export.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "ledger/wire.h"
#include "nlohmann/json.hpp"

namespace tw::ledger {
namespace {

enum RecordType : uint8_t { kHeader = 1, kSigner = 2, kTreeHead = 3, kEntry = 4, kNode = 5 };
constexpr size_t kMagicSize = sizeof(kExportMagic) - 1;
constexpr uint32_t kMaxRecord = 64 << 20;

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("ledger export: ", what));
}

void Str(WireWriter& w, absl::string_view s, int prefix) { w.Vec(base::AsBytes(s), prefix); }

bool ReadHash(WireReader& r, Hash* h) {
  base::ByteView b;
  if (!r.Raw(32, &b)) return false;
  std::memcpy(h->data(), b.data(), 32);
  return true;
}

bool ReadStr(WireReader& r, int prefix, std::string* s) {
  base::ByteView b;
  if (!r.Vec(prefix, &b)) return false;
  *s = std::string(base::AsChars(b));
  return true;
}

uint8_t Encode(const ExportRecord& record, WireWriter& w) {
  struct Visitor {
    WireWriter& w;
    uint8_t operator()(const ExportHeader& h) {
      nlohmann::json j = {{"trust_domain", h.trust_domain},
                          {"bundle", h.bundle_json},
                          {"ledger_key", base::Base64UrlEncode(base::AsChars(h.ledger_key))},
                          {"tree_size", h.tree_size},
                          {"start", h.start},
                          {"end", h.end}};
      w.Raw(base::AsBytes(j.dump()));
      return kHeader;
    }
    uint8_t operator()(const StoredSigner& s) {
      w.U8(static_cast<uint8_t>(s.signer.kind));
      w.Raw(s.id);
      w.Raw(s.signer.der);
      return kSigner;
    }
    uint8_t operator()(const TreeHead& t) {
      w.U64(static_cast<uint64_t>(t.timestamp_ms));
      w.U64(t.tree_size);
      w.Raw(t.root);
      w.Vec(t.signature, 2);
      return kTreeHead;
    }
    uint8_t operator()(const EntryRow& e) {
      w.U64(e.index);
      Str(w, e.event_id, 1);
      w.U64(static_cast<uint64_t>(e.time_ms));
      Str(w, e.type, 1);
      Str(w, e.instance, 2);
      Str(w, e.agent, 2);
      Str(w, e.principal, 2);
      Str(w, e.resource, 2);
      Str(w, e.action, 2);
      Str(w, e.decision, 1);
      w.Raw(e.signer_id);
      w.Vec(e.entry, 3);
      Str(w, e.caller, 2);
      return kEntry;
    }
    uint8_t operator()(const NodeRecord& n) {
      w.U8(static_cast<uint8_t>(n.id.level));
      w.U64(n.id.index);
      w.Raw(n.hash);
      return kNode;
    }
  };
  return std::visit(Visitor{w}, record);
}

absl::StatusOr<ExportRecord> Decode(uint8_t type, base::ByteView body) {
  WireReader r(body);
  switch (type) {
    case kHeader: {
      nlohmann::json j = nlohmann::json::parse(base::AsChars(body), nullptr, false);
      ExportHeader h;
      std::string key;
      try {
        h.trust_domain = j.at("trust_domain").get<std::string>();
        h.bundle_json = j.at("bundle").get<std::string>();
        key = j.at("ledger_key").get<std::string>();
        h.tree_size = j.at("tree_size").get<uint64_t>();
        h.start = j.at("start").get<uint64_t>();
        h.end = j.at("end").get<uint64_t>();
      } catch (const nlohmann::json::exception&) {
        return Malformed("bad header");
      }
      std::string der;
      if (!base::Base64UrlDecode(key, &der)) return Malformed("bad ledger key in header");
      h.ledger_key = base::ToBytes(der);
      return h;
    }
    case kSigner: {
      uint64_t kind;
      StoredSigner s;
      base::ByteView rest;
      if (!r.Uint(1, &kind) || !ReadHash(r, &s.id)) return Malformed("bad signer record");
      if (kind != 1 && kind != 2) return Malformed("unknown signer kind");
      r.Raw(body.size() - 33, &rest);
      s.signer.kind = static_cast<SignerKind>(kind);
      s.signer.der.assign(rest.begin(), rest.end());
      return s;
    }
    case kTreeHead: {
      TreeHead t;
      uint64_t ts;
      base::ByteView sig;
      if (!r.Uint(8, &ts) || !r.Uint(8, &t.tree_size) || !ReadHash(r, &t.root) || !r.Vec(2, &sig) ||
          !r.done()) {
        return Malformed("bad tree head record");
      }
      t.timestamp_ms = static_cast<int64_t>(ts);
      t.signature.assign(sig.begin(), sig.end());
      return t;
    }
    case kEntry: {
      EntryRow e;
      uint64_t time;
      base::ByteView entry;
      if (!r.Uint(8, &e.index) || !ReadStr(r, 1, &e.event_id) || !r.Uint(8, &time) ||
          !ReadStr(r, 1, &e.type) || !ReadStr(r, 2, &e.instance) || !ReadStr(r, 2, &e.agent) ||
          !ReadStr(r, 2, &e.principal) || !ReadStr(r, 2, &e.resource) ||
          !ReadStr(r, 2, &e.action) || !ReadStr(r, 1, &e.decision) || !ReadHash(r, &e.signer_id) ||
          !r.Vec(3, &entry)) {
        return Malformed("bad entry record");
      }
      // Exports before 0.2 end the record here; later ones add the caller column.
      if (!r.done() && (!ReadStr(r, 2, &e.caller) || !r.done())) {
        return Malformed("bad entry record");
      }
      e.time_ms = static_cast<int64_t>(time);
      e.entry.assign(entry.begin(), entry.end());
      return e;
    }
    case kNode: {
      NodeRecord n;
      uint64_t level;
      if (!r.Uint(1, &level) || !r.Uint(8, &n.id.index) || !ReadHash(r, &n.hash) || !r.done() ||
          level > 63) {
        return Malformed("bad node record");
      }
      n.id.level = static_cast<int>(level);
      return n;
    }
    default:
      return Malformed(absl::StrCat("unknown record type ", type));
  }
}

}  // namespace

absl::Status ExportWriter::Write(const ExportRecord& record) {
  WireWriter w;
  if (!started_) {
    w.Raw(base::AsBytes(absl::string_view(kExportMagic, kMagicSize)));
    started_ = true;
  }
  size_t head = w.bytes().size();
  w.U8(0);
  w.U32(0);
  uint8_t type = Encode(record, w);
  base::Bytes& out = w.bytes();
  uint32_t len = static_cast<uint32_t>(out.size() - head - 5);
  out[head] = type;
  for (int i = 0; i < 4; ++i) out[head + 1 + i] = static_cast<uint8_t>(len >> (8 * (3 - i)));
  return sink_(out);
}

absl::StatusOr<std::optional<ExportRecord>> ExportReader::Next() {
  for (;;) {
    int first = in_.peek();
    if (first == std::char_traits<char>::eof()) {
      if (!started_) return Malformed("not a TrustWarden ledger export (empty)");
      return std::nullopt;
    }
    if (first == kExportMagic[0]) {
      char magic[kMagicSize];
      if (!in_.read(magic, kMagicSize) || std::memcmp(magic, kExportMagic, kMagicSize) != 0) {
        return Malformed("not a TrustWarden ledger export (bad magic)");
      }
      started_ = true;
      continue;
    }
    if (!started_) return Malformed("not a TrustWarden ledger export (bad magic)");
    char head[5];
    if (!in_.read(head, 5)) return Malformed("truncated record header");
    uint32_t len = 0;
    for (int i = 1; i < 5; ++i) len = (len << 8) | static_cast<uint8_t>(head[i]);
    if (len > kMaxRecord) return Malformed("record too large");
    body_.resize(len);
    if (!in_.read(body_.data(), len)) return Malformed("truncated record");
    TW_ASSIGN_OR_RETURN(ExportRecord record,
                        Decode(static_cast<uint8_t>(head[0]), base::AsBytes(body_)));
    return std::optional<ExportRecord>(std::move(record));
  }
}

}  // namespace tw::ledger
