// SqliteStore: identities, the revocation log, policy versions and tokens.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "store/sqlite/db.h"
#include "store/sqlite/ledger.h"
#include "store/sqlite/sqlite_store.h"

namespace tw::store {

using sqlite::Db;
using sqlite::Stmt;

namespace {

int64_t Seconds(absl::Time t) { return absl::ToUnixSeconds(t); }
absl::Time FromSeconds(int64_t s) { return absl::FromUnixSeconds(s); }

#define TW_IDENTITY_COLUMNS                                                                  \
  "instance_id, spiffe_id, name, parent, principal, policy_version, depth, serial, scopes, " \
  "trust_level, not_before, not_after, created_at, revoked_sequence, revoked_at_ms"
constexpr char kIdentityColumns[] = TW_IDENTITY_COLUMNS;

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
  e.revoked_by = s.Text(7);
  return e;
}

// The instances a revocation reaches: the seeds chosen by the kind, and every descendant,
// limited to those not yet revoked and not yet expired.
#define TW_REVOCATION_SQL(seed)                                                   \
  "WITH RECURSIVE sub(id) AS (" seed                                              \
  " UNION SELECT i.instance_id FROM identities i JOIN sub ON i.parent = sub.id) " \
  "SELECT " TW_IDENTITY_COLUMNS                                                   \
  " FROM identities WHERE instance_id IN (SELECT id FROM sub)"                    \
  " AND revoked_sequence IS NULL AND not_after > ?2 ORDER BY rowid"
constexpr char kReachByInstance[] =
    TW_REVOCATION_SQL("SELECT instance_id FROM identities WHERE instance_id = ?1");
constexpr char kReachByAgent[] =
    TW_REVOCATION_SQL("SELECT instance_id FROM identities WHERE name = ?1");
constexpr char kReachByPrincipal[] =
    TW_REVOCATION_SQL("SELECT instance_id FROM identities WHERE principal = ?1");
#undef TW_REVOCATION_SQL
#undef TW_IDENTITY_COLUMNS

}  // namespace

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
    return sqlite::AppendAudit(db, audit);
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
    return sqlite::AppendAudit(db, audit);
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
                                                      const RevocationAudit& audit,
                                                      absl::string_view revoked_by) {
  revocation::Entry entry;
  TW_RETURN_IF_ERROR(Write([&](Db& db) -> absl::Status {
    entry = revocation::Entry{.kind = kind,
                              .target = std::string(target),
                              .reason = std::string(reason),
                              .revoked_at = now,
                              .expires_at = now,
                              .revoked_by = std::string(revoked_by)};
    std::vector<IdentityRecord> revoked;
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
        revoked.push_back(ReadIdentity(s));
        entry.instances.push_back(revoked.back().instance_id);
        entry.expires_at = std::max(entry.expires_at, revoked.back().not_after);
      }
    }
    if (entry.instances.empty()) return NothingToRevoke(kind, target);
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
    TW_ASSIGN_OR_RETURN(
        Stmt s, db.Prepare("INSERT INTO revocations VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    s.Bind(1, entry.sequence).Bind(2, revocation::KindName(kind)).Bind(3, target).Bind(4, reason);
    s.Bind(5, Seconds(now)).Bind(6, absl::StrJoin(entry.instances, " "));
    s.Bind(7, Seconds(entry.expires_at)).Bind(8, revoked_by);
    TW_RETURN_IF_ERROR(s.Run());
    if (!audit) return absl::OkStatus();
    TW_ASSIGN_OR_RETURN(LedgerAppend batch, audit(entry, revoked));
    return sqlite::AppendAudit(db, &batch);
  }));
  return entry;
}

absl::StatusOr<revocation::Entry> SqliteStore::GetRevocation(int64_t sequence) {
  revocation::Entry out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT * FROM revocations WHERE sequence = ?1"));
    s.Bind(1, sequence);
    TW_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("no revocation ", sequence));
    out = ReadRevocation(s);
    return absl::OkStatus();
  }));
  return out;
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
    return sqlite::AppendAudit(db, audit);
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
    return sqlite::AppendAudit(db, audit);
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

absl::Status SqliteStore::PutFederation(const FederationRecord& r, const LedgerAppend* audit) {
  return Write([&r, audit](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("INSERT OR REPLACE INTO federations VALUES "
                                           "(?1, ?2, ?3, ?4, ?5, ?6)"));
    s.Bind(1, r.trust_domain).Bind(2, r.endpoint_url).Bind(3, r.profile);
    s.Bind(4, r.endpoint_spiffe_id).Bind(5, r.bundle_json);
    if (r.refreshed_at) s.Bind(6, Seconds(*r.refreshed_at));
    TW_RETURN_IF_ERROR(s.Run());
    return sqlite::AppendAudit(db, audit);
  });
}

absl::Status SqliteStore::UpdateFederatedBundle(absl::string_view trust_domain,
                                                absl::string_view bundle_json,
                                                absl::Time refreshed_at,
                                                const LedgerAppend* audit) {
  return Write([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("UPDATE federations SET bundle = ?2, refreshed_at = ?3 "
                                           "WHERE trust_domain = ?1"));
    s.Bind(1, trust_domain).Bind(2, bundle_json).Bind(3, Seconds(refreshed_at));
    TW_RETURN_IF_ERROR(s.Run());
    if (db.Changes() == 0) return FederationNotFound(trust_domain);
    return sqlite::AppendAudit(db, audit);
  });
}

absl::StatusOr<std::vector<FederationRecord>> SqliteStore::ListFederations() {
  std::vector<FederationRecord> out;
  TW_RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("SELECT trust_domain, endpoint_url, profile, "
                                           "endpoint_spiffe_id, bundle, refreshed_at "
                                           "FROM federations ORDER BY trust_domain"));
    for (;;) {
      TW_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      FederationRecord r{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4)};
      if (!s.IsNull(5)) r.refreshed_at = FromSeconds(s.Int(5));
      out.push_back(std::move(r));
    }
  }));
  return out;
}

absl::Status SqliteStore::DeleteFederation(absl::string_view trust_domain,
                                           const LedgerAppend* audit) {
  return Write([&](Db& db) -> absl::Status {
    TW_ASSIGN_OR_RETURN(Stmt s, db.Prepare("DELETE FROM federations WHERE trust_domain = ?1"));
    s.Bind(1, trust_domain);
    TW_RETURN_IF_ERROR(s.Run());
    if (db.Changes() == 0) return FederationNotFound(trust_domain);
    return sqlite::AppendAudit(db, audit);
  });
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
    return sqlite::AppendAudit(db, audit);
  });
}

}  // namespace tw::store
