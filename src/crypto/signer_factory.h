// Opens the signing key a key URI names, so that where a key lives is configuration, not
// code: "file:PATH" (or a bare path) is an unencrypted PKCS#8 PEM file held in software;
// "pkcs11:..." (RFC 7512) a key in a PKCS#11 token (crypto/pkcs11_signer.h).
// Thread-safe.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/signer.h"

namespace tw::crypto {

// InvalidArgument for a URI scheme no backend handles; the file's NotFound or
// InvalidArgument otherwise, its message prefixed with the URI.
absl::StatusOr<std::unique_ptr<Signer>> OpenSigner(absl::string_view key_uri);

// The URI of a PKCS#8 PEM file at `path`.
std::string FileKeyUri(absl::string_view path);

}  // namespace tw::crypto
