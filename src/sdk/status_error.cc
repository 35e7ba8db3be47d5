#include "sdk/status_error.h"

#include <string>

#include "absl/strings/ascii.h"

namespace trustwarden::internal {
namespace {

// Where a status keeps the server's code name when it is not a canonical one.
constexpr char kServerCode[] = "type.trustwarden.dev/server-error-code";

std::string CodeName(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

}  // namespace

absl::Status ServerError(absl::string_view code, absl::string_view message) {
  for (int c = 0; c <= static_cast<int>(absl::StatusCode::kUnauthenticated); ++c) {
    const auto canonical = static_cast<absl::StatusCode>(c);
    if (canonical != absl::StatusCode::kOk && CodeName(canonical) == code) {
      return absl::Status(canonical, message);
    }
  }
  absl::Status s(absl::StatusCode::kUnknown, message);
  s.SetPayload(kServerCode, absl::Cord(code));
  return s;
}

void Throw(const absl::Status& status) {
  const auto server_code = status.GetPayload(kServerCode);
  throw Error(server_code ? std::string(*server_code) : CodeName(status.code()),
              std::string(status.message()));
}

}  // namespace trustwarden::internal
