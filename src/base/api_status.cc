#include "base/api_status.h"

#include <array>

namespace tw::base {
namespace {

constexpr std::array<ApiStatus, 11> kTable = {{
    {absl::StatusCode::kInvalidArgument, "invalid_argument", 400},
    {absl::StatusCode::kUnauthenticated, "unauthenticated", 401},
    {absl::StatusCode::kPermissionDenied, "permission_denied", 403},
    {absl::StatusCode::kNotFound, "not_found", 404},
    {absl::StatusCode::kUnimplemented, "method_not_allowed", 405},
    {absl::StatusCode::kAlreadyExists, "already_exists", 409},
    {absl::StatusCode::kFailedPrecondition, "failed_precondition", 409},
    // A request body beyond the server's limit.
    {absl::StatusCode::kOutOfRange, "payload_too_large", 413},
    {absl::StatusCode::kResourceExhausted, "resource_exhausted", 429},
    {absl::StatusCode::kUnavailable, "unavailable", 503},
    {absl::StatusCode::kInternal, "internal", 500},
}};

}  // namespace

absl::Span<const ApiStatus> ApiStatuses() { return kTable; }

const ApiStatus& ApiStatusOf(absl::StatusCode code) {
  for (const ApiStatus& row : kTable) {
    if (row.code == code) return row;
  }
  return kTable.back();
}

absl::StatusCode StatusCodeOfName(absl::string_view name) {
  for (const ApiStatus& row : kTable) {
    if (row.name == name) return row.code;
  }
  return absl::StatusCode::kUnknown;
}

}  // namespace tw::base
