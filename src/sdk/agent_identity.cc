// AgentIdentity and revoke(): the SDK's public boundary, where a failed internal status
// becomes the Error thrown. Thread-safe as agent_identity.h says.
#include "trustwarden/agent_identity.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "core/agent_name.h"
#include "core/certificate.h"
#include "core/scope.h"
#include "core/x509_issuer.h"
#include "ledger/event.h"
#include "sdk/connector_registry.h"
#include "sdk/endpoint.h"
#include "sdk/http_connector.h"
#include "sdk/identity_state.h"
#include "sdk/status_error.h"

namespace trustwarden {
namespace internal {

using nlohmann::json;
namespace core = tw::core;

namespace {

// The name the server is asked for: a bare agent name goes under its parent's org and team,
// or TRUSTWARDEN_ORG / TRUSTWARDEN_TEAM.
std::string RequestedName(const IdentityOptions& options) {
  if (options.parent != nullptr) {
    const absl::StatusOr<core::AgentInstance> parent =
        core::ParseAgentSpiffeId(Access::Of(*options.parent)->Current().svid.spiffe_id);
    if (parent.ok()) {
      return core::QualifyAgentName(options.name, parent->name.org, parent->name.team);
    }
  }
  return core::QualifyAgentName(options.name, Env("", "TRUSTWARDEN_ORG", core::kDefaultOrg),
                                Env("", "TRUSTWARDEN_TEAM", core::kDefaultTeam));
}

}  // namespace

absl::StatusOr<AgentIdentity> CreateIdentity(const IdentityOptions& options, const Clocks& clocks) {
  TW_ASSIGN_OR_RETURN(std::unique_ptr<tw::crypto::SoftwareSigner> key,
                      tw::crypto::SoftwareSigner::Generate(tw::crypto::KeyType::kEcP256));
  TW_ASSIGN_OR_RETURN(const tw::base::Bytes csr, core::BuildCertificateRequest(*key));
  json body{{"name", RequestedName(options)},
            {"scope", options.scope},
            {"csr", core::PemEncode("CERTIFICATE REQUEST", csr)}};
  if (!options.ttl.empty()) body["ttl"] = options.ttl;
  if (!options.trust_level.empty()) body["trust_level"] = options.trust_level;
  Endpoint endpoint;
  Clocks runs_on = clocks;
  json reply;
  if (options.parent != nullptr) {
    const AgentIdentity::State& parent = *Access::Of(*options.parent);
    const Credential credential = parent.Current();
    // A child cannot outlive its parent: a longer TTL is cut to what the parent has left.
    const absl::Duration left =
        absl::Trunc(credential.svid.not_after - parent.clock.Now(), absl::Seconds(1)) -
        absl::Seconds(1);
    TW_ASSIGN_OR_RETURN(const absl::Duration ttl,
                        core::ParseDuration(options.ttl.empty() ? "30m" : options.ttl));
    if (ttl > left) body["ttl"] = absl::StrCat(absl::ToInt64Seconds(left), "s");
    endpoint = parent.endpoint;
    runs_on = parent.clocks;
    TW_ASSIGN_OR_RETURN(auto client, Connect(endpoint, &credential));
    TW_ASSIGN_OR_RETURN(reply, Post(*client, "/v1/identities", body));
  } else {
    TW_ASSIGN_OR_RETURN(endpoint, ResolveWatched(options.connection, *clocks.stream));
    if (endpoint.token.empty()) {
      return absl::UnauthenticatedError(
          "no principal token: set Connection.token or TRUSTWARDEN_TOKEN");
    }
    ConnectionPool& pool = ConnectionPool::Process();
    TW_ASSIGN_OR_RETURN(auto client, pool.Take(endpoint));
    TW_ASSIGN_OR_RETURN(reply, Post(*client, "/v1/identities", body, endpoint.token));
    pool.Give(endpoint, std::move(client));
  }
  TW_ASSIGN_OR_RETURN(Issued issued, AcceptIssued(endpoint, reply, *key, *runs_on.identity));
  issued.credential.key = std::move(key);
  auto state =
      std::make_shared<AgentIdentity::State>(std::move(endpoint), runs_on, std::move(issued));
  // The first identity of a process waits for the revocation stream to be live, so its
  // first call is not refused as stale.
  state->endpoint.watcher->WaitLive(state->endpoint.max_staleness);
  state->renewer.Start();
  return Access::Wrap(std::move(state));
}

namespace {

// What call() decided before acting.
struct Admission {
  enum class Kind { kDenied, kRevoked, kExpired };
  std::string refusal;  // why it is denied; empty when allowed
  Kind kind = Kind::kDenied;
  std::string recorded;  // the ledger event of a denial, when it could be recorded
  Connector connector;
  Credential credential;  // that of the recorded "allow" event
  tw::ledger::Event event;
};

// Checks a call and records the decision: denied when the identity is closed, revoked or
// expired, the stream is stale, or a scope or trust level is missing; otherwise allowed
// once its "allow" event is recorded. InvalidArgument for a malformed call,
// FailedPrecondition without a connector, the recorder's error when the allow event
// cannot be recorded.
absl::StatusOr<Admission> Admit(AgentIdentity::State& state, const std::string& resource,
                                const std::string& action, const std::string& payload,
                                const CallOptions& options) {
  TW_ASSIGN_OR_RETURN(const core::Scope requested, core::Scope::Parse(action));
  const size_t colon = resource.find(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("resource \"", resource, "\" is not a URI"));
  }
  std::optional<core::TrustLevel> needed;
  if (!options.min_trust_level.empty()) {
    TW_ASSIGN_OR_RETURN(needed, core::ParseTrustLevel(options.min_trust_level));
  }
  const std::string scheme = absl::AsciiStrToLower(resource.substr(0, colon));
  ConnectorRegistry::Route route = ConnectorRegistry::Process().Find(scheme, requested, needed);
  if (!route.connector) {
    return absl::FailedPreconditionError(
        absl::StrCat("no connector for \"", scheme, ":\" resources"));
  }
  needed = route.needed;

  Admission a{.connector = std::move(route.connector), .credential = state.Current()};
  const Credential& c = a.credential;
  a.event = SubjectEvent(c, "action", state.clock.Now());
  a.event.resource = resource;
  a.event.action = action;
  if (!options.input.empty()) a.event.input_digest = tw::ledger::DigestOf(options.input);
  if (!payload.empty()) a.event.payload_digest = tw::ledger::DigestOf(payload);
  std::string& refusal = a.refusal;
  if (state.closed()) refusal = "the identity was closed";
  if (refusal.empty() && state.IsRevoked()) refusal = "the identity is revoked";
  if (!refusal.empty()) a.kind = Admission::Kind::kRevoked;
  if (refusal.empty() && state.clock.Now() >= c.svid.not_after) {
    refusal = "the identity has expired";
    a.kind = Admission::Kind::kExpired;
  }
  const bool recordable = refusal.empty();  // a revoked or expired instance cannot write
  if (absl::Status fresh = state.endpoint.watcher->CheckFresh(state.endpoint.max_staleness);
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
    a.event.decision = "deny";
    a.event.reason = refusal;
    // Refused either way; a denial that cannot be recorded is refused unrecorded.
    if (recordable && state.recorder.Record(c, a.event).ok()) a.recorded = a.event.id;
    return a;
  }
  a.event.decision = "allow";
  // Revoked between the local check and the record: the server refuses the writer.
  TW_ASSIGN_OR_RETURN(const bool recorded, state.RecordUnlessRefused(c, a.event));
  if (!recorded) {
    a.refusal = "the identity is revoked (the server refused its ledger event)";
    a.kind = Admission::Kind::kRevoked;
  }
  return a;
}

// The revocation request of `request`. InvalidArgument unless it names exactly one target.
absl::StatusOr<json> RevocationBody(const RevokeRequest& request) {
  json body = json::object();
  if (!request.instance.empty()) body["instance"] = request.instance;
  if (!request.agent.empty()) body["agent"] = request.agent;
  if (!request.subtree.empty()) body["subtree"] = request.subtree;
  if (!request.principal.empty()) body["principal"] = request.principal;
  if (body.size() != 1) {
    return absl::InvalidArgumentError(
        "revoke exactly one of instance, agent, subtree or principal");
  }
  if (!request.reason.empty()) body["reason"] = request.reason;
  return body;
}

absl::StatusOr<int64_t> Revoke(const RevokeRequest& request, const Connection& connection) {
  TW_ASSIGN_OR_RETURN(const Endpoint e, Resolve(connection));
  TW_ASSIGN_OR_RETURN(const json body, RevocationBody(request));
  TW_ASSIGN_OR_RETURN(auto client, Connect(e, nullptr));
  TW_ASSIGN_OR_RETURN(const json reply, Post(*client, "/v1/revocations", body, e.token));
  if (!reply.contains("sequence") || !reply["sequence"].is_number_integer()) {
    return absl::UnavailableError("server: the revocation reply lacks its sequence");
  }
  return reply["sequence"].get<int64_t>();
}

// Revokes the instance of `state` and its subtree with its own credential; done already
// when the server refuses it (an operator was first).
absl::Status RevokeSelf(const AgentIdentity::State& state) {
  const Credential c = state.Current();
  TW_ASSIGN_OR_RETURN(auto client, Connect(state.endpoint, &c));
  absl::Status revoked =
      Post(*client, "/v1/revocations",
           json{{"subtree", state.instance_id}, {"reason", "closed by the agent"}})
          .status();
  return IsRefusal(revoked) ? absl::OkStatus() : revoked;
}

}  // namespace
}  // namespace internal

using internal::ThrowIfError;
using internal::ValueOrThrow;
namespace core = tw::core;

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
  if (!state_->ended() && !state_->marked_revoked()) {
    try {
      close();
    } catch (...) {
      // Destruction cannot report it; the certificate still expires on its own.
    }
  }
  state_->renewer.Stop();
}

AgentIdentity AgentIdentity::create(const IdentityOptions& options) {
  return ValueOrThrow(internal::CreateIdentity(options, {}));
}

AgentIdentity AgentIdentity::spawn(IdentityOptions options) const {
  options.parent = this;
  return create(options);
}

std::string AgentIdentity::spiffe_id() const { return state_->Current().svid.spiffe_id.str(); }

std::string AgentIdentity::instance_id() const { return state_->instance_id; }

std::string AgentIdentity::svid_pem() const { return state_->Current().svid_pem; }

std::string AgentIdentity::bundle_pem() const { return CaPem(state_->endpoint); }

std::vector<std::string> AgentIdentity::scopes() const {
  const internal::Credential c = state_->Current();
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
  return ValueOrThrow(state_->Jwt(audience));
}

CallResult AgentIdentity::call(const std::string& resource, const std::string& action,
                               const std::string& payload, const CallOptions& options) {
  const internal::Admission a =
      ValueOrThrow(internal::Admit(*state_, resource, action, payload, options));
  if (!a.refusal.empty()) {
    using Kind = internal::Admission::Kind;
    if (a.kind == Kind::kRevoked) throw Revoked(a.refusal, a.recorded);
    if (a.kind == Kind::kExpired) throw Expired(a.refusal, a.recorded);
    throw Denied(a.refusal, a.recorded);
  }

  tw::ledger::Event outcome = internal::SubjectEvent(a.credential, "outcome", state_->clock.Now());
  outcome.ref = a.event.id;
  // The action happened: a revocation landing meanwhile makes the server refuse the
  // outcome event, which must not turn a performed call into a failed one.
  auto record_outcome = [&] {
    ThrowIfError(state_->RecordUnlessRefused(a.credential, outcome).status());
  };
  CallResult result{a.event.id, {}};
  try {
    result.response =
        a.connector(*this, CallRequest{resource, action, payload, options.server_spiffe_id});
  } catch (const std::exception& e) {  // how a connector reports a failed outcome
    outcome.outcome = "error";
    outcome.reason = e.what();
    record_outcome();
    throw;
  }
  outcome.outcome = "ok";
  outcome.payload_digest = result.response.empty() ? "" : tw::ledger::DigestOf(result.response);
  record_outcome();
  return result;
}

void AgentIdentity::close() {
  if (state_->ended()) return;
  state_->renewer.Stop();
  state_->recorder.ShipSpool(state_->Current());  // before the credential stops working
  if (!state_->IsRevoked()) ThrowIfError(internal::RevokeSelf(*state_));
  state_->MarkClosed();
}

void AgentIdentity::detach() {
  state_->MarkDetached();
  state_->renewer.Stop();
}

void AgentIdentity::register_connector(const std::string& scheme, Connector connector) {
  internal::ConnectorRegistry::Process().Register(scheme, std::move(connector));
}

void AgentIdentity::trust_origin(const std::string& origin, const std::string& server_spiffe_id) {
  ThrowIfError(internal::TrustOrigin(origin, server_spiffe_id));
}

void AgentIdentity::allow_plain_http(const std::string& origin) {
  ThrowIfError(internal::AllowPlainHttp(origin));
}

void AgentIdentity::require_trust_level(const std::string& scope,
                                        const std::string& min_trust_level) {
  const core::Scope parsed = ValueOrThrow(core::Scope::Parse(scope));
  const core::TrustLevel level = ValueOrThrow(core::ParseTrustLevel(min_trust_level));
  internal::ConnectorRegistry::Process().Require({parsed, level});
}

int64_t revoke(const RevokeRequest& request, const Connection& connection) {
  return ValueOrThrow(internal::Revoke(request, connection));
}

}  // namespace trustwarden
