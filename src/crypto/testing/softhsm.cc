#include "crypto/testing/softhsm.h"

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/bytes.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "base/testing/temp_dir.h"
#include "crypto/random.h"

namespace tw::crypto::testing {
namespace {

absl::Status Check(const char* what, CK_RV rv) {
  if (rv == CKR_OK) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("SoftHSM2 ", what, ": 0x", absl::Hex(rv)));
}

// The process's token directory and configuration, made once.
base::TempDir& ProcessDir() {
  static auto* dir = [] {
    auto* d = new base::TempDir("tw-softhsm");
    std::atexit([] { delete &ProcessDir(); });
    return d;
  }();
  return *dir;
}

std::string RandomText(size_t n) {
  std::string out;
  for (uint8_t b : RandomBytes(n)) out += "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36];
  return out;
}

}  // namespace

std::string SoftHsmModule() {
  const char* env = std::getenv("TW_SOFTHSM_MODULE");
  return env != nullptr && *env != '\0' ? env : "/usr/lib/softhsm/libsofthsm2.so";
}

absl::StatusOr<SoftHsmToken> NewSoftHsmToken(const std::string& module_path) {
  base::TempDir& dir = ProcessDir();
  SoftHsmToken t;
  t.conf = dir / "softhsm2.conf";
  t.tokendir = dir / "tokens";
  if (::access(t.conf.c_str(), F_OK) != 0) {
    TW_RETURN_IF_ERROR(base::MakeDirectory(t.tokendir, 0700));
    TW_RETURN_IF_ERROR(
        base::WriteFile(t.conf, absl::StrCat("directories.tokendir = ", t.tokendir,
                                             "\nobjectstore.backend = file\nlog.level = ERROR\n"
                                             "slots.removable = false\n")));
    ::setenv("SOFTHSM2_CONF", t.conf.c_str(), 1);
  }
  CK_FUNCTION_LIST* f = p11_kit_module_load(module_path.c_str(), 0);
  if (f == nullptr) return absl::UnavailableError("SoftHSM2 cannot be loaded from " + module_path);
  struct Release {
    CK_FUNCTION_LIST* f;
    ~Release() {
      p11_kit_module_finalize(f);
      p11_kit_module_release(f);
    }
  } release{f};
  TW_RETURN_IF_ERROR(Check("C_Initialize", p11_kit_module_initialize(f)));
  t.pin = RandomText(12);
  t.so_pin = RandomText(12);
  t.uri.module_path = module_path;
  t.uri.token = "tw-" + RandomText(10);
  // The free slot SoftHSM2 always offers takes the new token.
  CK_ULONG count = 0;
  TW_RETURN_IF_ERROR(Check("C_GetSlotList", f->C_GetSlotList(CK_TRUE, nullptr, &count)));
  std::vector<CK_SLOT_ID> slots(count);
  TW_RETURN_IF_ERROR(Check("C_GetSlotList", f->C_GetSlotList(CK_TRUE, slots.data(), &count)));
  std::optional<CK_SLOT_ID> free_slot;
  for (CK_SLOT_ID s : slots) {
    CK_TOKEN_INFO info;
    if (f->C_GetTokenInfo(s, &info) == CKR_OK && (info.flags & CKF_TOKEN_INITIALIZED) == 0) {
      free_slot = s;
      break;
    }
  }
  if (!free_slot) return absl::UnavailableError("SoftHSM2 offers no free slot");
  CK_UTF8CHAR label[32];
  std::memset(label, ' ', sizeof(label));
  std::memcpy(label, t.uri.token.data(), t.uri.token.size());
  auto chars = [](std::string& s) { return reinterpret_cast<CK_UTF8CHAR_PTR>(s.data()); };
  TW_RETURN_IF_ERROR(
      Check("C_InitToken", f->C_InitToken(*free_slot, chars(t.so_pin), t.so_pin.size(), label)));
  // The token moves to a slot of its own: find it by label.
  count = 0;
  TW_RETURN_IF_ERROR(Check("C_GetSlotList", f->C_GetSlotList(CK_TRUE, nullptr, &count)));
  slots.resize(count);
  TW_RETURN_IF_ERROR(Check("C_GetSlotList", f->C_GetSlotList(CK_TRUE, slots.data(), &count)));
  std::optional<CK_SLOT_ID> slot;
  for (CK_SLOT_ID s : slots) {
    CK_TOKEN_INFO info;
    if (f->C_GetTokenInfo(s, &info) == CKR_OK && std::memcmp(info.label, label, 32) == 0) slot = s;
  }
  if (!slot) return absl::UnavailableError("the new SoftHSM2 token has no slot");
  CK_SESSION_HANDLE session;
  TW_RETURN_IF_ERROR(Check(
      "C_OpenSession",
      f->C_OpenSession(*slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session)));
  absl::Status s = Check("C_Login", f->C_Login(session, CKU_SO, chars(t.so_pin), t.so_pin.size()));
  if (s.ok()) s = Check("C_InitPIN", f->C_InitPIN(session, chars(t.pin), t.pin.size()));
  f->C_Logout(session);
  f->C_CloseSession(session);
  TW_RETURN_IF_ERROR(s);
  const std::string pin_file = dir / (t.uri.token + ".pin");
  TW_RETURN_IF_ERROR(base::WriteFile(pin_file, t.pin + "\n", 0600));
  t.uri.pin_source = "file:" + pin_file;
  return t;
}

}  // namespace tw::crypto::testing
