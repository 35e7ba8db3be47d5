#include "store/sqlite/db.h"

#include <future>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "store/sqlite/sqlite_store.h"

namespace tw::store {
namespace sqlite {

absl::Status StatusOfResult(int extended_code, absl::string_view message) {
  if (extended_code == SQLITE_CONSTRAINT_UNIQUE || extended_code == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return absl::AlreadyExistsError(absl::StrCat("store: ", message));
  }
  if ((extended_code & 0xff) == SQLITE_CONSTRAINT) {
    return absl::FailedPreconditionError(absl::StrCat("store: ", message));
  }
  return absl::InternalError(absl::StrCat("store: ", message));
}

void Stmt::Reset() {
  if (s_ == nullptr) return;
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

Stmt& Stmt::Bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}

namespace {
// SQLite binds a null pointer as NULL, and an empty view may have one (a default
// string_view, an empty vector's data()): those bind this instead, as an empty value.
constexpr char kEmpty[] = "";
}  // namespace

Stmt& Stmt::Bind(int i, absl::string_view v) {
  sqlite3_bind_text(s_, i, v.data() != nullptr ? v.data() : kEmpty, static_cast<int>(v.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::Bind(int i, base::ByteView v) {
  const void* data = v.data() != nullptr ? static_cast<const void*>(v.data()) : kEmpty;
  sqlite3_bind_blob(s_, i, data, static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::BindNull(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}

absl::StatusOr<bool> Stmt::Step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3* db = sqlite3_db_handle(s_);
  return StatusOfResult(sqlite3_extended_errcode(db), sqlite3_errmsg(db));
}

int64_t Stmt::Int(int col) { return sqlite3_column_int64(s_, col); }

bool Stmt::IsNull(int col) { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

std::string Stmt::Text(int col) {
  const unsigned char* p = sqlite3_column_text(s_, col);
  return p == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(p),
                                    static_cast<size_t>(sqlite3_column_bytes(s_, col)));
}

base::Bytes Stmt::Blob(int col) {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, col));
  return p == nullptr ? base::Bytes() : base::Bytes(p, p + sqlite3_column_bytes(s_, col));
}

absl::StatusOr<std::unique_ptr<Db>> Db::Open(const std::string& path) {
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

Db::~Db() {
  for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
  for (auto& [sql, stmt] : dynamic_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

absl::Status Db::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(absl::StrCat("store: ", err ? err : "exec failed"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<Stmt> Db::Prepare(const char* sql) {
  auto it = stmts_.find(sql);
  if (it == stmts_.end()) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
      return absl::InternalError(absl::StrCat("store: ", sqlite3_errmsg(db_)));
    }
    it = stmts_.emplace(sql, stmt).first;
  }
  return absl::StatusOr<Stmt>(absl::in_place, it->second);
}

absl::StatusOr<Stmt> Db::PrepareText(const std::string& sql) {
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

}  // namespace sqlite

namespace {
constexpr size_t kMaxReaders = 16;
}  // namespace

struct SqliteStore::Job {
  std::function<absl::Status(sqlite::Db&)> fn;
  std::promise<absl::Status> done;
};

absl::Status SqliteStore::Write(std::function<absl::Status(sqlite::Db&)> fn) {
  Job job{std::move(fn), {}};
  std::future<absl::Status> done = job.done.get_future();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("store: shutting down");
    queue_.push_back(&job);
  }
  return done.get();
}

void SqliteStore::WriterLoop() {
  sqlite::Db& db = *writer_db_;
  std::vector<Job*> batch;
  std::vector<absl::Status> results;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &SqliteStore::WriterHasWork));
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

absl::Status SqliteStore::Read(const std::function<absl::Status(sqlite::Db&)>& fn) {
  std::unique_ptr<sqlite::Db> db;
  {
    absl::MutexLock lock(&mu_);
    if (!readers_.empty()) {
      db = std::move(readers_.back());
      readers_.pop_back();
    }
  }
  if (db == nullptr) {
    TW_ASSIGN_OR_RETURN(db, sqlite::Db::Open(path_));
  }
  absl::Status status = fn(*db);
  absl::MutexLock lock(&mu_);
  if (readers_.size() < kMaxReaders) readers_.push_back(std::move(db));
  return status;
}

absl::Status SqliteStore::ReadSnapshot(const std::function<absl::Status(sqlite::Db&)>& fn) {
  return Read([&fn](sqlite::Db& db) -> absl::Status {
    TW_RETURN_IF_ERROR(db.Exec("BEGIN"));
    absl::Status s = fn(db);
    absl::Status end = db.Exec(s.ok() ? "COMMIT" : "ROLLBACK");
    return s.ok() ? end : s;
  });
}

}  // namespace tw::store
