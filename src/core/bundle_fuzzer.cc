// libFuzzer: SPIFFE bundle parsing (JSON or PEM) never crashes; accepted bundles re-emit
// and re-parse to the same authorities.
#include <cstdint>
#include <cstdlib>

#include "core/bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto td = *tw::core::TrustDomain::FromName("example.org");
  auto bundle = tw::core::Bundle::Parse(text, td);
  if (bundle.ok()) {
    auto again = tw::core::Bundle::Parse(bundle->ToJson(), td);
    if (!again.ok() || again->x509_authorities().size() != bundle->x509_authorities().size() ||
        again->jwt_authorities().size() != bundle->jwt_authorities().size()) {
      std::abort();
    }
  }
  return 0;
}
