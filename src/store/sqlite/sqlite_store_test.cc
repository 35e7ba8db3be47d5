#include "store/sqlite/sqlite_store.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "store/sqlite/db.h"
#include "store/sqlite/schema.h"
#include "store/testing/store_conformance.h"

namespace tw::store {
namespace {

using ::testing::HasSubstr;

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(StoreBackend{
                             "sqlite",
                             [](const std::string& dir) -> absl::StatusOr<std::unique_ptr<Store>> {
                               auto store = SqliteStore::Open(dir + "/trustwarden.db");
                               if (!store.ok()) return store.status();
                               return std::unique_ptr<Store>(*std::move(store));
                             }}),
                         [](const auto& info) { return info.param.name; });

// Each test gets a directory of its own under TMPDIR, removed afterwards.
class SqliteStoreTest : public ::testing::Test {
 protected:
  // A connection of its own to the store's database with the current schema, for SQL the
  // store would never run.
  std::unique_ptr<sqlite::Db> MigratedDb() {
    auto db = sqlite::Db::Open(path_);
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return nullptr;
    absl::Status migrated = sqlite::Migrate(**db);
    EXPECT_TRUE(migrated.ok()) << migrated;
    return *std::move(db);
  }

  base::TempDir tmp_{"tw-sqlite"};
  const std::string dir_ = tmp_.path();
  const std::string path_ = dir_ + "/trustwarden.db";
};

TEST_F(SqliteStoreTest, CreatesDatabaseOwnerOnly) {
  ASSERT_TRUE(SqliteStore::Open(path_).ok());
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SqliteStoreTest, SecondExclusiveOpenNamesTheHolder) {
  auto first = SqliteStore::Open(path_);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = SqliteStore::Open(path_);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr(absl::StrCat("process ", getpid())));
}

TEST_F(SqliteStoreTest, NonExclusiveOpenWorksBesideTheServer) {
  auto server = SqliteStore::Open(path_);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->AppendPolicy("a = 1", "h1", absl::UnixEpoch(), nullptr).ok());
  auto tool = SqliteStore::Open(path_, /*exclusive=*/false);
  ASSERT_TRUE(tool.ok()) << tool.status();
  EXPECT_EQ((*tool)->GetPolicy(0)->source, "a = 1");
}

TEST_F(SqliteStoreTest, RefusesASchemaNewerThanThisBuild) {
  {
    std::unique_ptr<sqlite::Db> db = MigratedDb();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(
        db->Exec(absl::StrCat("PRAGMA user_version = ", sqlite::SchemaVersion() + 1).c_str()).ok());
  }
  auto store = SqliteStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("newer than this build"));
}

TEST(SqliteStatusTest, UniqueAndPrimaryKeyViolationsAreAlreadyExists) {
  for (int code : {SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY}) {
    absl::Status s = sqlite::StatusOfResult(code, "UNIQUE constraint failed: t.id");
    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << code;
    EXPECT_THAT(s.message(), HasSubstr("t.id"));
  }
}

TEST(SqliteStatusTest, OtherConstraintViolationsAreFailedPrecondition) {
  for (int code : {SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_NOTNULL, SQLITE_CONSTRAINT_CHECK,
                   SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CONSTRAINT_TRIGGER}) {
    EXPECT_EQ(sqlite::StatusOfResult(code, "constraint failed").code(),
              absl::StatusCode::kFailedPrecondition)
        << code;
  }
}

TEST(SqliteStatusTest, OtherFailuresAreInternal) {
  for (int code : {SQLITE_ERROR, SQLITE_BUSY, SQLITE_IOERR_WRITE, SQLITE_FULL, SQLITE_CORRUPT}) {
    EXPECT_EQ(sqlite::StatusOfResult(code, "failed").code(), absl::StatusCode::kInternal) << code;
  }
}

TEST_F(SqliteStoreTest, ForeignKeyViolationIsFailedPrecondition) {
  std::unique_ptr<sqlite::Db> db = MigratedDb();
  ASSERT_NE(db, nullptr);
  auto s = db->Prepare(
      "INSERT INTO identities (instance_id, spiffe_id, name, parent, principal, policy_version, "
      "depth, serial, scopes, trust_level, not_before, not_after, created_at) "
      "VALUES ('inst-c', 'spiffe://td/a/b/c/inst-c', 'a/b/c', 'inst-missing', 'ci', 1, 1, '01', "
      "'', 'low', 0, 1, 0)");
  ASSERT_TRUE(s.ok()) << s.status();
  absl::Status run = s->Run();
  EXPECT_EQ(run.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run.message(), HasSubstr("FOREIGN KEY"));
}

TEST_F(SqliteStoreTest, NotNullViolationIsFailedPrecondition) {
  std::unique_ptr<sqlite::Db> db = MigratedDb();
  ASSERT_NE(db, nullptr);
  auto s = db->Prepare(
      "INSERT INTO tokens (id, principal, secret_hash, admin, created_at) "
      "VALUES ('tid', NULL, x'00', 0, 0)");
  ASSERT_TRUE(s.ok()) << s.status();
  absl::Status run = s->Run();
  EXPECT_EQ(run.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run.message(), HasSubstr("NOT NULL"));
}

TEST_F(SqliteStoreTest, DuplicatePrimaryKeyIsAlreadyExists) {
  std::unique_ptr<sqlite::Db> db = MigratedDb();
  ASSERT_NE(db, nullptr);
  auto s = db->Prepare(
      "INSERT INTO tokens (id, principal, secret_hash, admin, created_at) "
      "VALUES ('tid', 'ci', x'00', 0, 0)");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->Run().ok());
  s->Reset();
  EXPECT_EQ(s->Run().code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace tw::store
