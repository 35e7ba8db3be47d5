// One agent instance's state, shared by the SDK's parts: its credential (key and
// certificate, replaced together on renewal), whether it may still act, its JWT-SVIDs,
// its ledger recorder and its renewer. Not installed; thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "crypto/software_signer.h"
#include "nlohmann/json.hpp"
#include "sdk/endpoint.h"
#include "sdk/ledger_recorder.h"
#include "sdk/renewer.h"
#include "trustwarden/agent_identity.h"

namespace trustwarden::internal {

// The clocks an identity runs on. Applications always get the defaults; tests substitute
// fakes through CreateIdentity() (this is no public API).
struct Clocks {
  // Certificate and JWT-SVID lifetimes, the renewal schedule and its retries, spool
  // shipping, event times. Must outlive the identity.
  const tw::base::Clock* identity = &tw::base::Clock::System();
  // The revocation stream's silence (staleness); shared by every identity of the server
  // on the same clock, so it must live as long as the process.
  const tw::base::Clock* stream = &tw::base::Clock::Monotonic();
};

// AgentIdentity::create on `clocks`; a child (options.parent) runs on its parent's.
absl::StatusOr<AgentIdentity> CreateIdentity(const IdentityOptions& options, const Clocks& clocks);

// A certificate the server issued, verified, with the instance it names.
struct Issued {
  Credential credential;
  std::string instance_id;
};
// The server's reply to a creation or renewal for `key`, checked: the chain verifies
// against the endpoint's bundle at the clock's time, the leaf is for `key` (which the
// caller then puts in the credential) and carries TrustWarden attributes. The verifier's
// error when the chain fails; Unavailable naming what is wrong with the reply otherwise.
absl::StatusOr<Issued> AcceptIssued(const Endpoint& endpoint, const nlohmann::json& reply,
                                    const tw::crypto::SoftwareSigner& key,
                                    const tw::base::Clock& clock);

}  // namespace trustwarden::internal

namespace trustwarden {

struct AgentIdentity::State {
  // The instance `first` names, with the renewer not yet started.
  State(internal::Endpoint endpoint, internal::Clocks clocks, internal::Issued first);

  const internal::Endpoint endpoint;
  const internal::Clocks clocks;
  const tw::base::Clock& clock;  // *clocks.identity
  const std::string instance_id;

  internal::Credential Current() const ABSL_LOCKS_EXCLUDED(mu_);
  internal::Lifetime lifetime() const ABSL_LOCKS_EXCLUDED(mu_);
  // Revoked, as this process knows (revoked_, closed) or the revocation stream says.
  bool IsRevoked() const ABSL_LOCKS_EXCLUDED(mu_);
  bool closed() const ABSL_LOCKS_EXCLUDED(mu_);
  // Closed or detached: nothing is left for destruction to do.
  bool ended() const ABSL_LOCKS_EXCLUDED(mu_);
  // MarkRevoked() or MarkClosed() happened (what the revocation stream says aside).
  bool marked_revoked() const ABSL_LOCKS_EXCLUDED(mu_);
  // The server no longer accepts the instance; renewal stops.
  void MarkRevoked() ABSL_LOCKS_EXCLUDED(mu_);
  void MarkClosed() ABSL_LOCKS_EXCLUDED(mu_);
  void MarkDetached() ABSL_LOCKS_EXCLUDED(mu_);

  // A JWT-SVID for `audience`: the one fetched before until a minute before it expires,
  // then a new one. The server's error; Unavailable for a reply without one.
  absl::StatusOr<std::string> Jwt(const std::string& audience) ABSL_LOCKS_EXCLUDED(mu_);

  // recorder.Record(), except that the server refusing the instance marks it revoked and
  // gives false.
  absl::StatusOr<bool> RecordUnlessRefused(const internal::Credential& c,
                                           const tw::ledger::Event& event);

 private:
  // One renewal, on the renewer's thread: a CSR for the renewal key, the server's
  // certificate over mTLS with the current one, adopted when it checks out.
  absl::Status Renew() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  internal::Credential credential_ ABSL_GUARDED_BY(mu_);
  absl::Time issued_at_ ABSL_GUARDED_BY(mu_);  // when it arrived (notBefore is backdated)
  struct CachedJwt {
    std::string token;
    absl::Time expires;
  };
  std::map<std::string, CachedJwt> jwts_ ABSL_GUARDED_BY(mu_);  // by audience
  bool revoked_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
  // The key a renewal asks for, kept until one succeeds: a retry after a lost reply must
  // ask for the same key, or the server takes the old certificate for a stolen copy. Only
  // the renewer's thread touches it.
  std::unique_ptr<tw::crypto::SoftwareSigner> renewal_key_;

 public:
  internal::LedgerRecorder recorder;
  internal::Renewer renewer;  // last: its thread stops before the rest goes
};

}  // namespace trustwarden

namespace trustwarden::internal {

// Reaches an identity's state from the SDK's other parts.
struct Access {
  static const std::shared_ptr<AgentIdentity::State>& Of(const AgentIdentity& a) {
    return a.state_;
  }
  static AgentIdentity Wrap(std::shared_ptr<AgentIdentity::State> state) {
    return AgentIdentity(std::move(state));
  }
};

}  // namespace trustwarden::internal
