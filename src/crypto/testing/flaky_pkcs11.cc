// A PKCS#11 module for tests that forwards every call to another module
// ($TW_FLAKY_PKCS11_MODULE, e.g. SoftHSM2) and plays a token that went away while the file
// $TW_FLAKY_PKCS11_DOWN exists: signing fails with CKR_DEVICE_REMOVED and no session opens
// (CKR_TOKEN_NOT_PRESENT). Removing the file brings the token back.
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <unistd.h>

#include <cstdlib>

namespace {

CK_FUNCTION_LIST real;
CK_FUNCTION_LIST flaky;

bool Down() {
  const char* file = std::getenv("TW_FLAKY_PKCS11_DOWN");
  return file != nullptr && ::access(file, F_OK) == 0;
}

CK_RV OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                  CK_SESSION_HANDLE_PTR session) {
  if (Down()) return CKR_TOKEN_NOT_PRESENT;
  return real.C_OpenSession(slot, flags, app, notify, session);
}

CK_RV SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key) {
  if (Down()) return CKR_DEVICE_REMOVED;
  return real.C_SignInit(session, mechanism, key);
}

CK_RV Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG size, CK_BYTE_PTR signature,
           CK_ULONG_PTR signature_size) {
  if (Down()) return CKR_DEVICE_REMOVED;
  return real.C_Sign(session, data, size, signature, signature_size);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(
    CK_FUNCTION_LIST_PTR_PTR list) {
  static CK_RV loaded = [] {
    const char* path = std::getenv("TW_FLAKY_PKCS11_MODULE");
    void* module = path != nullptr ? ::dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
    auto get = module != nullptr
                   ? reinterpret_cast<CK_C_GetFunctionList>(::dlsym(module, "C_GetFunctionList"))
                   : nullptr;
    CK_FUNCTION_LIST_PTR functions = nullptr;
    if (get == nullptr || get(&functions) != CKR_OK) return CKR_GENERAL_ERROR;
    real = *functions;
    flaky = real;
    flaky.C_OpenSession = OpenSession;
    flaky.C_SignInit = SignInit;
    flaky.C_Sign = Sign;
    return CKR_OK;
  }();
  if (loaded != CKR_OK) return loaded;
  *list = &flaky;
  return CKR_OK;
}
