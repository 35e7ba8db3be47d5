#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <future>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

namespace tw::store {
namespace {

// Schema migrations, applied in order; PRAGMA user_version counts the applied ones.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE identities (
  instance_id TEXT PRIMARY KEY NOT NULL,
  spiffe_id TEXT NOT NULL,
  name TEXT NOT NULL,
  parent TEXT REFERENCES identities(instance_id),
  principal TEXT NOT NULL,
  policy_version INTEGER NOT NULL,
  depth INTEGER NOT NULL,
  serial TEXT NOT NULL,
  scopes TEXT NOT NULL,
  trust_level TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_sequence INTEGER
);
CREATE INDEX identities_by_name ON identities(name);
CREATE INDEX identities_by_principal ON identities(principal);
CREATE INDEX identities_by_parent ON identities(parent) WHERE parent IS NOT NULL;
CREATE TABLE revocations (
  sequence INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  target TEXT NOT NULL,
  reason TEXT NOT NULL,
  revoked_at INTEGER NOT NULL,
  instances TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX revocations_by_expiry ON revocations(expires_at);
CREATE TABLE policies (
  version INTEGER PRIMARY KEY,
  sha256 TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  source TEXT NOT NULL
);
CREATE TABLE tokens (
  id TEXT PRIMARY KEY NOT NULL,
  principal TEXT NOT NULL,
  secret_hash BLOB NOT NULL,
  admin INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
INSERT INTO counters VALUES ('revocation_sequence', 0);
)sql",
    R"sql(
ALTER TABLE tokens ADD COLUMN auditor INTEGER NOT NULL DEFAULT 0;
CREATE TABLE ledger_entries (
  idx INTEGER PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  time INTEGER NOT NULL,
  type TEXT NOT NULL,
  instance TEXT NOT NULL,
  agent TEXT NOT NULL,
  principal TEXT NOT NULL,
  resource TEXT NOT NULL,
  action TEXT NOT NULL,
  decision TEXT NOT NULL,
  signer BLOB NOT NULL,
  entry BLOB NOT NULL
);
CREATE INDEX ledger_by_instance ON ledger_entries(instance, idx);
CREATE INDEX ledger_by_agent ON ledger_entries(agent, idx);
CREATE INDEX ledger_by_principal ON ledger_entries(principal, idx);
CREATE INDEX ledger_by_resource ON ledger_entries(resource, idx);
CREATE INDEX ledger_by_action ON ledger_entries(action, idx);
CREATE INDEX ledger_by_time ON ledger_entries(time);
CREATE TABLE ledger_nodes (
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  hash BLOB NOT NULL,
  PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE ledger_signers (id BLOB PRIMARY KEY NOT NULL, kind INTEGER NOT NULL, der BLOB NOT NULL);
CREATE TABLE ledger_tree_heads (
  id INTEGER PRIMARY KEY,
  tree_size INTEGER NOT NULL,
  timestamp INTEGER NOT NULL,
  root BLOB NOT NULL,
  signature BLOB NOT NULL
);
CREATE INDEX ledger_tree_heads_by_size ON ledger_tree_heads(tree_size, timestamp);
)sql",
    R"sql(
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE identities ADD COLUMN revoked_at_ms INTEGER;
UPDATE identities SET revoked_at_ms = 1000 * (SELECT revoked_at FROM revocations r
                                              WHERE r.sequence = identities.revoked_sequence)
  WHERE revoked_sequence IS NOT NULL;
ALTER TABLE ledger_entries ADD COLUMN caller TEXT NOT NULL DEFAULT '';
CREATE INDEX ledger_by_caller ON ledger_entries(caller, idx) WHERE caller != '';
)sql",
};

constexpr size_t kMaxReaders = 16;

int64_t Seconds(absl::Time t) { return absl::ToUnixSeconds(t); }
absl::Time FromSeconds(int64_t s) { return absl::FromUnixSeconds(s); }

// A prepared statement borrowed from a Db; reset when it goes out of scope.
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  Stmt(Stmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() { Reset(); }
  void Reset() {
    if (s_ == nullptr) return;
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, absl::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, base::ByteView v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  // True when a row is ready; false when done.
  absl::StatusOr<bool> Step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    sqlite3* db = sqlite3_db_handle(s_);
    const char* msg = sqlite3_errmsg(db);
    const int extended = sqlite3_extended_errcode(db);
    if (extended == SQLITE_CONSTRAINT_UNIQUE || extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return absl::AlreadyExistsError(absl::StrCat("store: ", msg));
    }
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
      return absl::FailedPreconditionError(absl::StrCat("store: ", msg));
    }
    return absl::InternalError(absl::StrCat("store: ", msg));
  }
  absl::Status Run() { return Step().status(); }
  int64_t Int(int col) { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string Text(int col) {
    const unsigned char* p = sqlite3_column_text(s_, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }
  base::Bytes Blob(int col) {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, col));
    return p == nullptr ? base::Bytes() : base::Bytes(p, p + sqlite3_column_bytes(s_, col));
  }

 private:
  sqlite3_stmt* s_;
};

}  // namespace

class SqliteStore::Db {
 public:
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& path) {
    sqlite3* raw = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    std::unique_ptr<Db> db(new Db(raw));
    if (rc != SQLITE_OK) {
      return absl::InternalError(absl::StrCat("store: cannot open ", path, ": ",
                                              raw ? sqlite3_errmsg(raw) : "out of memory"));
    }
    sqlite3_busy_timeout(raw, 10000);
    TW_RETURN_IF_ERROR(
        db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
                 "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"));
    return db;
  }
  ~Db() {
    for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
    for (auto& [sql, stmt] : dynamic_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  absl::Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      absl::Status s = absl::InternalError(absl::StrCat("store: ", err ? err : "exec failed"));
      sqlite3_free(err);
      return s;
    }
    return absl::OkStatus();
  }

  // `sql` must be a string literal: statements are cached by its address.
  absl::StatusOr<Stmt> Prepare(const char* sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
          SQLITE_OK) {
        return absl::InternalError(absl::StrCat("store: ", sqlite3_errmsg(db_)));
      }
      it = stmts_.emplace(sql, stmt).first;
    }
    return absl::StatusOr<Stmt>(absl::in_place, it->second);
  }

  // For SQL built at run time from a bounded set of shapes: cached by its text.
  absl::StatusOr<Stmt> PrepareText(const std::string& sql) {
    auto it = dynamic_.find(sql);
    if (it == dynamic_.end()) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
          SQLITE_OK) {
        return absl::InternalError(absl::StrCat("store: ", sqlite3_errmsg(db_)));
      }
      it = dynamic_.emplace(sql, stmt).first;
    }
    return absl::StatusOr<Stmt>(absl::in_place, it->second);
  }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  absl::flat_hash_map<const char*, sqlite3_stmt*> stmts_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> dynamic_;
};

struct SqliteStore::Job {
  std::function<absl::Status(Db&)> fn;
  std::promise<absl::Status> done;
};

namespace {

constexpr char kIdentityColumns[] =
    "instance_id, spiffe_id, name, parent, principal, policy_version, depth, serial, scopes, "
    "trust_level, not_before, not_after, created_at, revoked_sequence, revoked_at_ms";

IdentityRecord ReadIdentity(Stmt& s) {
  IdentityRecord r;
  r.instance_id = s.Text(0);
  r.spiffe_id = s.Text(1);
  r.name = s.Text(2);
  r.parent = s.Text(3);
  r.principal = s.Text(4);
  r.policy_version = s.Int(5);
  r.depth = static_cast<int>(s.Int(6));
  r.serial_hex = s.Text(7);
  std::string scopes = s.Text(8);
  r.scopes = absl::StrSplit(scopes, ' ', absl::SkipEmpty());
  r.trust_level = s.Text(9);
  r.not_before = FromSeconds(s.Int(10));
  r.not_after = FromSeconds(s.Int(11));
  r.created_at = FromSeconds(s.Int(12));
  if (!s.IsNull(13)) r.revoked_sequence = s.Int(13);
  if (!s.IsNull(14)) r.revoked_at = absl::FromUnixMillis(s.Int(14));
  return r;
}

revocation::Entry ReadRevocation(Stmt& s) {
  revocation::Entry e;
  e.sequence = s.Int(0);
  std::string kind = s.Text(1);
  for (revocation::Kind k : {revocation::Kind::kInstance, revocation::Kind::kAgent,
                             revocation::Kind::kSubtree, revocation::Kind::kPrincipal}) {
    if (revocation::KindName(k) == kind) e.kind = k;
  }
  e.target = s.Text(2);
  e.reason = s.Text(3);
  e.revoked_at = FromSeconds(s.Int(4));
  std::string instances = s.Text(5);
  e.instances = absl::StrSplit(instances, ' ', absl::SkipEmpty());
  e.expires_at = FromSeconds(s.Int(6));
  return e;
}

// The instances a revocation reaches: the seeds chosen by the kind, and every descendant,
// limited to those not yet revoked and not yet expired.
#define TW_REVOCATION_SQL(seed)                                                             \
  "WITH RECURSIVE sub(id) AS (" seed                                                        \
  " UNION SELECT i.instance_id FROM identities i JOIN sub ON i.parent = sub.id) "           \
  "SELECT instance_id, not_after FROM identities WHERE instance_id IN (SELECT id FROM sub)" \
  " AND revoked_sequence IS NULL AND not_after > ?2 ORDER BY rowid"
constexpr char kReachByInstance[] =
    TW_REVOCATION_SQL("SELECT instance_id FROM identities WHERE instance_id = ?1");
constexpr char kReachByAgent[] =
    TW_REVOCATION_SQL("SELECT instance_id FROM identities WHERE name = ?1");
constexpr char kReachByPrincipal[] =
    TW_REVOCATION_SQL("SELECT instance_id FROM identities WHERE principal = ?1");
#undef TW_REVOCATION_SQL

constexpr char kEntryColumns[] =
    "idx, event_id, time, type, instance, agent, principal, resource, action, decision, "
    "signer, entry, caller";

ledger::Hash HashOf(Stmt& s, int col) {
  ledger::Hash h{};
  base::Bytes b = s.Blob(col);
  if (b.size() == h.size()) std::copy(b.begin(), b.end(), h.begin());
  return h;
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
  explicit DbNodes(SqliteStore::Db& db) : db_(db) {}
  absl::StatusOr<ledger::Hash> Node(ledger::NodeId id) const override;

 private:
  SqliteStore::Db& db_;
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

absl::StatusOr<uint64_t> LedgerSizeIn(SqliteStore::Db& db) {
  // A bare MAX over the rowid is answered from the b-tree's last page; any expression
  // around it would make SQLite scan the table.
  TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT MAX(idx) FROM ledger_entries"));
  TW_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return absl::InternalError("store: no ledger size");
  return s.IsNull(0) ? 0 : static_cast<uint64_t>(s.Int(0)) + 1;
}

// Appends `batch` inside the writer's current transaction.
absl::Status AppendLedgerIn(SqliteStore::Db& db, const LedgerAppend& batch, LedgerAppended* out) {
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

absl::Status Audit(SqliteStore::Db& db, const LedgerAppend* audit) {
  if (audit == nullptr) return absl::OkStatus();
  LedgerAppended ignored;
  return AppendLedgerIn(db, *audit, &ignored);
}
}  // namespace

SqliteStore::SqliteStore(std::string path) : path_(std::move(path)) {}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                               bool exclusive) {
  std::optional<base::LockFile> lock;
  if (exclusive) {
    TW_ASSIGN_OR_RETURN(lock, base::LockFile::Acquire(path + ".lock"));
  }
  // Create the file 0600 before SQLite does (it would honour the umask).
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("store: cannot create ", path));
  ::close(fd);
  std::unique_ptr<SqliteStore> store(new SqliteStore(path));
  store->lock_ = std::move(lock);
  TW_ASSIGN_OR_RETURN(store->writer_db_, Db::Open(path));
  Db& db = *store->writer_db_;
  int64_t version = 0;
  {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("PRAGMA user_version"));
    TW_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) version = s.Int(0);
  }
  constexpr int64_t kLatest = std::size(kMigrations);
  if (version > kLatest) {
    return absl::FailedPreconditionError(
        absl::StrCat("store: schema version ", version, " is newer than this build's ", kLatest));
  }
  for (; version < kLatest; ++version) {
    TW_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    absl::Status s = db.Exec(kMigrations[version]);
    if (s.ok()) s = db.Exec(absl::StrCat("PRAGMA user_version = ", version + 1).c_str());
    if (!s.ok()) {
      db.Exec("ROLLBACK").IgnoreError();
      return s;
    }
    TW_RETURN_IF_ERROR(db.Exec("COMMIT"));
  }
  // The commit that crosses this many WAL pages (4 KiB) checkpoints them before its callers
  // hear back: 8 MiB keeps that stall a few milliseconds (32 MiB cost open-loop issuance a
  // p99 of 17 ms), and still batches enough for appends. A checkpoint on another thread
  // would not do: under steady writes it never catches up, and the WAL never restarts.
  TW_RETURN_IF_ERROR(db.Exec("PRAGMA wal_autocheckpoint=2000"));
  store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  return store;
}

SqliteStore::~SqliteStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

absl::Status SqliteStore::Write(std::function<absl::Status(Db&)> fn) {
  Job job{std::move(fn), {}};
  std::future<absl::Status> done = job.done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("store: shutting down");
    queue_.push_back(&job);
  }
  cv_.notify_one();
  return done.get();
}

void SqliteStore::WriterLoop() {
  Db& db = *writer_db_;
  std::vector<Job*> batch;
  std::vector<absl::Status> results;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to write
      batch.assign(queue_.begin(), queue_.end());
      queue_.clear();
    }
    results.assign(batch.size(), absl::OkStatus());
    absl::Status tx = db.Exec("BEGIN IMMEDIATE");
    for (size_t i = 0; i < batch.size() && tx.ok(); ++i) {
      // Each job in its own savepoint: a failing job leaves the others' writes intact.
      tx = db.Exec("SAVEPOINT job");
      if (!tx.ok()) break;
      results[i] = batch[i]->fn(db);
      if (!results[i].ok()) tx = db.Exec("ROLLBACK TO job");
      if (tx.ok()) tx = db.Exec("RELEASE job");
    }
    if (tx.ok()) tx = db.Exec("COMMIT");
    if (!tx.ok()) {
      db.Exec("ROLLBACK").IgnoreError();
      for (absl::Status& r : results) r = tx;
    }
    for (size_t i = 0; i < batch.size(); ++i) batch[i]->done.set_value(results[i]);
  }
}

absl::Status SqliteStore::Read(const std::function<absl::Status(Db&)>& fn) {
  std::unique_ptr<Db> db;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!readers_.empty()) {
      db = std::move(readers_.back());
      readers_.pop_back();
    }
  }
  if (db == nullptr) {
    TW_ASSIGN_OR_RETURN(db, Db::Open(path_));
  }
  absl::Status status = fn(*db);
  std::lock_guard<std::mutex> lock(mu_);
  if (readers_.size() < kMaxReaders) readers_.push_back(std::move(db));
  return status;
}

absl::Status SqliteStore::InsertIdentity(const IdentityRecord& r, const LedgerAppend* audit) {
  return Write([&r, audit](Db& db) -> absl::Status {
    if (!r.parent.empty()) {
      TW_ASSIGN_OR_RETURN(
          Stmt p, db.Prepare("SELECT revoked_sequence FROM identities WHERE instance_id = ?1"));
      p.Bind(1, r.parent);
      TW_ASSIGN_OR_RETURN(bool found, p.Step());
      if (!found) return absl::FailedPreconditionError("parent instance is unknown");
      if (!p.IsNull(0)) return absl::FailedPreconditionError("parent instance is revoked");
    }
    TW_ASSIGN_OR_RETURN(
        Stmt s, db.Prepare("INSERT INTO identities VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, NULL)"));
    s.Bind(1, r.instance_id).Bind(2, r.spiffe_id).Bind(3, r.name);
    if (r.parent.empty()) {
      s.BindNull(4);
    } else {
      s.Bind(4, r.parent);
    }
    s.Bind(5, r.principal).Bind(6, r.policy_version).Bind(7, int64_t{r.depth});
    s.Bind(8, r.serial_hex).Bind(9, absl::StrJoin(r.scopes, " ")).Bind(10, r.trust_level);
    s.Bind(11, Seconds(r.not_before)).Bind(12, Seconds(r.not_after));
    s.Bind(13, Seconds(r.created_at));
    absl::Status st = s.Run();
    if (absl::IsAlreadyExists(st)) {
      return absl::AlreadyExistsError(absl::StrCat("instance ", r.instance_id, " exists"));
    }
    TW_RETURN_IF_ERROR(st);
    return Audit(db, audit);
  });
}

absl::Status SqliteStore::RenewIdentity(const IdentityRecord& r, absl::string_view current_serial,
                                        const LedgerAppend* audit) {
  return Write([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(
        Stmt p,
        db.Prepare("SELECT revoked_sequence, serial FROM identities WHERE instance_id = ?1"));
    p.Bind(1, r.instance_id);
    TW_ASSIGN_OR_RETURN(bool found, p.Step());
    if (!found) {
      return absl::NotFoundError(absl::StrCat("instance ", r.instance_id, " is unknown"));
    }
    if (!p.IsNull(0)) {
      return absl::FailedPreconditionError(absl::StrCat("instance ", r.instance_id, " is revoked"));
    }
    if (p.Text(1) != current_serial) {
      return absl::FailedPreconditionError(absl::StrCat(
          "certificate ", current_serial, " is no longer the current one of ", r.instance_id));
    }
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE identities SET serial = ?2, not_before = ?3, "
                                           "not_after = ?4, scopes = ?5, trust_level = ?6, "
                                           "policy_version = ?7 WHERE instance_id = ?1"));
    s.Bind(1, r.instance_id).Bind(2, r.serial_hex);
    s.Bind(3, Seconds(r.not_before)).Bind(4, Seconds(r.not_after));
    s.Bind(5, absl::StrJoin(r.scopes, " ")).Bind(6, r.trust_level).Bind(7, r.policy_version);
    TW_RETURN_IF_ERROR(s.Run());
    return Audit(db, audit);
  });
}

absl::StatusOr<IdentityRecord> SqliteStore::GetIdentity(absl::string_view instance_id) {
  static const std::string sql =
      absl::StrCat("SELECT ", kIdentityColumns, " FROM identities WHERE instance_id = ?1");
  IdentityRecord out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql.c_str()));
    s.Bind(1, instance_id);
    TW_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("instance ", instance_id, " is unknown"));
    out = ReadIdentity(s);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<IdentityRecord>> SqliteStore::ListIdentities(const IdentityFilter& f) {
  static const std::string sql = absl::StrCat(
      "SELECT ", kIdentityColumns,
      " FROM identities WHERE (?1 = '' OR name = ?1) AND (?2 = '' OR principal = ?2)"
      " AND (?3 IS NULL OR (revoked_sequence IS NULL AND not_before <= ?3 AND not_after > ?3))"
      " ORDER BY rowid DESC LIMIT ?4");
  std::vector<IdentityRecord> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql.c_str()));
    s.Bind(1, f.agent).Bind(2, f.principal).Bind(4, static_cast<int64_t>(f.limit));
    if (f.live_at) s.Bind(3, Seconds(*f.live_at));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      out.push_back(ReadIdentity(s));
    }
  }));
  return out;
}

absl::StatusOr<revocation::Entry> SqliteStore::Revoke(revocation::Kind kind,
                                                      absl::string_view target,
                                                      absl::string_view reason, absl::Time now,
                                                      const LedgerAppend* audit) {
  revocation::Entry entry;
  TW_RETURN_IF_ERROR(Write([&](Db& db) -> absl::Status {
    entry = revocation::Entry{.kind = kind,
                              .target = std::string(target),
                              .reason = std::string(reason),
                              .revoked_at = now,
                              .expires_at = now};
    const char* reach = kReachByInstance;
    if (kind == revocation::Kind::kAgent) reach = kReachByAgent;
    if (kind == revocation::Kind::kPrincipal) reach = kReachByPrincipal;
    if (reach == kReachByInstance) {
      TW_ASSIGN_OR_RETURN(Stmt e, db.Prepare("SELECT 1 FROM identities WHERE instance_id = ?1"));
      e.Bind(1, target);
      TW_ASSIGN_OR_RETURN(bool found, e.Step());
      if (!found) return absl::NotFoundError(absl::StrCat("instance ", target, " is unknown"));
    }
    {
      TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare(reach));
      s.Bind(1, target).Bind(2, Seconds(now));
      for (;;) {
        TW_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        entry.instances.push_back(s.Text(0));
        entry.expires_at = std::max(entry.expires_at, FromSeconds(s.Int(1)));
      }
    }
    {
      TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE counters SET value = value + 1 WHERE name = "
                                             "'revocation_sequence' RETURNING value"));
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::InternalError("store: revocation counter missing");
      entry.sequence = s.Int(0);
    }
    {
      TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE identities SET revoked_sequence = ?2, "
                                             "revoked_at_ms = ?3 WHERE instance_id = ?1"));
      for (const std::string& id : entry.instances) {
        s.Bind(1, id).Bind(2, entry.sequence).Bind(3, absl::ToUnixMillis(now));
        TW_RETURN_IF_ERROR(s.Run());
        s.Reset();
      }
    }
    TW_ASSIGN_OR_RETURN(Stmt s,
                        db.Prepare("INSERT INTO revocations VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    s.Bind(1, entry.sequence).Bind(2, revocation::KindName(kind)).Bind(3, target).Bind(4, reason);
    s.Bind(5, Seconds(now)).Bind(6, absl::StrJoin(entry.instances, " "));
    s.Bind(7, Seconds(entry.expires_at));
    TW_RETURN_IF_ERROR(s.Run());
    return Audit(db, audit);
  }));
  return entry;
}

absl::StatusOr<std::vector<revocation::Entry>> SqliteStore::ListRevocations(int64_t after,
                                                                            size_t limit) {
  std::vector<revocation::Entry> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT * FROM revocations WHERE sequence > ?1 "
                                           "ORDER BY sequence LIMIT ?2"));
    s.Bind(1, after).Bind(2, static_cast<int64_t>(limit));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      out.push_back(ReadRevocation(s));
    }
  }));
  return out;
}

absl::StatusOr<int64_t> SqliteStore::LastRevocationSequence() {
  int64_t out = 0;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(
        Stmt s, db.Prepare("SELECT value FROM counters WHERE name = 'revocation_sequence'"));
    TW_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) out = s.Int(0);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<size_t> SqliteStore::PruneRevocations(absl::Time now) {
  size_t pruned = 0;
  TW_RETURN_IF_ERROR(Write([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(
        Stmt s, db.Prepare("DELETE FROM revocations WHERE expires_at < ?1 RETURNING sequence"));
    s.Bind(1, Seconds(now));
    pruned = 0;
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      ++pruned;
    }
  }));
  return pruned;
}

absl::StatusOr<int64_t> SqliteStore::AppendPolicy(absl::string_view source,
                                                  absl::string_view sha256_hex,
                                                  absl::Time created_at,
                                                  const LedgerAppend* audit) {
  int64_t version = 0;
  TW_RETURN_IF_ERROR(Write([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(
        Stmt s, db.Prepare("INSERT INTO policies VALUES "
                           "((SELECT COALESCE(MAX(version), 0) + 1 FROM policies), ?1, ?2, ?3) "
                           "RETURNING version"));
    s.Bind(1, sha256_hex).Bind(2, Seconds(created_at)).Bind(3, source);
    TW_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::InternalError("store: policy insert returned nothing");
    version = s.Int(0);
    TW_RETURN_IF_ERROR(s.Run());
    return Audit(db, audit);
  }));
  return version;
}

absl::StatusOr<StoredPolicy> SqliteStore::GetPolicy(int64_t version) {
  StoredPolicy out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT version, sha256, created_at, source FROM "
                                           "policies WHERE version = ?1 OR (?1 = 0 AND version "
                                           "= (SELECT MAX(version) FROM policies))"));
    s.Bind(1, version);
    TW_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) {
      return absl::NotFoundError(version == 0
                                     ? std::string("no policy has been applied")
                                     : absl::StrCat("policy version ", version, " does not exist"));
    }
    out = StoredPolicy{s.Int(0), s.Text(1), FromSeconds(s.Int(2)), s.Text(3)};
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<StoredPolicy>> SqliteStore::ListPolicies() {
  std::vector<StoredPolicy> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(
        Stmt s, db.Prepare("SELECT version, sha256, created_at FROM policies ORDER BY version"));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      out.push_back(StoredPolicy{s.Int(0), s.Text(1), FromSeconds(s.Int(2)), {}});
    }
  }));
  return out;
}

absl::Status SqliteStore::InsertToken(const TokenRecord& t, const LedgerAppend* audit) {
  return Write([&t, audit](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("INSERT INTO tokens VALUES "
                                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)"));
    s.Bind(1, t.id).Bind(2, t.principal).Bind(3, base::ByteView(t.secret_hash));
    s.Bind(4, int64_t{t.admin}).Bind(5, Seconds(t.created_at)).Bind(6, int64_t{t.auditor});
    if (t.expires_at) s.Bind(7, Seconds(*t.expires_at));
    TW_RETURN_IF_ERROR(s.Run());
    return Audit(db, audit);
  });
}

absl::StatusOr<std::vector<TokenRecord>> SqliteStore::ListTokens() {
  std::vector<TokenRecord> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT id, principal, secret_hash, admin, created_at, "
                                           "auditor, expires_at, revoked_at FROM tokens "
                                           "ORDER BY created_at, id"));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      TokenRecord t{s.Text(0),    s.Text(1), s.Blob(2), s.Int(3) != 0, FromSeconds(s.Int(4)),
                    s.Int(5) != 0};
      if (!s.IsNull(6)) t.expires_at = FromSeconds(s.Int(6));
      if (!s.IsNull(7)) t.revoked_at = FromSeconds(s.Int(7));
      out.push_back(std::move(t));
    }
  }));
  return out;
}

absl::Status SqliteStore::RevokeToken(absl::string_view id, absl::Time now,
                                      const LedgerAppend* audit) {
  return Write([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt p, db.Prepare("SELECT revoked_at FROM tokens WHERE id = ?1"));
    p.Bind(1, id);
    TW_ASSIGN_OR_RETURN(bool found, p.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("token ", id, " is unknown"));
    if (!p.IsNull(0)) {
      return absl::FailedPreconditionError(absl::StrCat("token ", id, " is already revoked"));
    }
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1"));
    s.Bind(1, id).Bind(2, Seconds(now));
    TW_RETURN_IF_ERROR(s.Run());
    return Audit(db, audit);
  });
}

absl::StatusOr<LedgerAppended> SqliteStore::AppendLedger(const LedgerAppend& batch) {
  LedgerAppended out;
  TW_RETURN_IF_ERROR(Write([&](Db& db) -> absl::Status {
    out = LedgerAppended{};
    return AppendLedgerIn(db, batch, &out);
  }));
  return out;
}

absl::Status SqliteStore::ReadSnapshot(const std::function<absl::Status(Db&)>& fn) {
  return Read([&fn](Db& db) -> absl::Status {
    TW_RETURN_IF_ERROR(db.Exec("BEGIN"));
    absl::Status s = fn(db);
    absl::Status end = db.Exec(s.ok() ? "COMMIT" : "ROLLBACK");
    return s.ok() ? end : s;
  });
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
    s.Bind(1, static_cast<int64_t>(start)).Bind(2, static_cast<int64_t>(end));
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
