// libFuzzer: DER certificates, SVID chains and the attributes extension from
// untrusted bytes never crash the parsers or the verifier.
#include <cstdint>

#include "core/attributes.h"
#include "core/x509_verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto bundles = [] {
    auto set = std::make_shared<tw::core::BundleSet>();
    set->Put(tw::core::Bundle(*tw::core::TrustDomain::FromName("example.org")));
    return set;
  }();
  tw::base::ByteView bytes(data, size);
  (void)tw::core::Certificate::Parse(tw::base::Bytes(bytes.begin(), bytes.end()));
  auto chain = tw::core::Certificate::ParseChain(tw::base::AsChars(bytes));
  if (chain.ok()) {
    std::vector<tw::base::ByteView> ders;
    for (const auto& c : *chain) ders.push_back(c.der());
    tw::core::X509Verifier verifier(
        bundles,
        {.clock = &tw::base::Clock::System(), .revocation_check = {}, .cache_capacity = 0});
    (void)verifier.Verify(ders);
  }
  (void)tw::core::DecodeAttributes(bytes);
  return 0;
}
