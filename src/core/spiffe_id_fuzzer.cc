// libFuzzer: SPIFFE ID parsing never crashes and accepted IDs round-trip byte for byte.
#include <cstdint>
#include <cstdlib>

#include "core/spiffe_id.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  auto id = tw::core::SpiffeId::FromString(input);
  if (id.ok()) {
    if (id->str() != input) std::abort();
    auto again = tw::core::SpiffeId::FromSegments(id->trust_domain(), id->segments());
    if (!again.ok() || again->str() != id->str()) std::abort();
  }
  (void)tw::core::TrustDomain::FromNameOrId(input);
  return 0;
}
