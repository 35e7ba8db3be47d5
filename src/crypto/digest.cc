#include "crypto/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "base/status_macros.h"

namespace tw::crypto {

base::Bytes Sha256(base::ByteView data) {
  base::Bytes out(SHA256_DIGEST_LENGTH);
  SHA256(data.data(), data.size(), out.data());
  return out;
}

Sha256Digest Sha256Concat(std::initializer_list<base::ByteView> parts) {
  // One fetched implementation for the process and one context per thread: the implicit
  // fetch of EVP_sha256() on every init would cost more than hashing a short leaf.
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
  } t;
  Sha256Digest out;
  bool ok = t.ctx != nullptr && md != nullptr && EVP_DigestInit_ex2(t.ctx, md, nullptr) == 1;
  for (base::ByteView p : parts) ok = ok && EVP_DigestUpdate(t.ctx, p.data(), p.size()) == 1;
  ok = ok && EVP_DigestFinal_ex(t.ctx, out.data(), nullptr) == 1;
  TW_CHECK(ok);  // fails only when OpenSSL cannot allocate
  return out;
}

bool ConstantTimeEqual(base::ByteView a, base::ByteView b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tw::crypto
