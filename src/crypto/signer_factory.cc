#include "crypto/signer_factory.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "crypto/pkcs11_signer.h"
#include "crypto/software_signer.h"

namespace tw::crypto {

std::string FileKeyUri(absl::string_view path) { return absl::StrCat("file:", path); }

absl::StatusOr<std::unique_ptr<Signer>> OpenSigner(absl::string_view key_uri) {
  if (absl::StartsWith(key_uri, "pkcs11:")) {
    auto signer = Pkcs11Signer::Open(key_uri);
    if (!signer.ok()) return signer.status();
    return std::unique_ptr<Signer>(*std::move(signer));
  }
  absl::string_view path = key_uri;
  if (!absl::ConsumePrefix(&path, "file:")) {
    const size_t colon = key_uri.find(':');
    const size_t slash = key_uri.find('/');
    if (colon != key_uri.npos && (slash == key_uri.npos || colon < slash)) {
      return absl::InvalidArgumentError(absl::StrCat("key \"", key_uri.substr(0, colon),
                                                     ":...\": no signer backend for this scheme "
                                                     "(keys are \"file:PATH\" PKCS#8 PEM files "
                                                     "or RFC 7512 \"pkcs11:\" URIs)"));
    }
  }
  if (path.empty()) return absl::InvalidArgumentError("the key URI names no file");
  auto signer = SoftwareSigner::ReadFile(std::string(path));
  if (!signer.ok()) {
    return absl::Status(signer.status().code(),
                        absl::StrCat(key_uri, ": ", signer.status().message()));
  }
  return std::unique_ptr<Signer>(*std::move(signer));
}

}  // namespace tw::crypto
