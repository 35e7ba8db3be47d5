#include "base/testing/temp_dir.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace tw::base {

TempDir::TempDir(absl::string_view prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / absl::StrCat(prefix, "-XXXXXX"));
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = std::move(tmpl);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::operator/(absl::string_view name) const {
  return absl::StrCat(path_, "/", name);
}

}  // namespace tw::base
