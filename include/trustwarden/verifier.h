// Verification for resource owners: is the caller a live SVID of our trust bundle, with
// the scope and trust level this resource requires?
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "trustwarden/connection.h"

namespace trustwarden {

class AgentIdentity;

// What a resource requires of its caller. Empty members require nothing.
struct Requirement {
  std::vector<std::string> spiffe_ids;  // the caller is one of these
  std::string trust_domain;             // the caller is in this trust domain
  std::string scope;                    // the caller's SVID grants this, "action:object"
  std::string min_trust_level;          // low, medium, high, critical
  std::string resource;                 // recorded with the decision (see VerifierOptions)
};

// The verdict on one caller.
struct Decision {
  bool allowed = false;
  std::string reason;     // why it was refused; empty when allowed
  std::string spiffe_id;  // the caller, when its SVID verified
  std::string instance_id;
  std::string trust_level;
  std::vector<std::string> scopes;
  std::string event_id;  // the recorded observation, when recording
  explicit operator bool() const { return allowed; }
};

struct VerifierOptions {
  Connection connection;  // the bundle, and the server whose revocation stream is watched
  std::string audience;   // the audience JWT-SVIDs must name (for verify_jwt)
  // When set, every decision is recorded as an "observation" event signed by this
  // identity (the resource's own); it must outlive the verifier.
  AgentIdentity* recorder = nullptr;
};

// Thread-safe; verification is local (bundle and revocation stream), never a server call.
class Verifier {
 public:
  explicit Verifier(VerifierOptions options);
  ~Verifier();
  Verifier(Verifier&&) noexcept;
  Verifier& operator=(Verifier&&) noexcept;

  // An X.509-SVID chain as PEM, leaf first (e.g. an mTLS peer's).
  Decision verify_x509(const std::string& chain_pem, const Requirement& requirement = {}) const;
  // A JWT-SVID, e.g. from "Authorization: Bearer <token>".
  Decision verify_jwt(const std::string& token, const Requirement& requirement = {}) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace trustwarden
