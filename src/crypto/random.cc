#include "crypto/random.h"

#include <openssl/rand.h>

#include "base/status_macros.h"

namespace tw::crypto {

base::Bytes RandomBytes(size_t n) {
  base::Bytes out(n);
  TW_CHECK(RAND_bytes(out.data(), static_cast<int>(n)) == 1);
  return out;
}

}  // namespace tw::crypto
