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

}  // namespace tw::base
