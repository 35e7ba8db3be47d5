// Fuzzes the HTTP API's body decoders and URL target parser (untrusted input).
#include <cstddef>
#include <cstdint>

#include "server/api.h"
#include "server/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  tw::server::DecodeCreateIdentity(text).IgnoreError();
  tw::server::DecodeRenew(text).IgnoreError();
  tw::server::DecodeJwtRequest(text).IgnoreError();
  tw::server::DecodeRevoke(text).IgnoreError();
  tw::server::DecodePolicy(text).IgnoreError();
  tw::server::DecodeTokenRequest(text).IgnoreError();
  tw::server::DecodeLedgerEvents(text).IgnoreError();
  tw::server::HttpRequest request;
  tw::server::ParseTarget(text, &request).IgnoreError();
  return 0;
}
