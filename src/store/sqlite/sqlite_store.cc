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
    const char* msg = sqlite3_errmsg(sqlite3_db_handle(s_));
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(absl::StrCat("store: ", msg));
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
        db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"));
    return db;
  }
  ~Db() {
    for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
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

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  absl::flat_hash_map<const char*, sqlite3_stmt*> stmts_;
};

struct SqliteStore::Job {
  std::function<absl::Status(Db&)> fn;
  std::promise<absl::Status> done;
};

namespace {

constexpr char kIdentityColumns[] =
    "instance_id, spiffe_id, name, parent, principal, policy_version, depth, serial, scopes, "
    "trust_level, not_before, not_after, created_at, revoked_sequence";

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
  return r;
}

RevocationEntry ReadRevocation(Stmt& s) {
  RevocationEntry e;
  e.sequence = s.Int(0);
  std::string kind = s.Text(1);
  for (RevocationKind k : {RevocationKind::kInstance, RevocationKind::kAgent,
                           RevocationKind::kSubtree, RevocationKind::kPrincipal}) {
    if (RevocationKindName(k) == kind) e.kind = k;
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

}  // namespace

SqliteStore::SqliteStore(std::string path) : path_(std::move(path)) {}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  // Create the file 0600 before SQLite does (it would honour the umask).
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("store: cannot create ", path));
  ::close(fd);
  std::unique_ptr<SqliteStore> store(new SqliteStore(path));
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

absl::Status SqliteStore::InsertIdentity(const IdentityRecord& r) {
  return Write([&r](Db& db) -> absl::Status {
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
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL)"));
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
    return st;
  });
}

absl::Status SqliteStore::RenewIdentity(absl::string_view instance_id, absl::string_view serial_hex,
                                        absl::Time not_before, absl::Time not_after) {
  return Write([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(
        Stmt p, db.Prepare("SELECT revoked_sequence FROM identities WHERE instance_id = ?1"));
    p.Bind(1, instance_id);
    TW_ASSIGN_OR_RETURN(bool found, p.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("instance ", instance_id, " is unknown"));
    if (!p.IsNull(0)) {
      return absl::FailedPreconditionError(absl::StrCat("instance ", instance_id, " is revoked"));
    }
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE identities SET serial = ?2, not_before = ?3, "
                                           "not_after = ?4 WHERE instance_id = ?1"));
    s.Bind(1, instance_id).Bind(2, serial_hex);
    s.Bind(3, Seconds(not_before)).Bind(4, Seconds(not_after));
    return s.Run();
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

absl::StatusOr<RevocationEntry> SqliteStore::Revoke(RevocationKind kind, absl::string_view target,
                                                    absl::string_view reason, absl::Time now) {
  RevocationEntry entry;
  TW_RETURN_IF_ERROR(Write([&](Db& db) -> absl::Status {
    entry = RevocationEntry{.kind = kind,
                            .target = std::string(target),
                            .reason = std::string(reason),
                            .revoked_at = now,
                            .expires_at = now};
    const char* reach = kReachByInstance;
    if (kind == RevocationKind::kAgent) reach = kReachByAgent;
    if (kind == RevocationKind::kPrincipal) reach = kReachByPrincipal;
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
      TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE identities SET revoked_sequence = ?2 "
                                             "WHERE instance_id = ?1"));
      for (const std::string& id : entry.instances) {
        s.Bind(1, id).Bind(2, entry.sequence);
        TW_RETURN_IF_ERROR(s.Run());
        s.Reset();
      }
    }
    TW_ASSIGN_OR_RETURN(Stmt s,
                        db.Prepare("INSERT INTO revocations VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    s.Bind(1, entry.sequence).Bind(2, RevocationKindName(kind)).Bind(3, target).Bind(4, reason);
    s.Bind(5, Seconds(now)).Bind(6, absl::StrJoin(entry.instances, " "));
    s.Bind(7, Seconds(entry.expires_at));
    return s.Run();
  }));
  return entry;
}

absl::StatusOr<std::vector<RevocationEntry>> SqliteStore::ListRevocations(int64_t after,
                                                                          size_t limit) {
  std::vector<RevocationEntry> out;
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
                                                  absl::Time created_at) {
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
    return s.Run();
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

absl::Status SqliteStore::InsertToken(const TokenRecord& t) {
  return Write([&t](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("INSERT INTO tokens VALUES (?1, ?2, ?3, ?4, ?5)"));
    s.Bind(1, t.id).Bind(2, t.principal).Bind(3, base::ByteView(t.secret_hash));
    s.Bind(4, int64_t{t.admin}).Bind(5, Seconds(t.created_at));
    return s.Run();
  });
}

absl::StatusOr<std::vector<TokenRecord>> SqliteStore::ListTokens() {
  std::vector<TokenRecord> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT * FROM tokens ORDER BY created_at"));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      out.push_back(
          TokenRecord{s.Text(0), s.Text(1), s.Blob(2), s.Int(3) != 0, FromSeconds(s.Int(4))});
    }
  }));
  return out;
}

}  // namespace tw::store
