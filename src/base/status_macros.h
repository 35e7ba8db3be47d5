// Early-return helpers for absl::Status / absl::StatusOr (Debian's Abseil lacks them).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TW_CONCAT_INNER(a, b) a##b
#define TW_CONCAT(a, b) TW_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define TW_RETURN_IF_ERROR(expr)                              \
  do {                                                        \
    if (absl::Status tw_status_ = (expr); !tw_status_.ok()) { \
      return tw_status_;                                      \
    }                                                         \
  } while (false)

// `TW_ASSIGN_OR_RETURN(auto x, F())` declares x from an OK StatusOr or returns its status.
#define TW_ASSIGN_OR_RETURN(lhs, expr) \
  TW_ASSIGN_OR_RETURN_IMPL(TW_CONCAT(tw_statusor_, __LINE__), lhs, expr)
#define TW_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()

// Aborts with a message: only for states that cannot happen, never for external input.
#define TW_CHECK(cond)                                               \
  do {                                                               \
    if (!(cond)) ::tw::base::CheckFailed(#cond, __FILE__, __LINE__); \
  } while (false)

namespace tw::base {
[[noreturn]] void CheckFailed(const char* condition, const char* file, int line);
}  // namespace tw::base
