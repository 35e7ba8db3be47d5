#include "crypto/digest.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace tw::crypto {

base::Bytes Sha256(base::ByteView data) {
  base::Bytes out(SHA256_DIGEST_LENGTH);
  SHA256(data.data(), data.size(), out.data());
  return out;
}

bool ConstantTimeEqual(base::ByteView a, base::ByteView b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tw::crypto
