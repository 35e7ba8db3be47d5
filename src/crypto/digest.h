// SHA-256 and constant-time comparison. Thread-safe.
#pragma once

#include <array>
#include <initializer_list>

#include "base/bytes.h"

namespace tw::crypto {

// SHA-256 of `data` (32 bytes).
base::Bytes Sha256(base::ByteView data);

using Sha256Digest = std::array<uint8_t, 32>;
// SHA-256 of the concatenation of `parts`, without copying them together.
Sha256Digest Sha256Concat(std::initializer_list<base::ByteView> parts);

// True when `a` and `b` are equal; time depends only on the lengths.
bool ConstantTimeEqual(base::ByteView a, base::ByteView b);

}  // namespace tw::crypto
