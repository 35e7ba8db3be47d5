#include "crypto/pkcs11_signer.h"

// p11-kit's headers: the PKCS#11 types and functions, RFC 7512 URIs, module loading.
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "crypto/public_key.h"
#include "crypto/random.h"
#include "crypto/secret_bytes.h"
#include "crypto/signature_scheme.h"

namespace tw::crypto {
namespace {

constexpr char kPinVariable[] = "TRUSTWARDEN_PKCS11_PIN";
// After a failed attempt to reach the token, callers are answered at once for this long
// instead of each retrying: a token that is away is not hammered.
constexpr absl::Duration kReconnectPause = absl::Milliseconds(200);

// DER OIDs of the named curves, as CKA_EC_PARAMS holds them.
const base::Bytes kP256Params = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const base::Bytes kP384Params = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

std::string RvName(CK_RV rv) {
  switch (rv) {
    case CKR_OK:
      return "CKR_OK";
    case CKR_GENERAL_ERROR:
      return "CKR_GENERAL_ERROR";
    case CKR_ARGUMENTS_BAD:
      return "CKR_ARGUMENTS_BAD";
    case CKR_ATTRIBUTE_SENSITIVE:
      return "CKR_ATTRIBUTE_SENSITIVE";
    case CKR_DEVICE_ERROR:
      return "CKR_DEVICE_ERROR";
    case CKR_DEVICE_MEMORY:
      return "CKR_DEVICE_MEMORY";
    case CKR_DEVICE_REMOVED:
      return "CKR_DEVICE_REMOVED";
    case CKR_FUNCTION_FAILED:
      return "CKR_FUNCTION_FAILED";
    case CKR_KEY_HANDLE_INVALID:
      return "CKR_KEY_HANDLE_INVALID";
    case CKR_MECHANISM_INVALID:
      return "CKR_MECHANISM_INVALID";
    case CKR_OBJECT_HANDLE_INVALID:
      return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_PIN_INCORRECT:
      return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED:
      return "CKR_PIN_LOCKED";
    case CKR_SESSION_CLOSED:
      return "CKR_SESSION_CLOSED";
    case CKR_SESSION_HANDLE_INVALID:
      return "CKR_SESSION_HANDLE_INVALID";
    case CKR_TOKEN_NOT_PRESENT:
      return "CKR_TOKEN_NOT_PRESENT";
    case CKR_TOKEN_NOT_RECOGNIZED:
      return "CKR_TOKEN_NOT_RECOGNIZED";
    case CKR_USER_NOT_LOGGED_IN:
      return "CKR_USER_NOT_LOGGED_IN";
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return "CKR_CRYPTOKI_NOT_INITIALIZED";
    default:
      return absl::StrCat("CKR 0x", absl::Hex(rv));
  }
}

// The errors after which the session (or the token, or the module's state) is gone: the
// token is found again and a new session logged in.
bool IsLost(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_ERROR:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return true;
    default:
      return false;
  }
}

absl::Status Failed(absl::string_view what, CK_RV rv) {
  return absl::UnavailableError(absl::StrCat("PKCS#11 ", what, ": ", RvName(rv)));
}

// A label as a token pads it: 32 bytes, blank-filled (zero-filled when unset).
std::string TrimLabel(const unsigned char* label, size_t size) {
  std::string s(reinterpret_cast<const char*>(label), size);
  const size_t end = s.find_last_not_of(std::string(" \0", 2));
  return end == std::string::npos ? "" : s.substr(0, end + 1);
}

struct UriDeleter {
  void operator()(P11KitUri* uri) const { p11_kit_uri_free(uri); }
};
using UriPtr = std::unique_ptr<P11KitUri, UriDeleter>;

// Modules are loaded and initialized once per process and path, and stay loaded: a
// module's C_Initialize is process-wide state.
absl::StatusOr<CK_FUNCTION_LIST*> LoadModule(const std::string& path) {
  static absl::Mutex mu;
  static auto* modules = new std::map<std::string, CK_FUNCTION_LIST*>();
  absl::MutexLock lock(&mu);
  if (auto it = modules->find(path); it != modules->end()) return it->second;
  CK_FUNCTION_LIST* module = p11_kit_module_load(path.c_str(), 0);
  if (module == nullptr) {
    const char* why = p11_kit_message();
    return absl::UnavailableError(absl::StrCat("PKCS#11 module ", path, " cannot be loaded",
                                               why != nullptr ? ": " : "",
                                               why != nullptr ? why : ""));
  }
  if (CK_RV rv = p11_kit_module_initialize(module); rv != CKR_OK) {
    p11_kit_module_release(module);
    return Failed(absl::StrCat("C_Initialize of ", path), rv);
  }
  modules->emplace(path, module);
  return module;
}

// The PIN: the file pin-source names ("file:PATH" or a path), else the environment.
absl::StatusOr<SecretBytes> ReadPin(const std::string& pin_source) {
  if (pin_source.empty()) {
    const char* pin = std::getenv(kPinVariable);
    if (pin == nullptr || *pin == '\0') {
      return absl::InvalidArgumentError(absl::StrCat(
          "the token needs a PIN: name a file holding it with pin-source=file:PATH in the key "
          "URI, or set ",
          kPinVariable));
    }
    return SecretBytes(pin);
  }
  absl::string_view path = pin_source;
  absl::ConsumePrefix(&path, "file:");
  auto text = base::ReadFile(std::string(path));
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("the PIN file: ", text.status().message()));
  }
  SecretBytes pin(*std::move(text));
  absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(pin.view());
  return SecretBytes(std::string(trimmed));
}

CK_ATTRIBUTE Attribute(CK_ATTRIBUTE_TYPE type, const void* value, size_t size) {
  return CK_ATTRIBUTE{type, const_cast<void*>(value), static_cast<CK_ULONG>(size)};
}

// One attribute's value; NotFound when the object lacks it.
absl::StatusOr<base::Bytes> ReadAttribute(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session,
                                          CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE a = Attribute(type, nullptr, 0);
  CK_RV rv = f->C_GetAttributeValue(session, object, &a, 1);
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID ||
      (rv == CKR_OK && a.ulValueLen == CK_UNAVAILABLE_INFORMATION)) {
    return absl::NotFoundError("attribute missing");
  }
  if (rv != CKR_OK) return Failed("C_GetAttributeValue", rv);
  base::Bytes value(a.ulValueLen);
  a.pValue = value.data();
  rv = f->C_GetAttributeValue(session, object, &a, 1);
  if (rv != CKR_OK) return Failed("C_GetAttributeValue", rv);
  value.resize(a.ulValueLen);
  return value;
}

// The objects matching `match`, at most `max`.
absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(CK_FUNCTION_LIST* f,
                                                          CK_SESSION_HANDLE session,
                                                          std::vector<CK_ATTRIBUTE> match,
                                                          size_t max) {
  CK_RV rv = f->C_FindObjectsInit(session, match.data(), static_cast<CK_ULONG>(match.size()));
  if (rv != CKR_OK) return Failed("C_FindObjectsInit", rv);
  std::vector<CK_OBJECT_HANDLE> found(max);
  CK_ULONG count = 0;
  rv = f->C_FindObjects(session, found.data(), static_cast<CK_ULONG>(max), &count);
  f->C_FindObjectsFinal(session);
  if (rv != CKR_OK) return Failed("C_FindObjects", rv);
  found.resize(count);
  return found;
}

// The curve of CKA_EC_PARAMS; InvalidArgument for another one.
absl::StatusOr<KeyType> CurveOf(const base::Bytes& params) {
  if (params == kP256Params) return KeyType::kEcP256;
  if (params == kP384Params) return KeyType::kEcP384;
  return absl::InvalidArgumentError("the key is not on P-256 or P-384");
}

// CKA_EC_POINT: a DER OCTET STRING around the uncompressed point (some tokens give the
// point bare).
absl::StatusOr<PublicKey> PublicKeyOf(KeyType type, base::ByteView point) {
  const size_t field = FieldBytes(type);
  const size_t bare = 1 + 2 * field;
  if (point.size() == bare + 2 && point[0] == 0x04 && point[1] == bare) point = point.subspan(2);
  if (point.size() != bare || point[0] != 0x04) {
    return absl::InvalidArgumentError("CKA_EC_POINT is not an uncompressed point");
  }
  return PublicKey::FromEcCoordinates(type, point.subspan(1, field), point.subspan(1 + field));
}

// A logged-in session on the token a URI names: the slot is found by label each time, so
// that a token moved to another slot (reinserted, restarted) is found again.
struct Connection {
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
};

absl::StatusOr<Connection> Connect(CK_FUNCTION_LIST* f, const Pkcs11Uri& uri, bool read_write) {
  CK_ULONG count = 0;
  CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &count);
  if (rv != CKR_OK) return Failed("C_GetSlotList", rv);
  std::vector<CK_SLOT_ID> slots(count);
  rv = f->C_GetSlotList(CK_TRUE, slots.data(), &count);
  if (rv != CKR_OK) return Failed("C_GetSlotList", rv);
  slots.resize(count);
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info;
    if (f->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    if (TrimLabel(info.label, sizeof(info.label)) != uri.token) continue;
    Connection c{.slot = slot};
    CK_FLAGS flags = CKF_SERIAL_SESSION | (read_write ? CKF_RW_SESSION : 0);
    rv = f->C_OpenSession(slot, flags, nullptr, nullptr, &c.session);
    if (rv != CKR_OK) return Failed(absl::StrCat("C_OpenSession on token ", uri.token), rv);
    if (info.flags & CKF_LOGIN_REQUIRED) {
      absl::StatusOr<SecretBytes> pin = ReadPin(uri.pin_source);
      if (!pin.ok()) {
        f->C_CloseSession(c.session);
        return pin.status();
      }
      rv = f->C_Login(c.session, CKU_USER,
                      reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin->view().data())),
                      static_cast<CK_ULONG>(pin->view().size()));
      if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        f->C_CloseSession(c.session);
        if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_LOCKED ||
            rv == CKR_PIN_EXPIRED) {
          return absl::PermissionDeniedError(
              absl::StrCat("token ", uri.token, " refused the PIN: ", RvName(rv)));
        }
        return Failed(absl::StrCat("C_Login on token ", uri.token), rv);
      }
    }
    return c;
  }
  return absl::NotFoundError(absl::StrCat("no initialized token labelled ", base::Quote(uri.token),
                                          " in ", uri.module_path));
}

// The private key the URI names and its public key.
struct FoundKey {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  KeyType type = KeyType::kEcP256;
  std::optional<PublicKey> public_key;
};

// The RSA public key from CKA_MODULUS and CKA_PUBLIC_EXPONENT of `object` (either half);
// the token must sign with CKM_RSA_PKCS_PSS.
absl::StatusOr<PublicKey> RsaPublicKeyOf(CK_FUNCTION_LIST* f, const Connection& c,
                                         CK_OBJECT_HANDLE object, const std::string& named) {
  CK_MECHANISM_INFO info;
  if (f->C_GetMechanismInfo(c.slot, CKM_RSA_PKCS_PSS, &info) != CKR_OK ||
      (info.flags & CKF_SIGN) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        named, " is an RSA key and its token does not sign with RSA-PSS (CKM_RSA_PKCS_PSS)"));
  }
  TW_ASSIGN_OR_RETURN(base::Bytes n, ReadAttribute(f, c.session, object, CKA_MODULUS));
  TW_ASSIGN_OR_RETURN(base::Bytes e, ReadAttribute(f, c.session, object, CKA_PUBLIC_EXPONENT));
  return PublicKey::FromRsaComponents(n, e);
}

absl::StatusOr<FoundKey> FindKey(CK_FUNCTION_LIST* f, const Connection& c, const Pkcs11Uri& uri) {
  const CK_SESSION_HANDLE session = c.session;
  const CK_OBJECT_CLASS private_class = CKO_PRIVATE_KEY, public_class = CKO_PUBLIC_KEY;
  std::vector<CK_ATTRIBUTE> match = {Attribute(CKA_CLASS, &private_class, sizeof(private_class))};
  if (!uri.object.empty())
    match.push_back(Attribute(CKA_LABEL, uri.object.data(), uri.object.size()));
  if (!uri.id.empty()) match.push_back(Attribute(CKA_ID, uri.id.data(), uri.id.size()));
  const std::string named = uri.ToString();
  TW_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> keys, FindObjects(f, session, match, 2));
  if (keys.empty()) return absl::NotFoundError(absl::StrCat("no private key matches ", named));
  if (keys.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("several private keys match ", named, ": name one with object= and id="));
  }
  FoundKey key{.handle = keys[0]};
  TW_ASSIGN_OR_RETURN(base::Bytes key_type, ReadAttribute(f, session, key.handle, CKA_KEY_TYPE));
  CK_KEY_TYPE kt = CKK_RSA;
  if (key_type.size() == sizeof(kt)) std::memcpy(&kt, key_type.data(), sizeof(kt));
  if (kt == CKK_RSA) {
    key.type = KeyType::kRsa;
    TW_ASSIGN_OR_RETURN(PublicKey public_key, RsaPublicKeyOf(f, c, key.handle, named));
    key.public_key = std::move(public_key);
    return key;
  }
  if (kt != CKK_EC) {
    return absl::InvalidArgumentError(absl::StrCat(named, " is neither an EC nor an RSA key"));
  }
  TW_ASSIGN_OR_RETURN(base::Bytes params, ReadAttribute(f, session, key.handle, CKA_EC_PARAMS));
  TW_ASSIGN_OR_RETURN(key.type, CurveOf(params));
  // The public half: the public key object of the same id (or label), else the point on
  // the private key object, which some tokens keep.
  absl::StatusOr<base::Bytes> id = ReadAttribute(f, session, key.handle, CKA_ID);
  std::vector<CK_ATTRIBUTE> pub = {Attribute(CKA_CLASS, &public_class, sizeof(public_class))};
  if (id.ok() && !id->empty()) {
    pub.push_back(Attribute(CKA_ID, id->data(), id->size()));
  } else if (!uri.object.empty()) {
    pub.push_back(Attribute(CKA_LABEL, uri.object.data(), uri.object.size()));
  }
  absl::StatusOr<base::Bytes> point = absl::NotFoundError("no public key");
  if (pub.size() > 1) {
    TW_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> halves, FindObjects(f, session, pub, 2));
    if (halves.size() == 1) point = ReadAttribute(f, session, halves[0], CKA_EC_POINT);
  }
  if (!point.ok()) point = ReadAttribute(f, session, key.handle, CKA_EC_POINT);
  if (!point.ok()) {
    return absl::NotFoundError(absl::StrCat("the public key of ", named,
                                            " is not in the token (no public key object of the "
                                            "same CKA_ID, no CKA_EC_POINT)"));
  }
  TW_ASSIGN_OR_RETURN(PublicKey public_key, PublicKeyOf(key.type, *point));
  key.public_key = std::move(public_key);
  return key;
}

}  // namespace

std::string Pkcs11Uri::ToString() const {
  UriPtr uri(p11_kit_uri_new());
  CK_TOKEN_INFO* info = p11_kit_uri_get_token_info(uri.get());
  std::memset(info->label, ' ', sizeof(info->label));
  std::memcpy(info->label, token.data(), std::min(token.size(), sizeof(info->label)));
  if (!object.empty()) {
    CK_ATTRIBUTE a = Attribute(CKA_LABEL, object.data(), object.size());
    p11_kit_uri_set_attribute(uri.get(), &a);
  }
  if (!id.empty()) {
    CK_ATTRIBUTE a = Attribute(CKA_ID, id.data(), id.size());
    p11_kit_uri_set_attribute(uri.get(), &a);
  }
  if (!module_path.empty()) p11_kit_uri_set_module_path(uri.get(), module_path.c_str());
  if (!pin_source.empty()) p11_kit_uri_set_pin_source(uri.get(), pin_source.c_str());
  char* text = nullptr;
  if (p11_kit_uri_format(uri.get(), P11_KIT_URI_FOR_ANY, &text) != P11_KIT_URI_OK) return "pkcs11:";
  std::string out(text);
  std::free(text);
  return out;
}

absl::StatusOr<Pkcs11Uri> ParsePkcs11Uri(absl::string_view text) {
  if (!absl::StartsWith(text, "pkcs11:")) {
    return absl::InvalidArgumentError(absl::StrCat(base::Quote(text), " is not a pkcs11: URI"));
  }
  UriPtr uri(p11_kit_uri_new());
  const std::string copy(text);
  if (int r = p11_kit_uri_parse(copy.c_str(), P11_KIT_URI_FOR_ANY, uri.get());
      r != P11_KIT_URI_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed pkcs11: URI: ", p11_kit_uri_message(r)));
  }
  if (p11_kit_uri_get_pin_value(uri.get()) != nullptr) {
    return absl::InvalidArgumentError(
        "pin-value is refused: a PIN in a key URI ends up in process lists and shell history; "
        "use pin-source=file:PATH or TRUSTWARDEN_PKCS11_PIN");
  }
  if (p11_kit_uri_any_unrecognized(uri.get())) {
    return absl::InvalidArgumentError("the pkcs11: URI has attributes this server does not know");
  }
  Pkcs11Uri out;
  if (const char* path = p11_kit_uri_get_module_path(uri.get())) out.module_path = path;
  if (out.module_path.empty()) {
    return absl::InvalidArgumentError(
        "the pkcs11: URI names no module: add ?module-path=/path/to/the/pkcs11/library.so");
  }
  const CK_TOKEN_INFO* info = p11_kit_uri_get_token_info(uri.get());
  out.token = TrimLabel(info->label, sizeof(info->label));
  if (out.token.empty()) return absl::InvalidArgumentError("the pkcs11: URI names no token=");
  if (const CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(uri.get(), CKA_LABEL)) {
    out.object.assign(static_cast<const char*>(a->pValue), a->ulValueLen);
  }
  if (const CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(uri.get(), CKA_ID)) {
    const auto* p = static_cast<const uint8_t*>(a->pValue);
    out.id.assign(p, p + a->ulValueLen);
  }
  if (const char* source = p11_kit_uri_get_pin_source(uri.get())) out.pin_source = source;
  return out;
}

// The key, its pool of idle sessions, and the state of the connection to its token.
struct Pkcs11Signer::Key {
  Key(CK_FUNCTION_LIST* module, Pkcs11Uri key_uri, KeyType key_type, PublicKey key)
      : f(module),
        uri(std::move(key_uri)),
        type(key_type),
        scheme(key_type == KeyType::kRsa      ? SignatureScheme::kRsaPssSha256
               : key_type == KeyType::kEcP384 ? SignatureScheme::kEcdsaSha384
                                              : SignatureScheme::kEcdsaSha256),
        public_key(std::move(key)) {}

  CK_FUNCTION_LIST* const f;
  const Pkcs11Uri uri;
  const KeyType type;
  const SignatureScheme scheme;
  const PublicKey public_key;

  absl::Mutex mu;
  CK_OBJECT_HANDLE handle ABSL_GUARDED_BY(mu) = CK_INVALID_HANDLE;
  std::vector<CK_SESSION_HANDLE> idle ABSL_GUARDED_BY(mu);
  bool connected ABSL_GUARDED_BY(mu) = false;
  absl::Time retry_after ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  absl::Status last_error ABSL_GUARDED_BY(mu);

  // A logged-in session and the key's handle in it.
  absl::StatusOr<std::pair<CK_SESSION_HANDLE, CK_OBJECT_HANDLE>> Acquire() {
    absl::MutexLock lock(&mu);
    if (connected && !idle.empty()) {
      CK_SESSION_HANDLE s = idle.back();
      idle.pop_back();
      return std::make_pair(s, handle);
    }
    const absl::Time now = absl::Now();
    if (!connected && now < retry_after) return last_error;
    absl::StatusOr<Connection> c = Connect(f, uri, /*read_write=*/false);
    if (c.ok() && !connected) {
      absl::StatusOr<FoundKey> found = FindKey(f, *c, uri);
      if (found.ok() && *found->public_key != public_key) {
        found = absl::FailedPreconditionError(absl::StrCat(
            uri.ToString(), " now holds another key than the one this server started with"));
      }
      if (!found.ok()) {
        f->C_CloseSession(c->session);
        c = found.status();
      } else {
        handle = found->handle;
        connected = true;
      }
    }
    if (!c.ok()) {
      last_error = absl::UnavailableError(
          absl::StrCat("the token of ", uri.token, " is unavailable: ", c.status().message()));
      retry_after = now + kReconnectPause;
      return last_error;
    }
    return std::make_pair(c->session, handle);
  }

  void Release(CK_SESSION_HANDLE session) {
    absl::MutexLock lock(&mu);
    if (connected) {
      idle.push_back(session);
    } else {
      f->C_CloseSession(session);
    }
  }

  // The token or session was lost: every idle session is closed, and the next Acquire
  // finds the token and the key again.
  void Lost(CK_SESSION_HANDLE session) {
    absl::MutexLock lock(&mu);
    f->C_CloseSession(session);
    for (CK_SESSION_HANDLE s : idle) f->C_CloseSession(s);
    idle.clear();
    connected = false;
  }

  ~Key() {
    for (CK_SESSION_HANDLE s : idle) f->C_CloseSession(s);
  }
};

Pkcs11Signer::Pkcs11Signer(std::unique_ptr<Key> key) : key_(std::move(key)) {}
Pkcs11Signer::~Pkcs11Signer() = default;

const std::string& Pkcs11Signer::key_id() const { return key_->public_key.Thumbprint(); }
SignatureScheme Pkcs11Signer::algorithm() const { return key_->scheme; }
const PublicKey& Pkcs11Signer::public_key() const { return key_->public_key; }

absl::StatusOr<std::unique_ptr<Pkcs11Signer>> Pkcs11Signer::Open(absl::string_view text) {
  TW_ASSIGN_OR_RETURN(Pkcs11Uri uri, ParsePkcs11Uri(text));
  if (uri.object.empty() && uri.id.empty()) {
    return absl::InvalidArgumentError("the pkcs11: URI names no key: add object= or id=");
  }
  TW_ASSIGN_OR_RETURN(CK_FUNCTION_LIST * f, LoadModule(uri.module_path));
  TW_ASSIGN_OR_RETURN(Connection c, Connect(f, uri, /*read_write=*/false));
  absl::StatusOr<FoundKey> found = FindKey(f, c, uri);
  if (!found.ok()) {
    f->C_CloseSession(c.session);
    return found.status();
  }
  auto key = std::make_unique<Key>(f, std::move(uri), found->type, *found->public_key);
  {
    absl::MutexLock lock(&key->mu);
    key->handle = found->handle;
    key->idle.push_back(c.session);
    key->connected = true;
  }
  return std::unique_ptr<Pkcs11Signer>(new Pkcs11Signer(std::move(key)));
}

absl::StatusOr<base::Bytes> Pkcs11Signer::Sign(base::ByteView data) const {
  base::Bytes digest = SchemeDigest(key_->scheme, data);
  const bool rsa = key_->type == KeyType::kRsa;
  // RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a salt as long as the digest (RFC 7518
  // §3.5, RFC 4055 §3.1), over the digest.
  CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
  CK_MECHANISM mechanism =
      rsa ? CK_MECHANISM{CKM_RSA_PKCS_PSS, &pss, sizeof(pss)} : CK_MECHANISM{CKM_ECDSA, nullptr, 0};
  const size_t signature_size = rsa ? key_->public_key.rsa_n().size() : 2 * FieldBytes(key_->type);
  CK_FUNCTION_LIST* f = key_->f;
  absl::Status error;
  // A session found lost is replaced once: a restarted token is reached again at once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    TW_ASSIGN_OR_RETURN(auto acquired, key_->Acquire());
    auto [session, handle] = acquired;
    base::Bytes raw(signature_size);
    CK_ULONG size = static_cast<CK_ULONG>(raw.size());
    CK_RV rv = f->C_SignInit(session, &mechanism, handle);
    if (rv == CKR_OK) {
      rv = f->C_Sign(session, digest.data(), static_cast<CK_ULONG>(digest.size()), raw.data(),
                     &size);
    }
    if (rv == CKR_OK && size == raw.size()) {
      key_->Release(session);
      return rsa ? raw : EcdsaRawToDer(raw);
    }
    if (rv == CKR_OK) {
      key_->Release(session);
      return absl::InternalError(absl::StrCat("PKCS#11 C_Sign returned ", size, " bytes"));
    }
    error = Failed("C_Sign", rv);
    if (!IsLost(rv)) {
      // An operation may be left active in the session: it is not reused.
      key_->Lost(session);
      return error;
    }
    key_->Lost(session);
  }
  return absl::UnavailableError(
      absl::StrCat("the token of ", key_->uri.token, " is unavailable: ", error.message()));
}

absl::StatusOr<std::string> GeneratePkcs11Key(const Pkcs11Uri& token_uri, absl::string_view label,
                                              KeyType type) {
  if (type == KeyType::kEcP521) {
    return absl::InvalidArgumentError("keys in a token are P-256, P-384 or RSA");
  }
  if (label.empty()) return absl::InvalidArgumentError("a key needs a label");
  TW_ASSIGN_OR_RETURN(CK_FUNCTION_LIST * f, LoadModule(token_uri.module_path));
  TW_ASSIGN_OR_RETURN(Connection c, Connect(f, token_uri, /*read_write=*/true));
  struct Closer {
    CK_FUNCTION_LIST* f;
    CK_SESSION_HANDLE s;
    ~Closer() { f->C_CloseSession(s); }
  } closer{f, c.session};
  const std::string name(label);
  TW_ASSIGN_OR_RETURN(
      std::vector<CK_OBJECT_HANDLE> existing,
      FindObjects(f, c.session, {Attribute(CKA_LABEL, name.data(), name.size())}, 1));
  if (!existing.empty()) {
    return absl::AlreadyExistsError(
        absl::StrCat("token ", token_uri.token, " already holds an object labelled ", name));
  }
  const base::Bytes id = RandomBytes(16);
  const base::Bytes& params = type == KeyType::kEcP384 ? kP384Params : kP256Params;
  const CK_ULONG modulus_bits = kRsaModulusBits;
  const uint8_t public_exponent[] = {0x01, 0x00, 0x01};  // 65537
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  std::vector<CK_ATTRIBUTE> public_template = {
      Attribute(CKA_TOKEN, &yes, sizeof(yes)), Attribute(CKA_VERIFY, &yes, sizeof(yes)),
      Attribute(CKA_LABEL, name.data(), name.size()), Attribute(CKA_ID, id.data(), id.size())};
  if (type == KeyType::kRsa) {
    public_template.push_back(Attribute(CKA_MODULUS_BITS, &modulus_bits, sizeof(modulus_bits)));
    public_template.push_back(
        Attribute(CKA_PUBLIC_EXPONENT, public_exponent, sizeof(public_exponent)));
  } else {
    public_template.push_back(Attribute(CKA_EC_PARAMS, params.data(), params.size()));
  }
  std::vector<CK_ATTRIBUTE> private_template = {
      Attribute(CKA_TOKEN, &yes, sizeof(yes)), Attribute(CKA_PRIVATE, &yes, sizeof(yes)),
      Attribute(CKA_SENSITIVE, &yes, sizeof(yes)), Attribute(CKA_EXTRACTABLE, &no, sizeof(no)),
      Attribute(CKA_SIGN, &yes, sizeof(yes)),
      // It signs and does nothing else.
      Attribute(CKA_DECRYPT, &no, sizeof(no)), Attribute(CKA_UNWRAP, &no, sizeof(no)),
      Attribute(CKA_DERIVE, &no, sizeof(no)), Attribute(CKA_LABEL, name.data(), name.size()),
      Attribute(CKA_ID, id.data(), id.size())};
  CK_MECHANISM mechanism{type == KeyType::kRsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN,
                         nullptr, 0};
  CK_OBJECT_HANDLE public_key, private_key;
  CK_RV rv = f->C_GenerateKeyPair(
      c.session, &mechanism, public_template.data(), static_cast<CK_ULONG>(public_template.size()),
      private_template.data(), static_cast<CK_ULONG>(private_template.size()), &public_key,
      &private_key);
  if (rv != CKR_OK) return Failed("C_GenerateKeyPair", rv);
  Pkcs11Uri key_uri = token_uri;
  key_uri.object = name;
  key_uri.id = id;
  return key_uri.ToString();
}

}  // namespace tw::crypto
