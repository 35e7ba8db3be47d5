#include "trustwarden/agent_identity.h"

#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/bytes.h"
#include "base/file.h"
#include "core/bundle.h"
#include "core/certificate.h"
#include "core/csr.h"
#include "core/scope.h"
#include "core/x509_issuer.h"
#include "core/x509_verifier.h"
#include "crypto/software_signer.h"
#include "ledger/entry.h"
#include "ledger/event.h"
#include "net/https_client.h"
#include "nlohmann/json.hpp"

namespace trustwarden {
namespace {

using nlohmann::json;
namespace core = tw::core;
namespace crypto = tw::crypto;
namespace ledger = tw::ledger;
namespace net = tw::net;

// JWT-SVIDs are reused until this long before they expire.
constexpr absl::Duration kJwtMargin = absl::Minutes(1);
constexpr absl::Duration kMaxBackoff = absl::Seconds(30);

[[noreturn]] void Throw(const absl::Status& s) {
  throw Error(absl::AsciiStrToLower(absl::StatusCodeToString(s.code())), std::string(s.message()));
}

template <typename T>
T Check(absl::StatusOr<T> v) {
  if (!v.ok()) Throw(v.status());
  return *std::move(v);
}

void Check(const absl::Status& s) {
  if (!s.ok()) Throw(s);
}

std::string Env(const std::string& value, const char* name, const char* fallback) {
  if (!value.empty()) return value;
  const char* env = std::getenv(name);
  return env != nullptr && *env != '\0' ? env : fallback;
}

// The server's URL and token, and the trust bundle's CA certificates as PEM.
struct Endpoint {
  std::string server;
  std::string token;
  std::string ca_pem;
  std::shared_ptr<core::BundleSet> bundles = std::make_shared<core::BundleSet>();
  std::vector<core::TrustDomain> trust_domains;  // whose TrustWarden attributes count
};

Endpoint Resolve(const Connection& c) {
  Endpoint e;
  e.server = Env(c.server, "TRUSTWARDEN_SERVER", "https://127.0.0.1:8443");
  e.token = Env(c.token, "TRUSTWARDEN_TOKEN", "");
  const std::string path = Env(c.bundle, "TRUSTWARDEN_BUNDLE", "./trustwarden-data/bundle.pem");
  core::Bundle bundle = Check(core::Bundle::Parse(Check(tw::base::ReadFile(path))));
  if (bundle.x509_authorities().empty()) {
    throw Error("invalid_argument", absl::StrCat(path, " has no X.509 authority"));
  }
  e.ca_pem = bundle.ToPem();
  e.trust_domains.push_back(bundle.trust_domain());
  e.bundles->Put(std::move(bundle));
  return e;
}

// POSTs `body` and returns the reply's JSON; throws the server's error code and message.
json Post(net::HttpsClient& client, const std::string& target, const json& body,
          const std::string& token = "") {
  net::Headers headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  net::Response r = Check(client.Request("POST", target, body.dump(), headers));
  json reply = json::parse(r.body, nullptr, false);
  if (r.status >= 200 && r.status < 300 && reply.is_object()) return reply;
  if (reply.is_object() && reply.contains("error") && reply["error"].is_object()) {
    throw Error(reply["error"].value("code", "unknown"),
                absl::StrCat("server: ", reply["error"].value("message", "")));
  }
  throw Error("unavailable", absl::StrCat("server: HTTP ", r.status));
}

std::mutex connectors_mu;
std::map<std::string, Connector>& Connectors() {
  static auto* connectors = new std::map<std::string, Connector>();
  return *connectors;
}

}  // namespace

// One instance: its key and certificate (replaced together on renewal) and the renewer.
struct AgentIdentity::State {
  Endpoint endpoint;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<const crypto::SoftwareSigner> key;  // guarded by mu, with the fields below
  std::string key_pem;
  std::string svid_pem;
  std::optional<core::VerifiedX509Svid> svid;  // set once created
  absl::Time issued_at;  // when the current certificate arrived (its notBefore is backdated)
  std::string instance_id;
  std::map<std::string, std::pair<std::string, absl::Time>> jwts;  // by audience
  bool revoked = false;
  bool closed = false;
  bool detached = false;
  bool stopping = false;
  std::thread renewer;

  // The key and certificate at one moment, for one signed request.
  struct Credential {
    std::shared_ptr<const crypto::SoftwareSigner> key;
    std::string key_pem, svid_pem;
    core::VerifiedX509Svid svid;
  };
  Credential Current() const {
    std::lock_guard<std::mutex> lock(mu);
    return {key, key_pem, svid_pem, *svid};
  }

  std::unique_ptr<net::HttpsClient> Client(const Credential& c) const {
    return Check(net::HttpsClient::Create({.server = endpoint.server,
                                           .ca_pem = endpoint.ca_pem,
                                           .client_chain_pem = c.svid_pem,
                                           .client_key_pem = c.key_pem}));
  }

  // Checks an issued SVID (chain to the bundle, our key, the expected SPIFFE ID) and makes
  // it current together with `new_key`.
  void Adopt(const json& reply, std::unique_ptr<crypto::SoftwareSigner> new_key) {
    const std::string pem = reply.value("svid_pem", "");
    std::vector<core::Certificate> chain = Check(core::Certificate::ParseChain(pem));
    if (chain.empty()) throw Error("unavailable", "server: the reply has no certificate");
    const tw::base::ByteView spki = chain[0].spki();
    if (tw::base::Bytes(spki.begin(), spki.end()) != new_key->public_key_der()) {
      throw Error("unavailable", "server: the certificate is not for this identity's key");
    }
    std::vector<tw::base::ByteView> ders;
    for (const core::Certificate& c : chain) ders.emplace_back(c.der());
    core::X509VerifierOptions options;
    options.attribute_trust_domains = endpoint.trust_domains;
    core::X509Verifier verifier(endpoint.bundles, options);
    core::VerifiedX509Svid verified = Check(verifier.Verify(ders));
    if (!verified.attributes) throw Error("unavailable", "server: the SVID has no attributes");
    std::lock_guard<std::mutex> lock(mu);
    if (svid && verified.spiffe_id.str() != svid->spiffe_id.str()) {
      throw Error("unavailable", "server: the renewed SVID names another instance");
    }
    instance_id = reply.value("instance_id", std::string(verified.spiffe_id.segments().back()));
    issued_at = absl::Now();
    svid = std::move(verified);
    svid_pem = pem;
    key_pem = std::string(new_key->ToPkcs8Pem().view());
    key = std::move(new_key);
    jwts.clear();
  }

  // A new key, a CSR for it, and the server's certificate over mTLS with the current one.
  void Renew() {
    auto new_key = Check(crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
    const std::string csr =
        core::PemEncode("CERTIFICATE REQUEST", Check(core::BuildCertificateRequest(*new_key)));
    auto client = Client(Current());
    Adopt(Post(*client, "/v1/identities/renew", json{{"csr", csr}}), std::move(new_key));
  }

  // Renews at half-life (with up to 10% jitter); retries failures with backoff until the
  // certificate expires; stops on revocation, close or destruction.
  void RenewLoop() {
    std::mt19937_64 rng(std::random_device{}());
    absl::Duration backoff = absl::Seconds(1);
    std::unique_lock<std::mutex> lock(mu);
    absl::Time due = RenewalTime(rng);
    while (!stopping && !revoked) {
      if (cv.wait_for(lock, absl::ToChronoMilliseconds(std::max(due - absl::Now(), {})),
                      [this] { return stopping; })) {
        return;
      }
      if (absl::Now() < due) continue;
      lock.unlock();
      std::string failure;
      try {
        Renew();
      } catch (const Error& e) {
        failure = e.code();
      }
      lock.lock();
      if (failure.empty()) {
        backoff = absl::Seconds(1);
        due = RenewalTime(rng);
      } else if (failure == "permission_denied" || failure == "unauthenticated") {
        revoked = true;  // the server no longer accepts this instance
      } else {
        due = std::min(absl::Now() + backoff, svid->not_after);
        backoff = std::min(backoff * 2, kMaxBackoff);
      }
    }
  }

  absl::Time RenewalTime(std::mt19937_64& rng) const {
    const absl::Duration life = svid->not_after - issued_at;
    const double jitter = std::uniform_real_distribution<double>(-0.05, 0.05)(rng);
    return issued_at + life * (0.5 + jitter);
  }

  void StopRenewal() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
    if (renewer.joinable() && renewer.get_id() != std::this_thread::get_id()) renewer.join();
  }

  // An event about this instance, as of the credential `c`.
  static ledger::Event SubjectEvent(const Credential& c, std::string type) {
    const core::SvidAttributes& a = *c.svid.attributes;
    return ledger::Event{.id = ledger::NewEventId(),
                         .time_ms = absl::ToUnixMillis(absl::Now()),
                         .type = std::move(type),
                         .instance = c.svid.spiffe_id.str(),
                         .serial = c.svid.serial_hex,
                         .parent = a.parent ? a.parent->str() : "",
                         .principal = a.principal,
                         .policy_version = a.policy_version};
  }

  // Signs `event` with the credential's key and stores it in the ledger (mTLS).
  static void Record(const State& s, const Credential& c, const ledger::Event& event) {
    Check(ledger::ValidateEvent(event));
    const std::vector<std::string> bytes = {ledger::EncodeEvent(event)};
    const tw::base::Bytes signature = Check(ledger::SignBatch(*c.key, bytes));
    json body{{"events", {tw::base::Base64UrlEncode(bytes[0])}},
              {"signature", tw::base::Base64UrlEncode(tw::base::AsChars(signature))}};
    auto client = s.Client(c);
    Post(*client, "/v1/ledger/events", body);
  }
};

AgentIdentity::AgentIdentity(std::shared_ptr<State> state) : state_(std::move(state)) {}
AgentIdentity::AgentIdentity(AgentIdentity&&) noexcept = default;

AgentIdentity& AgentIdentity::operator=(AgentIdentity&& other) noexcept {
  if (this != &other) {
    AgentIdentity old(std::move(*this));
    state_ = std::move(other.state_);
  }
  return *this;
}

AgentIdentity::~AgentIdentity() {
  if (state_ == nullptr) return;
  bool revoke;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    revoke = !state_->closed && !state_->detached && !state_->revoked;
  }
  if (revoke) {
    try {
      close();
    } catch (...) {
      // Destruction cannot report it; the certificate still expires on its own.
    }
  }
  state_->StopRenewal();
}

AgentIdentity AgentIdentity::create(const IdentityOptions& options) {
  auto state = std::make_shared<State>();
  auto key = Check(crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
  json body{
      {"name", options.name},
      {"scope", options.scope},
      {"csr", core::PemEncode("CERTIFICATE REQUEST", Check(core::BuildCertificateRequest(*key)))}};
  if (!options.ttl.empty()) body["ttl"] = options.ttl;
  if (!options.trust_level.empty()) body["trust_level"] = options.trust_level;
  json reply;
  if (options.parent != nullptr) {
    const State& parent = *options.parent->state_;
    // A child cannot outlive its parent: a longer TTL is cut to what the parent has left.
    const absl::Duration left =
        absl::Trunc(parent.Current().svid.not_after - absl::Now(), absl::Seconds(1)) -
        absl::Seconds(1);
    const absl::Duration ttl =
        Check(core::ParseDuration(options.ttl.empty() ? "30m" : options.ttl));
    if (ttl > left) body["ttl"] = absl::StrCat(absl::ToInt64Seconds(left), "s");
    state->endpoint = parent.endpoint;
    auto client = parent.Client(parent.Current());
    reply = Post(*client, "/v1/identities", body);
  } else {
    state->endpoint = Resolve(options.connection);
    if (state->endpoint.token.empty()) {
      throw Error("unauthenticated",
                  "no principal token: set Connection.token or TRUSTWARDEN_TOKEN");
    }
    auto client = Check(net::HttpsClient::Create(
        {.server = state->endpoint.server, .ca_pem = state->endpoint.ca_pem}));
    reply = Post(*client, "/v1/identities", body, state->endpoint.token);
  }
  state->Adopt(reply, std::move(key));
  state->renewer = std::thread([s = state.get()] { s->RenewLoop(); });
  return AgentIdentity(std::move(state));
}

AgentIdentity AgentIdentity::spawn(IdentityOptions options) const {
  options.parent = this;
  return create(options);
}

std::string AgentIdentity::spiffe_id() const { return state_->Current().svid.spiffe_id.str(); }

std::string AgentIdentity::instance_id() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->instance_id;
}

std::string AgentIdentity::svid_pem() const { return state_->Current().svid_pem; }

std::vector<std::string> AgentIdentity::scopes() const {
  const State::Credential c = state_->Current();
  std::vector<std::string> out;
  for (const core::Scope& s : c.svid.attributes->scopes) out.push_back(s.str());
  return out;
}

std::string AgentIdentity::trust_level() const {
  return std::string(core::TrustLevelName(state_->Current().svid.attributes->trust_level));
}

std::chrono::system_clock::time_point AgentIdentity::expires_at() const {
  return absl::ToChronoTime(state_->Current().svid.not_after);
}

bool AgentIdentity::revoked() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->revoked || state_->closed;
}

std::string AgentIdentity::jwt(const std::string& audience) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->jwts.find(audience);
    if (it != state_->jwts.end() && it->second.second - kJwtMargin > absl::Now()) {
      return it->second.first;
    }
  }
  auto client = state_->Client(state_->Current());
  json reply = Post(*client, "/v1/jwt-svids", json{{"audience", {audience}}});
  const std::string token = reply.value("token", "");
  absl::Time expires;
  std::string err;
  if (token.empty() ||
      !absl::ParseTime(absl::RFC3339_full, reply.value("expires_at", ""), &expires, &err)) {
    throw Error("unavailable", "server: the JWT-SVID reply lacks token or expires_at");
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->jwts[audience] = {token, expires};
  return token;
}

CallResult AgentIdentity::call(const std::string& resource, const std::string& action,
                               const std::string& payload, const CallOptions& options) {
  const core::Scope requested = Check(core::Scope::Parse(action));
  const size_t colon = resource.find(':');
  if (colon == std::string::npos || colon == 0) {
    throw Error("invalid_argument", absl::StrCat("resource \"", resource, "\" is not a URI"));
  }
  const std::string scheme = absl::AsciiStrToLower(resource.substr(0, colon));
  Connector connector;
  {
    std::lock_guard<std::mutex> lock(connectors_mu);
    auto it = Connectors().find(scheme);
    if (it != Connectors().end()) connector = it->second;
  }
  if (!connector) {
    throw Error("failed_precondition",
                absl::StrCat("no connector for \"", scheme, ":\" resources"));
  }

  State::Credential c = state_->Current();
  ledger::Event event = State::SubjectEvent(c, "action");
  event.resource = resource;
  event.action = action;
  if (!options.input.empty()) event.input_digest = ledger::DigestOf(options.input);
  if (!payload.empty()) event.payload_digest = ledger::DigestOf(payload);
  std::string refusal;
  bool recordable = true;  // a revoked or expired instance cannot write to the ledger
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->closed) {
      refusal = "the identity was closed";
      recordable = false;
    } else if (state_->revoked) {
      refusal = "the identity is revoked";
      recordable = false;
    }
  }
  if (refusal.empty() && absl::Now() >= c.svid.not_after) {
    refusal = "the identity has expired";
    recordable = false;
  }
  if (refusal.empty() && !core::ScopesAllow(c.svid.attributes->scopes, requested)) {
    refusal = absl::StrCat("scope ", action, " is not granted to ", c.svid.spiffe_id.str());
  }
  if (!refusal.empty()) {
    event.decision = "deny";
    event.reason = refusal;
    std::string recorded;
    if (recordable) {
      State::Record(*state_, c, event);
      recorded = event.id;
    }
    throw Denied(refusal, recorded);
  }
  event.decision = "allow";
  State::Record(*state_, c, event);

  ledger::Event outcome = State::SubjectEvent(c, "outcome");
  outcome.ref = event.id;
  CallResult result{event.id, {}};
  try {
    result.response = connector(*this, CallRequest{resource, action, payload});
  } catch (const std::exception& e) {
    outcome.outcome = "error";
    outcome.reason = e.what();
    State::Record(*state_, c, outcome);
    throw;
  }
  outcome.outcome = "ok";
  outcome.payload_digest = result.response.empty() ? "" : ledger::DigestOf(result.response);
  State::Record(*state_, c, outcome);
  return result;
}

void AgentIdentity::close() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->closed || state_->detached) return;
  }
  state_->StopRenewal();
  auto client = state_->Client(state_->Current());
  Post(*client, "/v1/revocations",
       json{{"subtree", instance_id()}, {"reason", "closed by the agent"}});
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->closed = true;
  state_->revoked = true;
}

void AgentIdentity::detach() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->detached = true;
  }
  state_->StopRenewal();
}

void AgentIdentity::register_connector(const std::string& scheme, Connector connector) {
  std::lock_guard<std::mutex> lock(connectors_mu);
  Connectors()[absl::AsciiStrToLower(scheme)] = std::move(connector);
}

}  // namespace trustwarden
