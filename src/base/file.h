// Small file helpers with the modes secrets need. Thread-safe (no shared state).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tw::base {

// The whole file. NotFound / PermissionDenied with the path and reason; InvalidArgument
// when it is larger than `max_bytes`.
absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes = 64 << 20);

// Writes `content` to `path` through a temporary file (an unpredictable name beside it,
// created O_EXCL | O_NOFOLLOW), fsync and rename, with exactly `mode` (0600 for keys).
// Replaces an existing file unless `exclusive`, which gives AlreadyExists instead.
absl::Status WriteFile(const std::string& path, absl::string_view content, int mode = 0644,
                       bool exclusive = false);

// Creates `path` (and parents) with `mode` if missing; an existing directory keeps its
// mode. FailedPrecondition when `path` exists and is not a directory.
absl::Status MakeDirectory(const std::string& path, int mode = 0700);

// An exclusive advisory lock (flock) on `path`, created 0600 if missing, held until
// destruction; the holder's PID is written into the file. Move-only.
class LockFile {
 public:
  // FailedPrecondition naming the PID that holds the lock; Internal on I/O errors.
  static absl::StatusOr<LockFile> Acquire(const std::string& path);
  LockFile(LockFile&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  LockFile& operator=(LockFile&& other) noexcept;
  ~LockFile();

 private:
  explicit LockFile(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace tw::base
