#include "base/file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace tw::base {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  int e = errno;
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(e));
  if (e == ENOENT) return absl::NotFoundError(msg);
  if (e == EACCES || e == EPERM) return absl::PermissionDeniedError(msg);
  if (e == EEXIST) return absl::AlreadyExistsError(msg);
  return absl::InternalError(msg);
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot read", path);
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("cannot read", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
    }
  }
  ::close(fd);
  return out;
}

namespace {

// A name beside `path` that nobody can predict: 16 random hex digits.
absl::StatusOr<std::string> TemporaryName(const std::string& path) {
  unsigned char random[8];
  if (::getrandom(random, sizeof random, 0) != static_cast<ssize_t>(sizeof random)) {
    return Errno("cannot name a temporary file for", path);
  }
  return absl::StrCat(path, ".tmp.",
                      absl::BytesToHexString(
                          absl::string_view(reinterpret_cast<const char*>(random), sizeof random)));
}

}  // namespace

absl::Status WriteFile(const std::string& path, absl::string_view content, int mode,
                       bool exclusive) {
  if (exclusive && ::access(path.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(path, " already exists"));
  }
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 8; ++attempt) {
    absl::StatusOr<std::string> name = TemporaryName(path);
    if (!name.ok()) return name.status();
    tmp = *std::move(name);
    // O_EXCL and O_NOFOLLOW: never open what someone else placed under that name.
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) return Errno("cannot create", tmp);
  }
  if (fd < 0) return Errno("cannot create", tmp);
  auto fail = [&](absl::string_view what) {
    absl::Status s = Errno(what, tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  // The mode is exactly `mode`: the umask must neither widen nor narrow it.
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return fail("cannot chmod");
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot write");
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot write");
  if (::close(fd) != 0) {
    absl::Status s = Errno("cannot write", tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  int rc = exclusive ? ::link(tmp.c_str(), path.c_str()) : ::rename(tmp.c_str(), path.c_str());
  if (rc != 0) {
    absl::Status s = Errno("cannot create", path);
    ::unlink(tmp.c_str());
    return s;
  }
  if (exclusive) ::unlink(tmp.c_str());
  return absl::OkStatus();
}

absl::Status MakeDirectory(const std::string& path, int mode) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();  // its owner chose its mode
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create directory ", path, ": ", ec.message()));
  }
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) return Errno("cannot chmod", path);
  return absl::OkStatus();
}

absl::StatusOr<LockFile> LockFile::Acquire(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot open", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char pid[32] = {};
    const ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
    ::close(fd);
    if (e != EWOULDBLOCK) {
      errno = e;
      return Errno("cannot lock", path);
    }
    absl::string_view holder = n > 0 ? absl::StripAsciiWhitespace(absl::string_view(pid, n)) : "";
    return absl::FailedPreconditionError(absl::StrCat(path, " is locked by process ",
                                                      holder.empty() ? "(unknown)" : holder,
                                                      ": another server uses this data"));
  }
  const std::string mine = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, mine.data(), mine.size(), 0) != static_cast<ssize_t>(mine.size())) {
    absl::Status s = Errno("cannot write", path);
    ::close(fd);
    return s;
  }
  return LockFile(fd);
}

LockFile& LockFile::operator=(LockFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

LockFile::~LockFile() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace tw::base
