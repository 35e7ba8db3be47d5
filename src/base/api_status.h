// The API's error vocabulary: each Status code's name on the wire ("invalid_argument", ...)
// and its HTTP status (API.md "Errors"). The one table servers, clients and metrics read.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace tw::base {

struct ApiStatus {
  absl::StatusCode code;
  absl::string_view name;
  int http;
};

// Every row, OK excluded; the last row is "internal" (500), what any other code becomes.
absl::Span<const ApiStatus> ApiStatuses();
// The row of `code`: "internal" for a code the API does not name.
const ApiStatus& ApiStatusOf(absl::StatusCode code);
// The code a server's error name stands for; kUnknown for a name the table lacks.
absl::StatusCode StatusCodeOfName(absl::string_view name);

}  // namespace tw::base
