#include "store/sqlite/schema.h"

#include <iterator>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace tw::store::sqlite {
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
    R"sql(
ALTER TABLE revocations ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';
)sql",
    R"sql(
CREATE TABLE federations (
  trust_domain TEXT PRIMARY KEY NOT NULL,
  endpoint_url TEXT NOT NULL,
  profile TEXT NOT NULL,
  endpoint_spiffe_id TEXT NOT NULL,
  bundle TEXT NOT NULL,
  refreshed_at INTEGER
);
)sql",
};

}  // namespace

int64_t SchemaVersion() { return std::size(kMigrations); }

absl::Status Migrate(Db& db) {
  int64_t version = 0;
  {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("PRAGMA user_version"));
    TW_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) version = s.Int(0);
  }
  const int64_t latest = SchemaVersion();
  if (version > latest) {
    return absl::FailedPreconditionError(
        absl::StrCat("store: schema version ", version, " is newer than this build's ", latest));
  }
  for (; version < latest; ++version) {
    TW_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    absl::Status s = db.Exec(kMigrations[version]);
    if (s.ok()) s = db.Exec(absl::StrCat("PRAGMA user_version = ", version + 1).c_str());
    if (!s.ok()) {
      db.Exec("ROLLBACK").IgnoreError();
      return s;
    }
    TW_RETURN_IF_ERROR(db.Exec("COMMIT"));
  }
  return absl::OkStatus();
}

}  // namespace tw::store::sqlite
