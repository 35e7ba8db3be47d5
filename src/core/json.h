// Strict JSON decoding for untrusted input: no duplicate member names, bounded size and
// depth, no exceptions escaping. Thread-safe (no shared state).
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tw::core {

// Parses `text` (at most `max_bytes`). InvalidArgument naming `what` when the text is
// not JSON, nests deeper than 32 levels, or repeats a member name in one object.
absl::StatusOr<nlohmann::json> ParseStrictJson(absl::string_view text, absl::string_view what,
                                               size_t max_bytes = 1 << 20);

// Parses a JSON object under the same rules, handing each top-level member to `visit`
// as it completes instead of building the object (no DOM for the common scalar members).
// A non-OK status from `visit` stops parsing and is returned.
using JsonMemberVisitor =
    std::function<absl::Status(const std::string& name, nlohmann::json&& value)>;
absl::Status VisitStrictJsonObject(absl::string_view text, absl::string_view what,
                                   const JsonMemberVisitor& visit, size_t max_bytes = 1 << 20);

}  // namespace tw::core
