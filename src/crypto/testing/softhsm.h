// Throwaway SoftHSM2 tokens for tests. SoftHSM2 reads SOFTHSM2_CONF once per process, so
// the first token made points it at a temporary token directory of this process's own
// (removed at exit); each token then gets a fresh random label and PINs, initialized
// through PKCS#11 itself (C_InitToken, C_InitPIN). Not thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "crypto/pkcs11_signer.h"

namespace tw::crypto::testing {

// SoftHSM2's module: $TW_SOFTHSM_MODULE, else Debian's path.
std::string SoftHsmModule();

struct SoftHsmToken {
  Pkcs11Uri uri;         // module-path, token and pin-source (a file holding `pin`)
  std::string pin;       // the user PIN
  std::string so_pin;    // the security officer's PIN
  std::string conf;      // the SOFTHSM2_CONF the process uses
  std::string tokendir;  // where SoftHSM2 keeps the token
};

// A new initialized token. Unavailable when SoftHSM2 cannot be loaded.
absl::StatusOr<SoftHsmToken> NewSoftHsmToken(const std::string& module = SoftHsmModule());

}  // namespace tw::crypto::testing
