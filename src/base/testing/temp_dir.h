// A fresh directory under the system's temporary directory for a test, removed with all it
// holds when the TempDir goes. Not thread-safe.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace tw::base {

class TempDir {
 public:
  // Aborts when no directory can be made: a test cannot run without one.
  explicit TempDir(absl::string_view prefix = "tw");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string operator/(absl::string_view name) const;

 private:
  std::string path_;
};

}  // namespace tw::base
