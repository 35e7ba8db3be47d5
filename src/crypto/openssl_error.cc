#include "crypto/openssl_error.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace tw::crypto {

absl::Status OpenSslError(absl::StatusCode code, absl::string_view what) {
  unsigned long err = ERR_get_error();
  const char* reason = err != 0 ? ERR_reason_error_string(err) : nullptr;
  ERR_clear_error();
  if (reason == nullptr) return absl::Status(code, what);
  return absl::Status(code, absl::StrCat(what, ": ", reason));
}

}  // namespace tw::crypto
