#include "trustwarden/agent_identity.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/bytes.h"
#include "base/file.h"
#include "core/certificate.h"
#include "core/csr.h"
#include "core/scope.h"
#include "core/x509_issuer.h"
#include "ledger/entry.h"
#include "sdk/http_connector.h"
#include "sdk/identity_state.h"

namespace trustwarden {
namespace internal {

using nlohmann::json;
namespace core = tw::core;

void Throw(const absl::Status& s) {
  throw Error(absl::AsciiStrToLower(absl::StatusCodeToString(s.code())), std::string(s.message()));
}

namespace {

std::string Env(const std::string& value, const char* name, const char* fallback) {
  if (!value.empty()) return value;
  const char* env = std::getenv(name);
  return env != nullptr && *env != '\0' ? env : fallback;
}

}  // namespace

Endpoint Resolve(const Connection& c, bool watch) {
  Endpoint e;
  e.server = Env(c.server, "TRUSTWARDEN_SERVER", "https://127.0.0.1:8443");
  e.token = Env(c.token, "TRUSTWARDEN_TOKEN", "");
  e.spool_dir = Env(c.spool_dir, "TRUSTWARDEN_SPOOL", "./trustwarden-spool");
  e.max_staleness = absl::FromChrono(c.max_staleness);
  const std::string path = Env(c.bundle, "TRUSTWARDEN_BUNDLE", "./trustwarden-data/bundle.json");
  core::Bundle bundle = Check(core::Bundle::Parse(Check(tw::base::ReadFile(path))));
  if (bundle.x509_authorities().empty()) {
    throw Error("invalid_argument", absl::StrCat(path, " has no X.509 authority"));
  }
  e.ca_pem = bundle.ToPem();
  e.trust_domains.push_back(bundle.trust_domain());
  e.bundles = std::make_shared<core::BundleSet>();
  e.bundles->Put(std::move(bundle));
  if (watch) e.watcher = RevocationWatcher::Shared(e.server, e.ca_pem);
  return e;
}

json Post(tw::net::HttpsClient& client, const std::string& target, const std::string& body,
          const std::string& token) {
  tw::net::Headers headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  tw::net::Response r = Check(client.Request("POST", target, body, headers));
  json reply = json::parse(r.body, nullptr, false);
  if (r.status >= 200 && r.status < 300 && reply.is_object()) return reply;
  if (reply.is_object() && reply.contains("error") && reply["error"].is_object()) {
    throw Error(reply["error"].value("code", "unknown"),
                absl::StrCat("server: ", reply["error"].value("message", "")));
  }
  throw Error("unavailable", absl::StrCat("server: HTTP ", r.status));
}

std::string InstanceOf(const core::SpiffeId& id) {
  return id.segments().empty() ? "" : std::string(id.segments().back());
}

}  // namespace internal

namespace {

using internal::Check;
using nlohmann::json;
namespace core = tw::core;
namespace crypto = tw::crypto;
namespace ledger = tw::ledger;
namespace net = tw::net;

// JWT-SVIDs are reused until this long before they expire.
constexpr absl::Duration kJwtMargin = absl::Minutes(1);
constexpr absl::Duration kMaxBackoff = absl::Seconds(30);
// A spool with records is offered to the server this often.
constexpr absl::Duration kShipInterval = absl::Seconds(1);

// Process-wide registries: connectors by URI scheme, and trust-level rules.
struct Registry {
  std::mutex mu;
  std::map<std::string, Connector> connectors = {{"http", internal::HttpConnector},
                                                 {"https", internal::HttpConnector}};
  std::vector<std::pair<core::Scope, core::TrustLevel>> trust_rules;
};
Registry& Registered() {
  static auto* registry = new Registry();
  return *registry;
}

// Kept-alive server connections without a client certificate (creation with a token),
// reused across create() calls: a TLS handshake per identity would double its cost.
class ConnectionPool {
 public:
  std::unique_ptr<net::HttpsClient> Take(const internal::Endpoint& e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& idle = idle_[{e.server, e.ca_pem}];
      if (!idle.empty()) {
        auto client = std::move(idle.back());
        idle.pop_back();
        return client;
      }
    }
    return Check(net::HttpsClient::Create({.server = e.server, .ca_pem = e.ca_pem}));
  }
  void Give(const internal::Endpoint& e, std::unique_ptr<net::HttpsClient> client) {
    constexpr size_t kMaxIdle = 8;
    std::lock_guard<std::mutex> lock(mu_);
    auto& idle = idle_[{e.server, e.ca_pem}];
    if (idle.size() < kMaxIdle) idle.push_back(std::move(client));
  }

 private:
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::vector<std::unique_ptr<net::HttpsClient>>>
      idle_;
};
ConnectionPool& Pool() {
  static auto* pool = new ConnectionPool();
  return *pool;
}

// The server no longer accepts the instance (revoked, or its certificate refused).
bool Refused(const std::string& code) {
  return code == "permission_denied" || code == "unauthenticated";
}

bool Transient(const Error& e) {
  return e.code() == "unavailable" || e.code() == "deadline_exceeded";
}

}  // namespace

using State = AgentIdentity::State;

State::Credential State::Current() const {
  std::lock_guard<std::mutex> lock(mu);
  return {key, svid_pem, *svid};
}

std::unique_ptr<net::HttpsClient> State::Client(const Credential& c) const {
  return Check(net::HttpsClient::Create({.server = endpoint.server,
                                         .ca_pem = endpoint.ca_pem,
                                         .client_chain_pem = c.svid_pem,
                                         .client_key = c.key}));
}

bool State::IsRevoked() const {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (revoked || closed) return true;
    id = instance_id;
  }
  return endpoint.watcher->IsRevoked(id);
}

// Checks an issued SVID (chain to the bundle, our key, the expected SPIFFE ID) and makes
// it current together with `new_key`.
void State::Adopt(const json& reply, std::unique_ptr<crypto::SoftwareSigner> new_key) {
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
  instance_id = reply.value("instance_id", internal::InstanceOf(verified.spiffe_id));
  issued_at = absl::Now();
  svid = std::move(verified);
  svid_pem = pem;
  key = std::move(new_key);
  jwts.clear();
}

// A new key, a CSR for it, and the server's certificate over mTLS with the current one.
// The key asked for is kept until a renewal succeeds: a retry after a lost reply must ask
// for the same one, or the server takes the old certificate for a stolen copy.
void State::Renew() {
  if (renewal_key == nullptr) {
    renewal_key = Check(crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
  }
  const std::string csr =
      core::PemEncode("CERTIFICATE REQUEST", Check(core::BuildCertificateRequest(*renewal_key)));
  auto client = Client(Current());
  const json reply = internal::Post(*client, "/v1/identities/renew", json{{"csr", csr}}.dump());
  Adopt(reply, std::move(renewal_key));
}

// Renews at half-life (with up to 10% jitter); retries failures with backoff until the
// certificate expires; stops on revocation, close or destruction. Offers spooled ledger
// records to the server every second meanwhile.
void State::RenewLoop() {
  ShipSpool();  // also what a crashed process left behind
  std::mt19937_64 rng(std::random_device{}());
  absl::Duration backoff = absl::Seconds(1);
  std::unique_lock<std::mutex> lock(mu);
  absl::Time due = RenewalTime(rng);
  while (!stopping && !revoked) {
    const absl::Time wake = spool_pending ? std::min(due, absl::Now() + kShipInterval) : due;
    if (cv.wait_for(lock, absl::ToChronoMilliseconds(std::max(wake - absl::Now(), {})),
                    [this] { return stopping || spool_kick; })) {
      if (stopping) return;
      spool_kick = false;
      continue;  // wake again in kShipInterval
    }
    if (spool_pending) {
      lock.unlock();
      ShipSpool();
      lock.lock();
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
    } else if (Refused(failure)) {
      revoked = true;  // the server no longer accepts this instance
    } else {
      due = std::min(absl::Now() + backoff, svid->not_after);
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }
}

absl::Time State::RenewalTime(std::mt19937_64& rng) const {
  const absl::Duration life = svid->not_after - issued_at;
  const double jitter = std::uniform_real_distribution<double>(-0.05, 0.05)(rng);
  return issued_at + life * (0.5 + jitter);
}

void State::StopRenewal() {
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  if (renewer.joinable() && renewer.get_id() != std::this_thread::get_id()) renewer.join();
}

ledger::Event State::SubjectEvent(const Credential& c, std::string type) {
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

// Group commit: the caller that finds the batch leader's lock free signs and sends every
// queued event of its credential as one batch; the others find theirs done.
void State::Record(const Credential& c, const ledger::Event& event) {
  Check(ledger::ValidateEvent(event));
  Pending mine{.bytes = ledger::EncodeEvent(event), .credential = &c};
  {
    std::lock_guard<std::mutex> lock(queue_mu);
    queue.push_back(&mine);
  }
  std::lock_guard<std::mutex> leader(ship_mu);
  for (;;) {
    // The oldest events signed by one credential (a renewal may sit between two batches).
    std::vector<Pending*> batch;
    {
      std::lock_guard<std::mutex> lock(queue_mu);
      if (mine.done) break;
      const std::string& serial = queue.front()->credential->svid.serial_hex;
      while (!queue.empty() && batch.size() < ledger::kMaxBatch &&
             queue.front()->credential->svid.serial_hex == serial) {
        batch.push_back(queue.front());
        queue.pop_front();
      }
    }
    ShipBatch(*batch.front()->credential, batch);
  }
  if (!mine.error_code.empty()) throw Error(mine.error_code, mine.error_message);
}

void State::ShipBatch(const Credential& c, const std::vector<Pending*>& batch) {
  std::vector<std::string> bytes;
  for (const Pending* p : batch) bytes.push_back(p->bytes);
  std::string code, message;
  try {
    const tw::base::Bytes signature = Check(ledger::SignBatch(*c.key, bytes));
    json body{{"signature", tw::base::Base64UrlEncode(tw::base::AsChars(signature))}};
    for (const std::string& b : bytes) body["events"].push_back(tw::base::Base64UrlEncode(b));
    const std::string direct = body.dump();
    body["chain"] = c.svid_pem;  // a spooled batch names its signer
    Send(c, direct, body.dump());
  } catch (const Error& e) {
    code = e.code();
    message = e.what();
  }
  std::lock_guard<std::mutex> lock(queue_mu);
  for (Pending* p : batch) {
    p->done = true;
    p->error_code = code;
    p->error_message = message;
  }
}

// To the server when nothing waits in the spool; to the spool when the server cannot be
// reached. Called with ship_mu held.
void State::Send(const Credential& c, const std::string& body, const std::string& record) {
  if (spool != nullptr && !spool->empty()) Deliver(*spool, c);
  if (spool == nullptr || spool->empty()) {
    try {
      internal::Post(LedgerClient(c), "/v1/ledger/events", body);
      return;
    } catch (const Error& e) {
      ledger_client.reset();
      if (!Transient(e)) throw;
    }
  }
  if (spool == nullptr) {
    std::string name;
    {
      std::lock_guard<std::mutex> lock(mu);
      name = instance_id;
    }
    auto opened = internal::Spool::Open(endpoint.spool_dir, name);
    if (!opened.ok()) {
      throw Error("unavailable", absl::StrCat("cannot record: the server is unreachable and ",
                                              opened.status().message()));
    }
    spool = *std::move(opened);
  }
  if (absl::Status s = spool->Append(record); !s.ok()) {
    throw Error("unavailable",
                absl::StrCat("cannot record: the server is unreachable and ", s.message()));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    spool_pending = spool_kick = true;
  }
  cv.notify_all();
}

net::HttpsClient& State::LedgerClient(const Credential& c) {
  if (ledger_client == nullptr || ledger_client_serial != c.svid.serial_hex) {
    ledger_client = Client(c);
    ledger_client_serial = c.svid.serial_hex;
  }
  return *ledger_client;
}

bool State::RecordUnlessRefused(const Credential& c, const ledger::Event& event) {
  try {
    Record(c, event);
    return true;
  } catch (const Error& e) {
    if (!Refused(e.code())) throw;
  }
  std::lock_guard<std::mutex> lock(mu);
  revoked = true;
  return false;
}

// Sends `spool`'s records in order until one fails to go through; drops those delivered
// (or found delivered already). Returns how many were delivered.
size_t State::Deliver(internal::Spool& from, const Credential& c) {
  auto records = from.Records();
  if (!records.ok()) return 0;
  size_t sent = 0;
  try {
    net::HttpsClient& client = LedgerClient(c);
    for (const std::string& record : *records) {
      try {
        internal::Post(client, "/v1/ledger/events", record);
      } catch (const Error& e) {
        if (e.code() != "already_exists") throw;
      }
      ++sent;
    }
  } catch (const Error&) {
    ledger_client.reset();
  }
  if (sent > 0 && !from.Drop(sent).ok()) return 0;
  return sent;
}

void State::ShipSpool() {
  const Credential c = Current();
  std::lock_guard<std::mutex> leader(ship_mu);
  if (spool != nullptr && !spool->empty()) Deliver(*spool, c);
  for (auto& orphan : internal::Spool::Orphans(endpoint.spool_dir)) Deliver(*orphan, c);
  std::lock_guard<std::mutex> lock(mu);
  spool_pending = spool != nullptr && !spool->empty();
}

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
    reply = internal::Post(*client, "/v1/identities", body.dump());
  } else {
    state->endpoint = internal::Resolve(options.connection);
    if (state->endpoint.token.empty()) {
      throw Error("unauthenticated",
                  "no principal token: set Connection.token or TRUSTWARDEN_TOKEN");
    }
    auto client = Pool().Take(state->endpoint);
    reply = internal::Post(*client, "/v1/identities", body.dump(), state->endpoint.token);
    Pool().Give(state->endpoint, std::move(client));
  }
  state->Adopt(reply, std::move(key));
  // The first identity of a process waits for the revocation stream to be live, so its
  // first call is not refused as stale.
  state->endpoint.watcher->WaitLive(state->endpoint.max_staleness);
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

bool AgentIdentity::revoked() const { return state_->IsRevoked(); }

std::string AgentIdentity::jwt(const std::string& audience) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->jwts.find(audience);
    if (it != state_->jwts.end() && it->second.second - kJwtMargin > absl::Now()) {
      return it->second.first;
    }
  }
  auto client = state_->Client(state_->Current());
  json reply = internal::Post(*client, "/v1/jwt-svids", json{{"audience", {audience}}}.dump());
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
  std::optional<core::TrustLevel> needed;
  if (!options.min_trust_level.empty()) {
    needed = Check(core::ParseTrustLevel(options.min_trust_level));
  }
  const std::string scheme = absl::AsciiStrToLower(resource.substr(0, colon));
  Connector connector;
  {
    Registry& r = Registered();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.connectors.find(scheme);
    if (it != r.connectors.end()) connector = it->second;
    for (const auto& [scope, level] : r.trust_rules) {
      if (core::ScopesAllow({scope}, requested) && (!needed || *needed < level)) needed = level;
    }
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
    if (state_->closed) refusal = "the identity was closed";
  }
  if (refusal.empty() && state_->IsRevoked()) refusal = "the identity is revoked";
  if (refusal.empty() && absl::Now() >= c.svid.not_after) refusal = "the identity has expired";
  if (!refusal.empty()) recordable = false;
  if (absl::Status fresh = state_->endpoint.watcher->CheckFresh(state_->endpoint.max_staleness);
      refusal.empty() && !fresh.ok()) {
    refusal = absl::StrCat("fail closed: ", fresh.message());
  }
  const core::SvidAttributes& granted = *c.svid.attributes;
  if (refusal.empty() && !core::ScopesAllow(granted.scopes, requested)) {
    refusal = absl::StrCat("scope ", action, " is not granted to ", c.svid.spiffe_id.str());
  }
  if (refusal.empty() && needed && granted.trust_level < *needed) {
    refusal =
        absl::StrCat(action, " needs trust level ", core::TrustLevelName(*needed), "; ",
                     c.svid.spiffe_id.str(), " has ", core::TrustLevelName(granted.trust_level));
  }
  if (!refusal.empty()) {
    event.decision = "deny";
    event.reason = refusal;
    std::string recorded;
    if (recordable) {
      try {
        state_->Record(c, event);
        recorded = event.id;
      } catch (const Error&) {
        // Refused either way; the denial could not be recorded.
      }
    }
    throw Denied(refusal, recorded);
  }
  event.decision = "allow";
  // Revoked between the local check and the record: the server refuses the writer.
  if (!state_->RecordUnlessRefused(c, event)) {
    throw Denied("the identity is revoked (the server refused its ledger event)", "");
  }

  ledger::Event outcome = State::SubjectEvent(c, "outcome");
  outcome.ref = event.id;
  // The action happened: a revocation landing meanwhile makes the server refuse the
  // outcome event, which must not turn a performed call into a failed one.
  auto record_outcome = [&] { state_->RecordUnlessRefused(c, outcome); };
  CallResult result{event.id, {}};
  try {
    result.response =
        connector(*this, CallRequest{resource, action, payload, options.server_spiffe_id});
  } catch (const std::exception& e) {
    outcome.outcome = "error";
    outcome.reason = e.what();
    record_outcome();
    throw;
  }
  outcome.outcome = "ok";
  outcome.payload_digest = result.response.empty() ? "" : ledger::DigestOf(result.response);
  record_outcome();
  return result;
}

void AgentIdentity::close() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->closed || state_->detached) return;
  }
  state_->StopRenewal();
  state_->ShipSpool();  // before the credential stops working
  if (!state_->IsRevoked()) {
    try {
      auto client = state_->Client(state_->Current());
      internal::Post(*client, "/v1/revocations",
                     json{{"subtree", instance_id()}, {"reason", "closed by the agent"}}.dump());
    } catch (const Error& e) {
      // Refused: the server revoked it already (an operator was first), so there is
      // nothing left to do.
      if (!Refused(e.code())) throw;
    }
  }
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
  Registry& r = Registered();
  std::lock_guard<std::mutex> lock(r.mu);
  r.connectors[absl::AsciiStrToLower(scheme)] = std::move(connector);
}

void AgentIdentity::trust_origin(const std::string& origin, const std::string& server_spiffe_id) {
  internal::TrustOrigin(origin, server_spiffe_id);
}

void AgentIdentity::allow_plain_http(const std::string& origin) {
  internal::AllowPlainHttp(origin);
}

void AgentIdentity::require_trust_level(const std::string& scope,
                                        const std::string& min_trust_level) {
  const core::Scope parsed = Check(core::Scope::Parse(scope));
  const core::TrustLevel level = Check(core::ParseTrustLevel(min_trust_level));
  Registry& r = Registered();
  std::lock_guard<std::mutex> lock(r.mu);
  r.trust_rules.emplace_back(parsed, level);
}

int64_t revoke(const RevokeRequest& request, const Connection& connection) {
  const internal::Endpoint e = internal::Resolve(connection, /*watch=*/false);
  json body = json::object();
  if (!request.instance.empty()) body["instance"] = request.instance;
  if (!request.agent.empty()) body["agent"] = request.agent;
  if (!request.subtree.empty()) body["subtree"] = request.subtree;
  if (!request.principal.empty()) body["principal"] = request.principal;
  if (body.size() != 1) {
    throw Error("invalid_argument", "revoke exactly one of instance, agent, subtree or principal");
  }
  if (!request.reason.empty()) body["reason"] = request.reason;
  auto client = Check(net::HttpsClient::Create({.server = e.server, .ca_pem = e.ca_pem}));
  json reply = internal::Post(*client, "/v1/revocations", body.dump(), e.token);
  if (!reply.contains("sequence") || !reply["sequence"].is_number_integer()) {
    throw Error("unavailable", "server: the revocation reply lacks its sequence");
  }
  return reply["sequence"].get<int64_t>();
}

}  // namespace trustwarden
