// A durable, ordered queue of signed ledger batches waiting for the server: one file per
// instance, one JSON line per batch, fsync'd before an append returns. The file is locked
// (flock) by its writer, so another process only takes over a spool whose writer is gone.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace trustwarden::internal {

class Spool {
 public:
  // Opens (creating) `dir`/`name`.spool and locks it. FailedPrecondition when another
  // live process holds it.
  static absl::StatusOr<std::unique_ptr<Spool>> Open(const std::string& dir,
                                                     const std::string& name);
  // Spools of `dir` whose writers are gone (left by a crash), each opened and locked.
  static std::vector<std::unique_ptr<Spool>> Orphans(const std::string& dir);
  // Closes and unlocks; an empty spool's file is removed.
  ~Spool();

  // Appends one record (a line without '\n') and syncs it to disk.
  absl::Status Append(const std::string& record);
  // The complete records in order; a torn last line (a crash mid-append, never
  // acknowledged) is left out.
  absl::StatusOr<std::vector<std::string>> Records() const;
  // Removes the first `count` records durably.
  absl::Status Drop(size_t count);
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }
  const std::string& path() const { return path_; }

 private:
  Spool(std::string path, int fd, size_t count) : path_(std::move(path)), fd_(fd), count_(count) {}
  std::string path_;
  int fd_;
  size_t count_;  // complete records in the file
};

}  // namespace trustwarden::internal
