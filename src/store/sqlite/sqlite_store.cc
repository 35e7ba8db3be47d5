#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "store/sqlite/db.h"
#include "store/sqlite/schema.h"

namespace tw::store {

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
  TW_ASSIGN_OR_RETURN(store->writer_db_, sqlite::Db::Open(path));
  sqlite::Db& db = *store->writer_db_;
  TW_RETURN_IF_ERROR(sqlite::Migrate(db));
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
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
}

}  // namespace tw::store
