// Strict JSON decoding for untrusted input: no duplicate member names, bounded depth,
// no exceptions escaping. Thread-safe.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tw::core {

// Parses `text` (at most `max_bytes`). InvalidArgument naming `what` when the text is
// not JSON, nests deeper than 32 levels, or repeats a member name in one object.
absl::StatusOr<nlohmann::json> ParseStrictJson(absl::string_view text, absl::string_view what,
                                               size_t max_bytes = 1 << 20);

}  // namespace tw::core
