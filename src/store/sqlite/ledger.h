// The ledger half of SqliteStore shared with its other mutations: appending a batch inside
// the writer's open transaction. Runs on the writer thread only.
#pragma once

#include "absl/status/status.h"
#include "store/sqlite/db.h"
#include "store/store.h"

namespace tw::store::sqlite {

// Appends `batch` in the current transaction (see Store::AppendLedger); on failure the
// caller's savepoint discards whatever was written. InvalidArgument when entries and events
// differ in number; AlreadyExists for an event id stored with other bytes.
absl::Status AppendLedgerIn(Db& db, const LedgerAppend& batch, LedgerAppended* out);
// AppendLedgerIn for a mutation's optional audit batch: OK when `audit` is null.
absl::Status AppendAudit(Db& db, const LedgerAppend* audit);

}  // namespace tw::store::sqlite
