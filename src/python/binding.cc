// trustwarden._native: the C++ SDK for the `trustwarden` Python package, which gives it its
// Python shape (trustwarden/*.py). The GIL is released around every network and crypto
// call; the SDK's errors become the package's exceptions (trustwarden/errors.py), and a
// Python exception raised in a connector passes through the SDK unchanged.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "base/bytes.h"
#include "core/scope.h"
#include "crypto/secret_bytes.h"
#include "sdk/background_threads.h"
#include "sdk/identity_state.h"
#include "sdk/peer_check.h"
#include "sdk/status_error.h"
#include "trustwarden/trustwarden.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace trustwarden::python {
namespace {

using std::chrono::milliseconds;

// The interpreter's main thread: the one that finalizes it.
unsigned long main_thread = 0;

// CPython ends any other thread that takes the GIL while the interpreter finalizes (a daemon
// thread coming back from the SDK), by a forced unwind that C++ frames turn into
// std::terminate. Such a thread waits instead for the process to end.
void ParkIfFinalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  const bool finalizing = Py_IsFinalizing();
#else
  const bool finalizing = _Py_IsFinalizing();
#endif
  if (finalizing && PyThread_get_thread_ident() != main_thread) {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
}

// The threads running SDK code with the GIL released. When the process exits, before
// OpenSSL is torn down, they are waited for (kExitWait at most: a request to a server slow
// to answer is not) until each has come back and parked: none may be inside OpenSSL then.
std::atomic<int> threads_in_sdk{0};
thread_local bool in_sdk = false;
constexpr auto kExitWait = std::chrono::seconds(3);

// Marks the calling thread as running SDK code or not; returns what it was.
bool SetInSdk(bool now) {
  const bool was = in_sdk;
  if (was != now) {
    in_sdk = now;
    threads_in_sdk.fetch_add(now ? 1 : -1);
  }
  return was;
}

void WaitForThreadsInSdk() {
  const auto deadline = std::chrono::steady_clock::now() + kExitWait;
  while (threads_in_sdk.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// py::gil_scoped_release and py::gil_scoped_acquire, parking as above and counted in
// threads_in_sdk. A thread that was already waiting for the GIL when finalization began is
// still ended by CPython: the destructor lets that forced unwind through (pybind11 rethrows
// it) instead of terminating.
class Released {
 public:
  Released() : state_(PyEval_SaveThread()), was_in_sdk_(SetInSdk(true)) {}
  Released(const Released&) = delete;
  Released& operator=(const Released&) = delete;
  ~Released() noexcept(false) {
    SetInSdk(was_in_sdk_);
    ParkIfFinalizing();
    PyEval_RestoreThread(state_);
  }

 private:
  PyThreadState* state_;
  bool was_in_sdk_;
};

class Acquired {
 public:
  Acquired() : was_in_sdk_(SetInSdk(false)), state_((ParkIfFinalizing(), PyGILState_Ensure())) {}
  Acquired(const Acquired&) = delete;
  Acquired& operator=(const Acquired&) = delete;
  ~Acquired() {
    PyGILState_Release(state_);
    SetInSdk(was_in_sdk_);
  }

 private:
  bool was_in_sdk_;
  PyGILState_STATE state_;
};

// The package's exception classes, by what the SDK threw. Never freed: the translator may
// run until the interpreter ends.
struct ErrorClasses {
  py::object base, denied, revoked, expired, unavailable, invalid_argument;
};
const ErrorClasses* error_classes = nullptr;

const py::object& ClassFor(const Error& e) {
  const ErrorClasses& c = *error_classes;
  if (dynamic_cast<const Revoked*>(&e) != nullptr) return c.revoked;
  if (dynamic_cast<const Expired*>(&e) != nullptr) return c.expired;
  if (e.code() == "permission_denied") return c.denied;
  if (e.code() == "unavailable" || e.code() == "deadline_exceeded") return c.unavailable;
  if (e.code() == "invalid_argument") return c.invalid_argument;
  return c.base;
}

void RaiseError(const Error& e) {
  const auto* denied = dynamic_cast<const Denied*>(&e);
  py::object exc = ClassFor(e)(e.what(), "code"_a = e.code(),
                               "reason"_a = denied ? denied->reason() : std::string(e.what()),
                               "event_id"_a = denied ? denied->event_id() : std::string());
  PyErr_SetObject(exc.get_type().ptr(), exc.ptr());
}

// A Python exception raised by a connector, on its way through the SDK (which records the
// failed outcome from what()) back to the caller, who re-raises the original.
class PythonRaised : public std::runtime_error {
 public:
  PythonRaised(const std::string& what, py::error_already_set error)
      : std::runtime_error(what), error(std::move(error)) {}
  py::error_already_set error;
};

// A Python object that may be released on any thread, and after the interpreter has gone.
std::shared_ptr<py::object> Hold(py::object o) {
  return std::shared_ptr<py::object>(new py::object(std::move(o)), [](py::object* p) {
    if (Py_IsInitialized()) {
      Acquired gil;
      delete p;
    } else {
      p->release();  // nothing left to decrement
      delete p;
    }
  });
}

Connection MakeConnection(const std::string& server, const std::string& token,
                          const std::string& bundle, const std::string& spool, double max_staleness,
                          std::map<std::string, std::string> federated_revocations) {
  Connection c{server, token, bundle, spool};
  if (max_staleness > 0) c.max_staleness = milliseconds(static_cast<int64_t>(max_staleness * 1e3));
  c.federated_revocations = std::move(federated_revocations);
  return c;
}

Requirement MakeRequirement(std::vector<std::string> spiffe_ids, std::string trust_domain,
                            std::string scope, std::string min_trust_level, std::string resource) {
  return Requirement{std::move(spiffe_ids), std::move(trust_domain), std::move(scope),
                     std::move(min_trust_level), std::move(resource)};
}

py::dict DecisionDict(const Decision& d) {
  return py::dict("allowed"_a = d.allowed, "reason"_a = d.reason, "spiffe_id"_a = d.spiffe_id,
                  "instance_id"_a = d.instance_id, "trust_level"_a = d.trust_level,
                  "scopes"_a = d.scopes, "event_id"_a = d.event_id);
}

// Verifier::verify_x509 or verify_jwt of `credential` against a requirement, with the GIL
// released.
template <Decision (Verifier::*verify)(const std::string&, const Requirement&) const>
py::dict Verify(const Verifier& v, const std::string& credential,
                std::vector<std::string> spiffe_ids, std::string trust_domain, std::string scope,
                std::string min_trust_level, std::string resource) {
  const Requirement r =
      MakeRequirement(std::move(spiffe_ids), std::move(trust_domain), std::move(scope),
                      std::move(min_trust_level), std::move(resource));
  Decision d;
  {
    Released release;
    d = (v.*verify)(credential, r);
  }
  return DecisionDict(d);
}

// The peer check of one ssl_context: the identity's bundle and revocation stream, and what
// the peer must be.
class PeerChecker {
 public:
  PeerChecker(const AgentIdentity& self, Requirement peer)
      : check_(std::make_shared<internal::PeerCheck>(internal::Access::Of(self)->endpoint)),
        peer_(std::move(peer)) {}

  // The decision on a peer's DER chain, leaf first.
  py::dict Check(const std::vector<std::string>& chain) const {
    Decision d;
    {
      Released release;
      std::vector<tw::base::ByteView> views;
      for (const std::string& der : chain) views.push_back(tw::base::AsBytes(der));
      d = internal::ValueOrThrow(check_->CheckX509(views, peer_));
    }
    return DecisionDict(d);
  }

 private:
  std::shared_ptr<const internal::PeerCheck> check_;
  Requirement peer_;
};

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// One agent instance. Destruction, like the C++ SDK's, revokes it unless it was closed or
// detached; it happens with the GIL released.
class Identity {
 public:
  explicit Identity(AgentIdentity id) : id_(std::make_unique<AgentIdentity>(std::move(id))) {}
  Identity(const Identity&) = delete;
  Identity& operator=(const Identity&) = delete;
  ~Identity() {
    Released release;
    id_.reset();
  }

  static std::unique_ptr<Identity> Create(IdentityOptions options) {
    Released release;
    return std::make_unique<Identity>(AgentIdentity::create(options));
  }

  std::unique_ptr<Identity> Spawn(IdentityOptions options) const {
    Released release;
    return std::make_unique<Identity>(id_->spawn(std::move(options)));
  }

  AgentIdentity& get() const { return *id_; }

  int64_t expires_at_ms() const {
    return std::chrono::duration_cast<milliseconds>(id_->expires_at().time_since_epoch()).count();
  }

  // (event_id, response) of an allowed call.
  py::tuple Call(const std::string& resource, const std::string& action, const std::string& payload,
                 const std::string& input, const std::string& min_trust_level,
                 const std::string& server_spiffe_id) {
    CallResult r;
    try {
      Released release;
      r = id_->call(resource, action, payload,
                    CallOptions{input, min_trust_level, server_spiffe_id});
    } catch (const PythonRaised& raised) {
      throw raised.error;  // the connector's own exception, with its traceback
    }
    return py::make_tuple(r.event_id, py::bytes(r.response));
  }

  // (fd, chain): a new anonymous in-memory file (memfd) holding the current certificate
  // chain and its private key, PEM, for ssl.SSLContext.load_cert_chain (the caller closes
  // it), and the chain alone. The key never enters Python's heap.
  py::tuple CredentialFile() const {
    const AgentIdentity::State& state = *internal::Access::Of(*id_);
    if (state.closed()) throw Revoked("the identity was closed", "");
    const internal::Credential c = state.Current();
    const tw::crypto::SecretBytes key = c.key->ToPkcs8Pem();
    const int fd = memfd_create("trustwarden-svid", MFD_CLOEXEC);
    if (fd < 0 || !WriteAll(fd, c.svid_pem) || !WriteAll(fd, key.view())) {
      const std::string why = std::strerror(errno);
      if (fd >= 0) close(fd);
      throw Error("internal", "cannot hold the SVID in memory: " + why);
    }
    return py::make_tuple(fd, c.svid_pem);
  }

  // Every trusted domain's X.509 authorities (ours and the federated ones), PEM.
  std::string TrustedPem() const {
    return internal::TrustedPem(internal::Access::Of(*id_)->endpoint);
  }
  // Changes whenever TrustedPem() may have: read on every connection instead of the PEM.
  uint64_t TrustedGeneration() const {
    return internal::Access::Of(*id_)->endpoint.bundles->generation();
  }

 private:
  std::unique_ptr<AgentIdentity> id_;
};

IdentityOptions Options(std::string name, std::vector<std::string> scope, std::string ttl,
                        std::string trust_level, Connection connection = {}) {
  return IdentityOptions{.name = std::move(name),
                         .scope = std::move(scope),
                         .ttl = std::move(ttl),
                         .trust_level = std::move(trust_level),
                         .connection = std::move(connection)};
}

// "Type: message" of a Python exception, for the ledger; whatever its __str__ does or holds.
std::string Describe(const py::error_already_set& e) {
  std::string what = "an exception";
  try {
    what = e.type().attr("__qualname__").cast<std::string>();
    const py::object message = py::str(e.value()).attr("encode")("utf-8", "backslashreplace");
    const std::string text = message.cast<std::string>();
    if (!text.empty()) what += ": " + text;
  } catch (const py::error_already_set&) {
    // The description failed, not the call: keep what is known.
  }
  return what;
}

// A connector calling `fn(instance_id, resource, action, payload, server_spiffe_id)`, which
// returns bytes.
Connector PythonConnector(py::object fn) {
  std::shared_ptr<py::object> held = Hold(std::move(fn));
  return [held](AgentIdentity& agent, const CallRequest& r) -> std::string {
    Acquired gil;
    try {
      py::object out = (*held)(agent.instance_id(), r.resource, r.action, py::bytes(r.payload),
                               r.server_spiffe_id);
      return out.cast<std::string>();
    } catch (py::error_already_set& e) {
      const std::string what = Describe(e);  // before `e` is moved from
      throw PythonRaised(what, std::move(e));
    }
  };
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "The TrustWarden C++ SDK; use the trustwarden package, not this module.";
  m.attr("__version__") = TW_VERSION;
  main_thread =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  (void)internal::StopAtExit(WaitForThreadsInSdk);
  py::module_ errors = py::module_::import("trustwarden.errors");
  error_classes = new ErrorClasses{errors.attr("TrustWardenError"), errors.attr("Denied"),
                                   errors.attr("Revoked"),          errors.attr("Expired"),
                                   errors.attr("Unavailable"),      errors.attr("InvalidArgument")};
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      RaiseError(e);
    }
  });

  py::class_<PeerChecker>(m, "PeerChecker").def("check", &PeerChecker::Check, "chain"_a);

  py::class_<Identity>(m, "Identity")
      .def_static(
          "create",
          [](std::string name, std::vector<std::string> scope, std::string ttl,
             std::string trust_level, std::string server, std::string token, std::string bundle,
             std::string spool, double max_staleness,
             std::map<std::string, std::string> federated_revocations) {
            return Identity::Create(
                Options(std::move(name), std::move(scope), std::move(ttl), std::move(trust_level),
                        MakeConnection(server, token, bundle, spool, max_staleness,
                                       std::move(federated_revocations))));
          },
          "name"_a, "scope"_a, "ttl"_a, "trust_level"_a, "server"_a, "token"_a, "bundle"_a,
          "spool"_a, "max_staleness"_a, "federated_revocations"_a)
      .def(
          "spawn",
          [](const Identity& self, std::string name, std::vector<std::string> scope,
             std::string ttl, std::string trust_level) {
            return self.Spawn(
                Options(std::move(name), std::move(scope), std::move(ttl), std::move(trust_level)));
          },
          "name"_a, "scope"_a, "ttl"_a, "trust_level"_a)
      .def_property_readonly("spiffe_id", [](const Identity& s) { return s.get().spiffe_id(); })
      .def_property_readonly("instance_id", [](const Identity& s) { return s.get().instance_id(); })
      .def_property_readonly("svid_pem", [](const Identity& s) { return s.get().svid_pem(); })
      .def_property_readonly("bundle_pem", [](const Identity& s) { return s.get().bundle_pem(); })
      .def_property_readonly("trusted_pem", &Identity::TrustedPem)
      .def_property_readonly("trusted_generation", &Identity::TrustedGeneration)
      .def_property_readonly("scopes", [](const Identity& s) { return s.get().scopes(); })
      .def_property_readonly("trust_level", [](const Identity& s) { return s.get().trust_level(); })
      .def_property_readonly("expires_at_ms", &Identity::expires_at_ms)
      .def_property_readonly("revoked", [](const Identity& s) { return s.get().revoked(); })
      .def(
          "jwt",
          [](const Identity& s, const std::string& audience) {
            Released release;
            return s.get().jwt(audience);
          },
          "audience"_a)
      .def("call", &Identity::Call, "resource"_a, "action"_a, "payload"_a, "input"_a,
           "min_trust_level"_a, "server_spiffe_id"_a)
      .def("close",
           [](const Identity& s) {
             Released release;
             s.get().close();
           })
      .def("detach",
           [](const Identity& s) {
             Released release;  // waits for the renewer's thread
             s.get().detach();
           })
      .def("credential_file", &Identity::CredentialFile)
      .def(
          "peer_checker",
          [](const Identity& s, std::vector<std::string> spiffe_ids, std::string trust_domain,
             std::string scope, std::string min_trust_level) {
            // A malformed requirement is refused now, not at the first handshake.
            if (!scope.empty()) internal::ValueOrThrow(tw::core::Scope::Parse(scope));
            if (!min_trust_level.empty()) {
              internal::ValueOrThrow(tw::core::ParseTrustLevel(min_trust_level));
            }
            return std::make_unique<PeerChecker>(
                s.get(), MakeRequirement(std::move(spiffe_ids), std::move(trust_domain),
                                         std::move(scope), std::move(min_trust_level), ""));
          },
          "spiffe_ids"_a, "trust_domain"_a, "scope"_a, "min_trust_level"_a);

  py::class_<Verifier>(m, "Verifier")
      .def(py::init([](std::string server, std::string bundle, std::string audience,
                       const Identity* recorder, double max_staleness,
                       std::map<std::string, std::string> federated_revocations) {
             Released release;
             return std::make_unique<Verifier>(VerifierOptions{
                 MakeConnection(server, "", bundle, "", max_staleness,
                                std::move(federated_revocations)),
                 std::move(audience), recorder != nullptr ? &recorder->get() : nullptr});
           }),
           "server"_a, "bundle"_a, "audience"_a, "recorder"_a, "max_staleness"_a,
           "federated_revocations"_a, py::keep_alive<1, 5>())
      .def("verify_x509", &Verify<&Verifier::verify_x509>, "chain_pem"_a, "spiffe_ids"_a,
           "trust_domain"_a, "scope"_a, "min_trust_level"_a, "resource"_a)
      .def("verify_jwt", &Verify<&Verifier::verify_jwt>, "token"_a, "spiffe_ids"_a,
           "trust_domain"_a, "scope"_a, "min_trust_level"_a, "resource"_a);

  // The registry's lock is taken without the GIL: a thread calling into the SDK may hold
  // the lock while it waits for the GIL (a replaced connector's Python cleanup).
  m.def(
      "register_connector",
      [](const std::string& scheme, py::object fn) {
        Connector connector = PythonConnector(std::move(fn));
        Released release;
        AgentIdentity::register_connector(scheme, std::move(connector));
      },
      "scheme"_a, "fn"_a);
  m.def("trust_origin", &AgentIdentity::trust_origin, "origin"_a, "server_spiffe_id"_a,
        py::call_guard<Released>());
  m.def("allow_plain_http", &AgentIdentity::allow_plain_http, "origin"_a,
        py::call_guard<Released>());
  m.def("require_trust_level", &AgentIdentity::require_trust_level, "scope"_a, "min_trust_level"_a,
        py::call_guard<Released>());
  m.def(
      "revoke",
      [](std::string instance, std::string agent, std::string subtree, std::string principal,
         std::string reason, std::string server, std::string token, std::string bundle) {
        Released release;
        return revoke(RevokeRequest{std::move(instance), std::move(agent), std::move(subtree),
                                    std::move(principal), std::move(reason)},
                      MakeConnection(server, token, bundle, "", 0, {}));
      },
      "instance"_a, "agent"_a, "subtree"_a, "principal"_a, "reason"_a, "server"_a, "token"_a,
      "bundle"_a);
  m.def(
      "parse_spiffe_id",
      [](const std::string& id) {
        const tw::core::SpiffeId parsed =
            internal::ValueOrThrow(tw::core::SpiffeId::FromString(id));
        return py::make_tuple(std::string(parsed.trust_domain_name()), std::string(parsed.path()));
      },
      "id"_a);
  m.def(
      "parse_trust_domain",
      [](const std::string& name) {
        return internal::ValueOrThrow(tw::core::TrustDomain::FromNameOrId(name)).name();
      },
      "name"_a);
}

}  // namespace trustwarden::python
