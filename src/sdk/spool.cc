#include "sdk/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/file.h"

namespace trustwarden::internal {
namespace {

constexpr char kSuffix[] = ".spool";

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::StatusOr<std::string> ReadAll(int fd, const std::string& path) {
  std::string out;
  char buf[65536];
  for (off_t at = 0;;) {
    ssize_t n = ::pread(fd, buf, sizeof(buf), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot read", path);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    at += n;
  }
}

// Complete lines of `text`; the bytes after the last '\n' are a torn append.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0, end;
  while ((end = text.find('\n', start)) != std::string::npos) {
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

absl::Status WriteAll(int fd, const std::string& data, const std::string& path) {
  for (size_t done = 0; done < data.size();) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot write", path);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Spool>> Spool::Open(const std::string& dir,
                                                   const std::string& name) {
  if (absl::Status s = tw::base::MakeDirectory(dir); !s.ok()) return s;
  const std::string path = absl::StrCat(dir, "/", name, kSuffix);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot open", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat(path, " is in use by another process"));
  }
  absl::StatusOr<std::string> text = ReadAll(fd, path);
  if (!text.ok()) {
    ::close(fd);
    return text.status();
  }
  const size_t complete = text->rfind('\n') + 1;  // 0 when there is no newline
  if (complete != text->size() && ::ftruncate(fd, static_cast<off_t>(complete)) != 0) {
    absl::Status s = Errno("cannot truncate", path);
    ::close(fd);
    return s;
  }
  return std::unique_ptr<Spool>(new Spool(path, fd, Lines(*text).size()));
}

std::vector<std::unique_ptr<Spool>> Spool::Orphans(const std::string& dir) {
  std::vector<std::unique_ptr<Spool>> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    std::string file = e->d_name;
    if (!absl::EndsWith(file, kSuffix)) continue;
    auto spool = Open(dir, file.substr(0, file.size() - sizeof(kSuffix) + 1));
    if (spool.ok() && !(*spool)->empty()) out.push_back(*std::move(spool));
  }
  ::closedir(d);
  return out;
}

Spool::~Spool() {
  if (count_ == 0) ::unlink(path_.c_str());  // under the lock: nobody else appends
  ::close(fd_);
}

absl::Status Spool::Append(const std::string& record) {
  if (record.find('\n') != std::string::npos) {
    return absl::InvalidArgumentError("a spool record is one line");
  }
  if (absl::Status s = WriteAll(fd_, record + "\n", path_); !s.ok()) return s;
  if (::fdatasync(fd_) != 0) return Errno("cannot sync", path_);
  ++count_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Spool::Records() const {
  absl::StatusOr<std::string> text = ReadAll(fd_, path_);
  if (!text.ok()) return text.status();
  return Lines(*text);
}

absl::Status Spool::Drop(size_t count) {
  absl::StatusOr<std::string> text = ReadAll(fd_, path_);
  if (!text.ok()) return text.status();
  size_t cut = 0;
  for (size_t i = 0; i < count; ++i) {
    size_t nl = text->find('\n', cut);
    if (nl == std::string::npos) return absl::InternalError("the spool has fewer records");
    cut = nl + 1;
  }
  if (count == count_) {
    if (::ftruncate(fd_, 0) != 0) return Errno("cannot truncate", path_);
    if (::fdatasync(fd_) != 0) return Errno("cannot sync", path_);
  } else {
    // The rest goes to a new file renamed over this one (never a moment without it),
    // which is then opened and locked in place of the old.
    if (absl::Status s = tw::base::WriteFile(path_, text->substr(cut), 0600); !s.ok()) return s;
    int fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open", path_);
    if (::flock(fd, LOCK_EX) != 0) {
      absl::Status s = Errno("cannot lock", path_);
      ::close(fd);
      return s;
    }
    ::close(fd_);
    fd_ = fd;
  }
  count_ -= count;
  return absl::OkStatus();
}

}  // namespace trustwarden::internal
