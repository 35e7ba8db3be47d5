// The SQLite connection layer of SqliteStore: result codes as Status, prepared statements
// and one connection. Neither Stmt nor Db is thread-safe: each belongs to one thread at a
// time (the writer thread, or the reader that borrowed the connection from the pool).
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/bytes.h"

namespace tw::store::sqlite {

// The Status of a failed SQLite call from its extended result code: AlreadyExists for a
// UNIQUE or PRIMARY KEY violation, FailedPrecondition for any other constraint (NOT NULL,
// CHECK, FOREIGN KEY, ...), Internal for everything else. The message is "store: " `message`.
absl::Status StatusOfResult(int extended_code, absl::string_view message);

// A prepared statement borrowed from a Db; reset when it goes out of scope.
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  Stmt(Stmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() { Reset(); }
  // Clears the bindings and rewinds the statement for another run.
  void Reset();
  Stmt& Bind(int i, int64_t v);
  // Text and blobs bind as given, an empty one as empty (never as NULL: BindNull does that).
  Stmt& Bind(int i, absl::string_view v);
  Stmt& Bind(int i, base::ByteView v);
  Stmt& BindNull(int i);
  // True when a row is ready; false when done. A failure maps as StatusOfResult says.
  absl::StatusOr<bool> Step();
  absl::Status Run() { return Step().status(); }
  int64_t Int(int col);
  bool IsNull(int col);
  std::string Text(int col);
  base::Bytes Blob(int col);

 private:
  sqlite3_stmt* s_;
};

// One connection (WAL, synchronous=FULL, foreign keys on) with its prepared statements.
class Db {
 public:
  // Opens or creates the database at `path`. Internal when SQLite cannot.
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& path);
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Runs one or more SQL statements without results. Internal with SQLite's message.
  absl::Status Exec(const char* sql);
  // `sql` must be a string literal: statements are cached by its address.
  absl::StatusOr<Stmt> Prepare(const char* sql);
  // For SQL built at run time from a bounded set of shapes: cached by its text.
  absl::StatusOr<Stmt> PrepareText(const std::string& sql);
  // Rows the last INSERT, UPDATE or DELETE changed.
  int64_t Changes() const { return sqlite3_changes64(db_); }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  absl::flat_hash_map<const char*, sqlite3_stmt*> stmts_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> dynamic_;
};

}  // namespace tw::store::sqlite
