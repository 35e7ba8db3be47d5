// libFuzzer: JWT-SVID validation of arbitrary tokens never crashes.
#include <cstdint>

#include "core/jwt_svid.h"
#include "crypto/software_signer.h"

namespace {

const tw::core::BundleSet& Bundles() {
  static const tw::core::BundleSet* set = [] {
    auto key = *tw::crypto::SoftwareSigner::Generate(tw::crypto::KeyType::kEcP256);
    tw::core::Bundle b(*tw::core::TrustDomain::FromName("example.org"));
    b.AddJwtAuthority("k1", key->public_key());
    auto* s = new tw::core::BundleSet();
    s->Put(std::move(b));
    return s;
  }();
  return *set;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view token(reinterpret_cast<const char*>(data), size);
  (void)tw::core::ValidateJwtSvid(token, "svc", Bundles(), absl::FromUnixSeconds(1'800'000'000));
  return 0;
}
