// Cryptographically secure random bytes from OpenSSL's DRBG. Thread-safe.
#pragma once

#include <cstddef>

#include "base/bytes.h"

namespace tw::crypto {

// Returns `n` random bytes. Aborts if the DRBG fails (it cannot be seeded: unrecoverable).
base::Bytes RandomBytes(size_t n);

}  // namespace tw::crypto
