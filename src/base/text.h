// Checks and quoting for text from outside: UTF-8 validity, and the form in which bytes
// of untrusted input may appear in an error message or a log line. Thread-safe.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace tw::base {

// True when `s` is RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above
// U+10FFFF.
bool IsUtf8(absl::string_view s);

// `s` in double quotes with every byte outside printable ASCII (and '"', '\\') escaped as
// C does (\xff, \n), cut to its first `max_bytes` bytes with "..." after: safe to embed in
// a message, a log line or JSON whatever `s` holds.
std::string Quote(absl::string_view s, size_t max_bytes = 96);

}  // namespace tw::base
