#include "base/status_macros.h"

#include <cstdio>
#include <cstdlib>

namespace tw::base {

void CheckFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "TW_CHECK failed: %s at %s:%d\n", condition, file, line);
  std::abort();
}

}  // namespace tw::base
