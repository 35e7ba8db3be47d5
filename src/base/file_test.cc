#include "base/file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "base/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace tw::base {
namespace {

class FileTest : public ::testing::Test {
 protected:
  static int Mode(const std::string& path) {
    struct stat st;
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return static_cast<int>(st.st_mode & 07777);
  }
  TempDir tmp_{"tw-file-test"};
  const std::string dir_ = tmp_.path();
};

TEST_F(FileTest, MakeDirectoryCreatesWithTheModeAndLeavesAnExistingOneAlone) {
  const std::string fresh = dir_ + "/a/b";
  ASSERT_TRUE(MakeDirectory(fresh, 0700).ok());
  EXPECT_EQ(Mode(fresh), 0700);
  const std::string shared = dir_ + "/shared";
  ASSERT_EQ(::mkdir(shared.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(shared.c_str(), 0755), 0);
  ASSERT_TRUE(MakeDirectory(shared, 0700).ok());
  EXPECT_EQ(Mode(shared), 0755);
  ASSERT_TRUE(WriteFile(dir_ + "/file", "x").ok());
  EXPECT_EQ(MakeDirectory(dir_ + "/file").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(FileTest, WriteFileSetsTheExactModeWhateverTheUmask) {
  const mode_t old = ::umask(0077);
  ASSERT_TRUE(WriteFile(dir_ + "/public", "x", 0644).ok());
  ::umask(0);
  ASSERT_TRUE(WriteFile(dir_ + "/secret", "y", 0600).ok());
  ::umask(old);
  EXPECT_EQ(Mode(dir_ + "/public"), 0644);
  EXPECT_EQ(Mode(dir_ + "/secret"), 0600);
  EXPECT_EQ(*ReadFile(dir_ + "/secret"), "y");
}

// The temporary file's name is not derived from the PID, and a link planted under any
// predictable name is never followed: the target outside stays untouched.
TEST_F(FileTest, WriteFileNeverWritesThroughAPlantedLink) {
  const std::string victim = dir_ + "/victim";
  ASSERT_TRUE(WriteFile(victim, "original").ok());
  const std::string path = dir_ + "/key.pem";
  const std::string predictable = path + ".tmp." + std::to_string(::getpid());
  ASSERT_EQ(::symlink(victim.c_str(), predictable.c_str()), 0);
  ASSERT_TRUE(WriteFile(path, "secret", 0600).ok());
  EXPECT_EQ(*ReadFile(victim), "original");
  EXPECT_EQ(*ReadFile(path), "secret");
  size_t leftovers = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    if (e.path().string().find(".tmp.") != std::string::npos && e.path() != predictable) {
      ++leftovers;
    }
  }
  EXPECT_EQ(leftovers, 0u);
}

TEST_F(FileTest, ExclusiveWriteRefusesAnExistingFile) {
  ASSERT_TRUE(WriteFile(dir_ + "/once", "1", 0600, /*exclusive=*/true).ok());
  EXPECT_EQ(WriteFile(dir_ + "/once", "2", 0600, /*exclusive=*/true).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(*ReadFile(dir_ + "/once"), "1");
}

TEST_F(FileTest, LockFileIsExclusiveAndNamesItsHolder) {
  const std::string path = dir_ + "/data.lock";
  auto first = LockFile::Acquire(path);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = LockFile::Acquire(path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(std::to_string(::getpid())), absl::string_view::npos)
      << second.status();
  { LockFile released = *std::move(first); }
  EXPECT_TRUE(LockFile::Acquire(path).ok());
}

}  // namespace
}  // namespace tw::base
