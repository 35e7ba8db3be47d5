// An agent instance's own identity: created with one call, renewed in the background,
// used for scope-checked, ledger-recorded calls, and revoked when the agent is done.
// The SDK's own threads end when the process exits; the application's threads must not
// be inside SDK calls then (join them first), as OpenSSL is torn down at exit.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trustwarden/connection.h"
#include "trustwarden/error.h"

namespace trustwarden {

class AgentIdentity;
namespace internal {
struct Access;
}

struct IdentityOptions {
  // org/team/agent; a bare agent name ("payment-processor") goes under the parent's org
  // and team, or else TRUSTWARDEN_ORG and TRUSTWARDEN_TEAM ("default" when unset).
  std::string name;
  std::vector<std::string> scope;         // granted scopes, "action:object"
  std::string ttl = "30m";                // lifetime, capped by policy; a child's is cut
                                          // to what its parent has left
  std::string trust_level;                // low, medium, high, critical; empty: low
  const AgentIdentity* parent = nullptr;  // delegation: the parent authenticates (mTLS)
  Connection connection;                  // ignored with a parent (the parent's is used)
};

struct CallOptions {
  std::string input;  // what triggered the call, e.g. the prompt; only its digest is recorded
  std::string min_trust_level;  // this call needs at least this trust level
  // The SPIFFE ID the resource's server must present (https: resources), overriding the
  // one named for its origin with AgentIdentity::trust_origin.
  std::string server_spiffe_id;
};

// What a connector is asked to do once the call is allowed and recorded.
struct CallRequest {
  std::string resource;  // URI; its scheme chose the connector
  std::string action;    // the scope exercised, "action:object"
  std::string payload;
  std::string server_spiffe_id;  // CallOptions::server_spiffe_id
};

struct CallResult {
  std::string event_id;  // the ledger event that recorded the decision
  std::string response;  // what the connector returned
};

// Performs an allowed call for one URI scheme; throws to report a failed outcome.
using Connector = std::function<std::string(AgentIdentity& agent, const CallRequest& request)>;

class AgentIdentity {
 public:
  // Generates a key pair in process (never written), has the server sign its CSR, and
  // starts renewal at half-life. Throws Error on refusal or when the server is unreachable.
  static AgentIdentity create(const IdentityOptions& options);
  // A child identity delegated by this one (options.parent is set to this).
  AgentIdentity spawn(IdentityOptions options) const;

  AgentIdentity(AgentIdentity&&) noexcept;
  AgentIdentity& operator=(AgentIdentity&&) noexcept;
  // Revokes the identity unless it was closed or detached (see close()).
  ~AgentIdentity();

  std::string spiffe_id() const;
  std::string instance_id() const;
  std::string svid_pem() const;    // the current certificate chain, leaf first
  std::string bundle_pem() const;  // the trust bundle peers are verified against
  std::vector<std::string> scopes() const;
  std::string trust_level() const;
  std::chrono::system_clock::time_point expires_at() const;
  bool revoked() const;
  // A JWT-SVID for `audience`, reused until a minute before it expires.
  std::string jwt(const std::string& audience);

  // Checks, records and performs an action:
  //  - throws Revoked or Expired when the identity is revoked (or closed) or expired, and
  //    Denied when the revocation stream is staler than Connection::max_staleness, its
  //    scopes do not cover `action`, or its trust level is below what the call or a trust
  //    rule requires; a refusal by staleness, scope or trust level is recorded as a signed
  //    "deny" event;
  //  - records a signed "allow" event before acting: with the server, or durably in the
  //    spool when the server is unreachable (shipped in order later); throws Error if
  //    neither is possible;
  //  - hands the call to the connector of the resource's URI scheme, then records the
  //    outcome.
  CallResult call(const std::string& resource, const std::string& action,
                  const std::string& payload = {}, const CallOptions& options = {});

  // Revokes this instance and its children on the server (the ledger records it) and stops
  // renewal; the credential cannot be reused. Idempotent.
  void close();
  // Hands the identity over: destruction then stops renewal without revoking.
  void detach();

  // Registers the connector for resources whose URI has `scheme` (e.g. "postgres").
  // "http" and "https" are built in: the payload is POSTed (GET when empty) with
  // "Authorization: Bearer <JWT-SVID>" for the resource's origin. Over https (mTLS with
  // the SVID) the server must present the SPIFFE ID named for the call or its origin; a
  // call naming none fails before anything is sent. Plain http needs allow_plain_http.
  static void register_connector(const std::string& scheme, Connector connector);
  // The built-in https connector sends to `origin` ("https://payments.internal:8443") only
  // when its server presents `server_spiffe_id`. Throws Error (invalid_argument).
  static void trust_origin(const std::string& origin, const std::string& server_spiffe_id);
  // The built-in http connector may send bearer tokens to `origin` ("http://localhost:8080")
  // in the clear. Throws Error (invalid_argument).
  static void allow_plain_http(const std::string& origin);
  // Every action overlapping `scope` (e.g. "delete:*") needs at least `min_trust_level`
  // in this process.
  static void require_trust_level(const std::string& scope, const std::string& min_trust_level);

  struct State;

 private:
  friend struct internal::Access;
  explicit AgentIdentity(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace trustwarden
