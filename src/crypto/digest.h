// SHA-256 and constant-time comparison. Thread-safe.
#pragma once

#include "base/bytes.h"

namespace tw::crypto {

// SHA-256 of `data` (32 bytes).
base::Bytes Sha256(base::ByteView data);

// True when `a` and `b` are equal; time depends only on the lengths.
bool ConstantTimeEqual(base::ByteView a, base::ByteView b);

}  // namespace tw::crypto
