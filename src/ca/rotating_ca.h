// The server's CA across key rotations, SPIRE's model made explicit. Each authority is an
// X.509 CA (its key and certificate chain) with a JWT-SVID key, and goes
//   prepared (published in the bundle, signing nothing) -> active (signing) -> old
//   (published until every SVID it signed has expired) -> retired,
// or is removed from the bundle at once by RevokeAuthority (a compromised key). The bundle
// publishes every prepared, active and old authority, and its spiffe_sequence grows on
// every change. State lives in the CA directory: authorities.json, ca.pem (the active
// chain), bundle.json and bundle.pem, and bundle-history.json (every authority ever
// published, for auditors verifying old ledger entries). Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ca/ca_directory.h"
#include "core/bundle.h"
#include "core/x509_issuer.h"
#include "crypto/signer.h"

namespace tw::ca {

enum class AuthorityState { kPrepared, kActive, kOld, kRetired, kRevoked };
absl::string_view AuthorityStateName(AuthorityState state);

// An authority as `ca status` shows it.
struct AuthorityInfo {
  int64_t id = 0;
  AuthorityState state = AuthorityState::kActive;
  std::string ca_key, jwt_key;     // key URIs
  std::string serial;              // of its CA certificate
  std::string fingerprint_sha256;  // of its root, as `bootstrap` takes it
  std::string jwt_key_id;
  // Upstream mode: a prepared authority's certificate request, for the root to sign (PEM);
  // empty once it has its certificate.
  std::string csr_pem;
  absl::Time not_after = absl::InfinitePast();  // of its CA certificate (none yet: past)
  absl::Time prepared_at, activated_at = absl::InfinitePast(),
                          deactivated_at = absl::InfinitePast();
  // Old authorities: when the last SVID and JWT-SVID it may have signed expires.
  absl::Time signs_until = absl::InfinitePast();
};

struct RotatingCaOptions {
  absl::Duration ca_ttl = absl::Hours(24 * 365);  // of a prepared self-signed CA
  // The longest X.509-SVID and JWT-SVID the server issues: how long an old authority's
  // signatures may live after it stopped signing.
  absl::Duration max_svid_lifetime = absl::Hours(24);
  absl::Duration max_jwt_lifetime = absl::Hours(1);
  // The bundle's spiffe_refresh_hint; a prepared authority is published three times this
  // long before it may sign (SPIFFE Federation §4.1 asks 3 to 5).
  absl::Duration refresh_hint = absl::Minutes(5);
};

class RotatingCa {
 public:
  // True when `dir` holds rotation state (authorities.json).
  static bool Exists(const std::string& dir);
  // Opens the rotation state of `dir` (its keys by the URIs it recorded).
  static absl::StatusOr<std::unique_ptr<RotatingCa>> Open(const std::string& dir,
                                                          RotatingCaOptions options);
  // Starts rotation state in a directory CaDirectory wrote: one active authority,
  // `initial` with the key URIs it was loaded with.
  static absl::StatusOr<std::unique_ptr<RotatingCa>> Adopt(const std::string& dir,
                                                           CaDirectory initial,
                                                           CaSigners::Uris initial_uris,
                                                           RotatingCaOptions options);

  std::shared_ptr<const core::X509Issuer> issuer() const;  // the active authority's
  std::shared_ptr<const crypto::Signer> jwt_signer() const;
  std::shared_ptr<const core::Bundle> bundle() const;
  // Every authority ever published, retired and revoked ones too (bundle-history.json).
  std::shared_ptr<const core::Bundle> history() const;
  const core::TrustDomain& trust_domain() const { return issuer()->trust_domain(); }

  std::vector<AuthorityInfo> Status() const;
  // A new authority: keys made where the active ones live (the same PKCS#11 token, or files
  // in the directory) and its JWT key published at once; with a self-signed CA certificate
  // published too, or in upstream mode a certificate request (csr_pem) for the root to sign.
  // FailedPrecondition when one is prepared already.
  absl::StatusOr<AuthorityInfo> Prepare(absl::Time now);
  // The prepared authority signs from now on; the active one becomes old. In upstream mode
  // `chain_pem` is its certificate from the root (ca sign-intermediate) and the chain up to
  // that root, which must be the bundle's. FailedPrecondition when none is prepared, when an
  // upstream one has no chain, or (unless `now_anyway`) while it has been published for less
  // than the bundle's refresh hint: verifiers that refresh at that pace must see it first.
  // InvalidArgument for a chain that is not for its key or its root.
  absl::StatusOr<AuthorityInfo> Activate(absl::Time now, bool now_anyway = false,
                                         absl::string_view chain_pem = "");
  // An old authority leaves the bundle; FailedPrecondition (naming when) while SVIDs it
  // signed may still be valid, NotFound for an unknown id.
  absl::Status Retire(int64_t id, absl::Time now);
  // Retires every old authority that may be; returns their ids. FailedPrecondition when
  // none may (naming the first instant one may), or none is old.
  absl::StatusOr<std::vector<int64_t>> RetireExpired(absl::Time now);
  // A prepared or old authority leaves the bundle at once, whatever it signed;
  // FailedPrecondition for the active one (prepare and activate another first).
  absl::Status RevokeAuthority(int64_t id, absl::Time now);

  // Rotation on a schedule of `period`: an authority active for five sixths of it has its
  // successor prepared, which is activated once the active one has served `period` (and
  // the successor was published for a refresh hint); old authorities retire once what they
  // signed has expired. Returns each change made: the authority and its new state.
  absl::StatusOr<std::vector<std::pair<int64_t, AuthorityState>>> RotateOnSchedule(
      absl::Time now, absl::Duration period);

  // Called after every change, with the new bundle (outside the CA's lock).
  void OnChange(std::function<void(const core::Bundle&)> listener);

 private:
  // How long a prepared authority is published before it may sign.
  absl::Duration PublishedLongEnough() const;
  struct Entry;
  struct State;
  RotatingCa(std::string dir, RotatingCaOptions options);
  // Writes the state's files and swaps it in; then tells the listeners.
  absl::Status Commit(std::shared_ptr<const State> next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_);
  std::shared_ptr<const State> state() const;
  absl::StatusOr<std::shared_ptr<const State>> Derive(std::vector<Entry> entries,
                                                      int64_t sequence) const;

  const std::string dir_;
  const RotatingCaOptions options_;
  absl::Mutex change_mu_;  // one change at a time
  mutable absl::Mutex mu_;
  std::shared_ptr<const State> state_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(const core::Bundle&)>> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tw::ca
