// The SDK's two error forms: its internals return absl::Status, and its public calls throw
// the trustwarden::Error a failed status becomes: the status's canonical code name, or
// the server's own code when it named one. Not installed; thread-safe.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "trustwarden/error.h"

namespace trustwarden::internal {

// The status for a server's {"error": {"code", "message"}}: the canonical code named
// `code` ("permission_denied"), or kUnknown carrying `code` for one the SDK does not know.
absl::Status ServerError(absl::string_view code, absl::string_view message);

// Throws the Error that a failed `status` becomes.
[[noreturn]] void Throw(const absl::Status& status);
inline void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) Throw(status);
}
template <typename T>
T ValueOrThrow(absl::StatusOr<T> value) {
  if (!value.ok()) Throw(value.status());
  return *std::move(value);
}

// The server no longer accepts the instance: revoked, or its certificate refused.
inline bool IsRefusal(const absl::Status& s) {
  return absl::IsPermissionDenied(s) || absl::IsUnauthenticated(s);
}
// The server could not be reached in time: worth trying again later.
inline bool IsTransient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

}  // namespace trustwarden::internal
