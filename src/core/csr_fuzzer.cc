// libFuzzer: PKCS#10 requests (PEM or DER) from untrusted bytes never crash the parser, and
// an accepted request always yields a supported public key.
#include <cstdint>
#include <cstdlib>

#include "core/csr.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto csr = tw::core::ParseCertificateRequest(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  if (csr.ok() && csr->public_key.spki_der().empty()) std::abort();
  return 0;
}
