// The SqliteStore schema and its migrations. Not thread-safe: runs on the writer's
// connection before the writer thread starts.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "store/sqlite/db.h"

namespace tw::store::sqlite {

// The schema version this build writes (PRAGMA user_version).
int64_t SchemaVersion();

// Applies the migrations `db` lacks, each in its own transaction. FailedPrecondition when
// the database's schema is newer than this build's; Internal when a migration fails (the
// failing one is rolled back, the earlier ones stay).
absl::Status Migrate(Db& db);

}  // namespace tw::store::sqlite
