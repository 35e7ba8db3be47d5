// Turns OpenSSL's thread-local error queue into an absl::Status.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tw::crypto {

// Drains the error queue and returns `code` with `what` and OpenSSL's first reason.
absl::Status OpenSslError(absl::StatusCode code, absl::string_view what);

}  // namespace tw::crypto
