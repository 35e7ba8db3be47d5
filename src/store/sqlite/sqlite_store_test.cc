#include "store/sqlite/sqlite_store.h"

#include <sys/stat.h>

#include "store/testing/store_conformance.h"

namespace tw::store {
namespace {

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(StoreBackend{
                             "sqlite",
                             [](const std::string& dir) -> absl::StatusOr<std::unique_ptr<Store>> {
                               auto store = SqliteStore::Open(dir + "/trustwarden.db");
                               if (!store.ok()) return store.status();
                               return std::unique_ptr<Store>(*std::move(store));
                             }}),
                         [](const auto& info) { return info.param.name; });

TEST(SqliteStoreTest, CreatesDatabaseOwnerOnly) {
  std::string path = ::testing::TempDir() + "/tw-mode-test.db";
  std::remove(path.c_str());
  ASSERT_TRUE(SqliteStore::Open(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace tw::store
