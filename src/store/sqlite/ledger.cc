// SqliteStore: the audit ledger (entries, subtree hashes, signers, tree heads, exports).
#include "store/sqlite/ledger.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "store/sqlite/sqlite_store.h"

namespace tw::store {

using sqlite::Db;
using sqlite::Stmt;

namespace {

constexpr char kEntryColumns[] =
    "idx, event_id, time, type, instance, agent, principal, resource, action, decision, "
    "signer, entry, caller";

ledger::Hash HashOf(Stmt& s, int col) {
  ledger::Hash h{};
  base::Bytes b = s.Blob(col);
  if (b.size() == h.size()) std::copy(b.begin(), b.end(), h.begin());
  return h;
}

// An index range bound as an SQLite integer. No index exceeds INT64_MAX, so a larger bound
// means the same as INT64_MAX (a plain cast would make it negative).
int64_t IndexBound(uint64_t bound) {
  return static_cast<int64_t>(std::min<uint64_t>(bound, std::numeric_limits<int64_t>::max()));
}

ledger::EntryRow ReadEntryRow(Stmt& s) {
  ledger::EntryRow r;
  r.index = static_cast<uint64_t>(s.Int(0));
  r.event_id = s.Text(1);
  r.time_ms = s.Int(2);
  r.type = s.Text(3);
  r.instance = s.Text(4);
  r.agent = s.Text(5);
  r.principal = s.Text(6);
  r.resource = s.Text(7);
  r.action = s.Text(8);
  r.decision = s.Text(9);
  r.signer_id = HashOf(s, 10);
  r.entry = s.Blob(11);
  r.caller = s.Text(12);
  return r;
}

ledger::TreeHead ReadTreeHead(Stmt& s) {
  ledger::TreeHead h;
  h.tree_size = static_cast<uint64_t>(s.Int(0));
  h.timestamp_ms = s.Int(1);
  h.root = HashOf(s, 2);
  h.signature = s.Blob(3);
  return h;
}

// The stored subtree hashes seen through one connection (and its open transaction).
class DbNodes final : public ledger::NodeSource {
 public:
  explicit DbNodes(Db& db) : db_(db) {}
  absl::StatusOr<ledger::Hash> Node(ledger::NodeId id) const override;

 private:
  Db& db_;
};

absl::StatusOr<ledger::Hash> DbNodes::Node(ledger::NodeId id) const {
  TW_ASSIGN_OR_RETURN(Stmt s,
                      db_.Prepare("SELECT hash FROM ledger_nodes WHERE level = ?1 AND idx = ?2"));
  s.Bind(1, int64_t{id.level}).Bind(2, static_cast<int64_t>(id.index));
  TW_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("ledger: subtree ", id.level, "/", id.index, " is not stored"));
  }
  return HashOf(s, 0);
}

absl::StatusOr<uint64_t> LedgerSizeIn(Db& db) {
  // A bare MAX over the rowid is answered from the b-tree's last page; any expression
  // around it would make SQLite scan the table.
  TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT MAX(idx) FROM ledger_entries"));
  TW_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return absl::InternalError("store: no ledger size");
  return s.IsNull(0) ? 0 : static_cast<uint64_t>(s.Int(0)) + 1;
}

}  // namespace

namespace sqlite {

absl::Status AppendLedgerIn(Db& db, const LedgerAppend& batch, LedgerAppended* out) {
  if (batch.entries.size() != batch.events.size()) {
    return absl::InvalidArgumentError("ledger: entries and events differ in number");
  }
  TW_ASSIGN_OR_RETURN(uint64_t size, LedgerSizeIn(db));
  {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("INSERT OR IGNORE INTO ledger_signers VALUES "
                                           "(?1, ?2, ?3)"));
    s.Bind(1, base::ByteView(batch.signer.id))
        .Bind(2, int64_t{static_cast<uint8_t>(batch.signer.signer.kind)})
        .Bind(3, base::ByteView(batch.signer.signer.der));
    TW_RETURN_IF_ERROR(s.Run());
  }
  DbNodes nodes(db);
  for (size_t i = 0; i < batch.entries.size(); ++i) {
    const ledger::Event& event = batch.events[i];
    ledger::Entry entry = batch.entries[i];
    entry.index = size;
    ledger::EntryRow row = ledger::RowOf(entry, event);
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("INSERT INTO ledger_entries VALUES "
                                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                                           "?13)"));
    s.Bind(1, static_cast<int64_t>(row.index)).Bind(2, row.event_id).Bind(3, row.time_ms);
    s.Bind(4, row.type).Bind(5, row.instance).Bind(6, row.agent).Bind(7, row.principal);
    s.Bind(8, row.resource).Bind(9, row.action).Bind(10, row.decision);
    s.Bind(11, base::ByteView(row.signer_id)).Bind(12, base::ByteView(row.entry));
    s.Bind(13, row.caller);
    absl::Status inserted = s.Run();
    if (absl::IsAlreadyExists(inserted)) {
      // The event id is taken (the unique index said so without a lookup on the common
      // path): a replay of the same bytes keeps its index, anything else is refused.
      TW_ASSIGN_OR_RETURN(Stmt q,
                          db.Prepare("SELECT idx, entry FROM ledger_entries WHERE event_id = ?1"));
      q.Bind(1, event.id);
      TW_ASSIGN_OR_RETURN(bool found, q.Step());
      absl::StatusOr<ledger::Entry> stored =
          found ? ledger::DecodeEntry(q.Blob(1)) : absl::NotFoundError("event vanished");
      if (!stored.ok() || stored->event != entry.event) {
        return absl::AlreadyExistsError(
            absl::StrCat("event ", event.id, " is already in the ledger with other contents"));
      }
      out->indexes.push_back(static_cast<uint64_t>(q.Int(0)));
      continue;
    }
    TW_RETURN_IF_ERROR(inserted);
    // The leaf, then every perfect subtree it completes (RFC 9162 §2.1.1 MTH of aligned
    // power-of-two ranges): the left sibling is already stored.
    TW_ASSIGN_OR_RETURN(Stmt n, db.Prepare("INSERT INTO ledger_nodes VALUES (?1, ?2, ?3)"));
    ledger::NodeId id{0, size};
    ledger::Hash hash = ledger::LeafHash(row.entry);
    for (;;) {
      n.Bind(1, int64_t{id.level}).Bind(2, static_cast<int64_t>(id.index));
      n.Bind(3, base::ByteView(hash));
      TW_RETURN_IF_ERROR(n.Run());
      n.Reset();
      if (id.index % 2 == 0) break;
      TW_ASSIGN_OR_RETURN(ledger::Hash left, nodes.Node({id.level, id.index - 1}));
      hash = ledger::NodeHash(left, hash);
      id = ledger::NodeId{id.level + 1, id.index / 2};
    }
    out->indexes.push_back(size++);
  }
  out->tree_size = size;
  return absl::OkStatus();
}

absl::Status AppendAudit(Db& db, const LedgerAppend* audit) {
  if (audit == nullptr) return absl::OkStatus();
  LedgerAppended ignored;
  return AppendLedgerIn(db, *audit, &ignored);
}

}  // namespace sqlite

absl::StatusOr<LedgerAppended> SqliteStore::AppendLedger(const LedgerAppend& batch) {
  LedgerAppended out;
  TW_RETURN_IF_ERROR(Write([&](Db& db) -> absl::Status {
    out = LedgerAppended{};
    return sqlite::AppendLedgerIn(db, batch, &out);
  }));
  return out;
}

absl::Status SqliteStore::ReadLedgerTree(
    const std::function<absl::Status(uint64_t size, const ledger::NodeSource& nodes)>& fn) {
  return ReadSnapshot([&fn](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(uint64_t size, LedgerSizeIn(db));
    DbNodes nodes(db);
    return fn(size, nodes);
  });
}

absl::StatusOr<std::vector<ledger::EntryRow>> SqliteStore::LedgerEntries(uint64_t start,
                                                                         uint64_t end) {
  static const std::string sql = absl::StrCat("SELECT ", kEntryColumns, " FROM ledger_entries ",
                                              "WHERE idx >= ?1 AND idx < ?2 ORDER BY idx");
  std::vector<ledger::EntryRow> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql.c_str()));
    s.Bind(1, IndexBound(start)).Bind(2, IndexBound(end));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      out.push_back(ReadEntryRow(s));
    }
  }));
  return out;
}

absl::StatusOr<ledger::EntryRow> SqliteStore::LedgerEntryById(absl::string_view event_id) {
  static const std::string sql =
      absl::StrCat("SELECT ", kEntryColumns, " FROM ledger_entries WHERE event_id = ?1");
  ledger::EntryRow out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql.c_str()));
    s.Bind(1, event_id);
    TW_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found)
      return absl::NotFoundError(absl::StrCat("event ", event_id, " is not in the ledger"));
    out = ReadEntryRow(s);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ledger::EntryRow>> SqliteStore::QueryLedger(const LedgerQuery& q) {
  // Only the filters given appear in the SQL, so SQLite can pick the matching index.
  std::string sql = absl::StrCat("SELECT ", kEntryColumns, " FROM ledger_entries WHERE 1");
  std::vector<std::string> texts;
  auto text = [&](const char* column, const std::string& value) {
    if (value.empty()) return;
    texts.push_back(value);
    absl::StrAppend(&sql, " AND ", column, " = ?", texts.size());
  };
  text("instance", q.instance);
  text("caller", q.caller);
  text("agent", q.agent);
  text("principal", q.principal);
  text("resource", q.resource);
  text("action", q.action);
  text("decision", q.decision);
  text("type", q.type);
  int next = static_cast<int>(texts.size());
  if (q.since_ms) absl::StrAppend(&sql, " AND time >= ?", ++next);
  if (q.until_ms) absl::StrAppend(&sql, " AND time < ?", ++next);
  absl::StrAppend(&sql, " ORDER BY idx LIMIT ?", ++next);
  std::vector<ledger::EntryRow> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.PrepareText(sql));
    int i = 0;
    for (const std::string& t : texts) s.Bind(++i, t);
    if (q.since_ms) s.Bind(++i, *q.since_ms);
    if (q.until_ms) s.Bind(++i, *q.until_ms);
    s.Bind(++i, static_cast<int64_t>(q.limit));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      out.push_back(ReadEntryRow(s));
    }
  }));
  return out;
}

absl::StatusOr<ledger::SignerRecord> SqliteStore::LedgerSigner(const ledger::Hash& id) {
  ledger::SignerRecord out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT kind, der FROM ledger_signers WHERE id = ?1"));
    s.Bind(1, base::ByteView(id));
    TW_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return absl::NotFoundError("ledger signer is unknown");
    out = ledger::SignerRecord{static_cast<ledger::SignerKind>(s.Int(0)), s.Blob(1)};
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteStore::InsertTreeHead(const ledger::TreeHead& head) {
  return Write([&head](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("INSERT INTO ledger_tree_heads "
                                           "(tree_size, timestamp, root, signature) "
                                           "VALUES (?1, ?2, ?3, ?4)"));
    s.Bind(1, static_cast<int64_t>(head.tree_size)).Bind(2, head.timestamp_ms);
    s.Bind(3, base::ByteView(head.root)).Bind(4, base::ByteView(head.signature));
    return s.Run();
  });
}

absl::StatusOr<std::optional<ledger::TreeHead>> SqliteStore::LatestTreeHead() {
  std::optional<ledger::TreeHead> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT tree_size, timestamp, root, signature FROM "
                                           "ledger_tree_heads ORDER BY tree_size DESC, "
                                           "timestamp DESC, id DESC LIMIT 1"));
    TW_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) out = ReadTreeHead(s);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ledger::TreeHead>> SqliteStore::ListTreeHeads(
    std::optional<uint64_t> tree_size) {
  std::vector<ledger::TreeHead> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT tree_size, timestamp, root, signature FROM "
                                           "ledger_tree_heads WHERE ?1 IS NULL OR tree_size = ?1 "
                                           "ORDER BY tree_size, timestamp, id"));
    if (tree_size) s.Bind(1, static_cast<int64_t>(*tree_size));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      out.push_back(ReadTreeHead(s));
    }
  }));
  return out;
}

absl::Status SqliteStore::ExportLedger(ledger::ExportHeader header, uint64_t start, uint64_t end,
                                       const LedgerSink& sink) {
  return ReadSnapshot([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(uint64_t size, LedgerSizeIn(db));
    header.tree_size = size;
    header.start = std::min(start, size);
    header.end = std::clamp(end, header.start, size);
    TW_RETURN_IF_ERROR(sink(header));
    {
      TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT id, kind, der FROM ledger_signers"));
      for (;;) {
        TW_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        ledger::StoredSigner signer{HashOf(s, 0),
                                    {static_cast<ledger::SignerKind>(s.Int(1)), s.Blob(2)}};
        TW_RETURN_IF_ERROR(sink(signer));
      }
    }
    {
      TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT tree_size, timestamp, root, signature FROM "
                                             "ledger_tree_heads WHERE tree_size > ?1 AND "
                                             "tree_size <= ?2 OR (?1 = 0 AND tree_size = 0) "
                                             "ORDER BY tree_size, timestamp, id"));
      s.Bind(1, static_cast<int64_t>(header.start)).Bind(2, static_cast<int64_t>(header.end));
      for (;;) {
        TW_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        TW_RETURN_IF_ERROR(sink(ReadTreeHead(s)));
      }
    }
    // One cursor per level; a node (l, j) is emitted after the entry that completes it,
    // (j + 1) * 2^l - 1, so the reader can check it as soon as it can recompute it.
    std::vector<std::optional<Stmt>> levels;
    std::vector<bool> has_row;
    for (int l = 0; (uint64_t{1} << l) <= header.end && l < 64; ++l) {
      uint64_t width = uint64_t{1} << l;
      TW_ASSIGN_OR_RETURN(Stmt s, db.PrepareText(absl::StrCat(
                                      "SELECT idx, hash FROM ledger_nodes WHERE level = ", l,
                                      " AND idx >= ?1 AND idx < ?2 ORDER BY idx")));
      s.Bind(1, static_cast<int64_t>(((header.start + width) >> l) - 1));
      s.Bind(2, static_cast<int64_t>(header.end >> l));
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      levels.emplace_back(std::move(s));
      has_row.push_back(row);
    }
    static const std::string sql = absl::StrCat(
        "SELECT ", kEntryColumns, " FROM ledger_entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx");
    TW_ASSIGN_OR_RETURN(Stmt entries, db.Prepare(sql.c_str()));
    entries.Bind(1, static_cast<int64_t>(header.start)).Bind(2, static_cast<int64_t>(header.end));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, entries.Step());
      if (!row) break;
      ledger::EntryRow e = ReadEntryRow(entries);
      TW_RETURN_IF_ERROR(sink(e));
      // Every stored node completed at or before this entry, in level order.
      for (size_t l = 0; l < levels.size(); ++l) {
        while (has_row[l]) {
          Stmt& s = *levels[l];
          uint64_t j = static_cast<uint64_t>(s.Int(0));
          if (((j + 1) << l) - 1 > e.index) break;
          TW_RETURN_IF_ERROR(sink(ledger::NodeRecord{{static_cast<int>(l), j}, HashOf(s, 1)}));
          TW_ASSIGN_OR_RETURN(bool more, s.Step());
          has_row[l] = more;
        }
      }
    }
    for (size_t l = 0; l < levels.size(); ++l) {
      while (has_row[l]) {
        Stmt& s = *levels[l];
        TW_RETURN_IF_ERROR(sink(ledger::NodeRecord{
            {static_cast<int>(l), static_cast<uint64_t>(s.Int(0))}, HashOf(s, 1)}));
        TW_ASSIGN_OR_RETURN(bool more, s.Step());
        has_row[l] = more;
      }
    }
    return absl::OkStatus();
  });
}

}  // namespace tw::store
