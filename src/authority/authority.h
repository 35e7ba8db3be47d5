// The identity authority: authenticates callers (principal tokens, agent SVIDs), applies
// the current policy, issues X.509- and JWT-SVIDs, records them durably and revokes.
// Transport-free: the HTTP layer decodes requests and encodes results. Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "authority/requests.h"
#include "base/clock.h"
#include "base/rate_limiter.h"
#include "ca/rotating_ca.h"
#include "core/csr.h"
#include "core/x509_verifier.h"
#include "federation/federation.h"
#include "ledger/service.h"
#include "metrics/metrics.h"
#include "policy/policy.h"
#include "revocation/hub.h"
#include "store/store.h"

namespace tw::authority {

// Who is calling: a principal token, an agent SVID (mTLS), both or neither.
struct Caller {
  std::string principal;  // set when a valid token was presented
  std::string token_id;   // that token's public id
  std::optional<absl::Time> token_expires_at;
  bool admin = false;
  bool auditor = false;
  std::optional<core::VerifiedX509Svid> svid;  // set when the client certificate verified
  std::string instance_id;                     // the SVID's instance, when it is an agent
  absl::Status svid_error;                     // why a presented certificate was refused
};

struct IssuedIdentity {
  store::IdentityRecord record;
  std::string svid_pem;          // leaf, then the CA chain below the root
  std::string parent_spiffe_id;  // empty for a root agent
};

// An instance as the API shows it: its record and its parent's SPIFFE ID.
struct IdentityView {
  store::IdentityRecord record;
  std::string parent_spiffe_id;  // empty for a root agent
  // The entry that revoked it, with revoked_by (set by GetIdentity when revoked and not
  // yet pruned).
  std::optional<revocation::Entry> revocation;
};

// A page of the revocation log as published: GET /v1/revocations.
struct RevocationPage {
  std::vector<revocation::Entry> entries;  // ascending, none past `sequence`
  int64_t sequence = 0;                    // the last sequence the hub has published
  int64_t next_after = 0;                  // where the next page starts
  bool more = false;                       // whether there is a next page
};

// What applying a policy did: a new version, or nothing when the document's canonical form
// is the current version's (`unchanged`, `version` the current one).
struct AppliedPolicy {
  policy::PolicyVersion version;
  bool unchanged = false;
};

struct CreatedToken {
  std::string id;     // public: names the token in lists and revocations
  std::string token;  // the secret, shown once
  std::optional<absl::Time> expires_at;
};

struct MintedJwt {
  std::string token;
  absl::Time expires_at;
};

struct AuthorityOptions {
  const base::Clock* clock = &base::Clock::System();
  double issuances_per_principal = 0;  // per second; 0 = unlimited
  absl::Duration default_ttl = absl::Hours(1);
  absl::Duration max_jwt_ttl = absl::Hours(1);
  // An instance's total lifetime from creation, across renewals.
  absl::Duration max_instance_lifetime = absl::Hours(24);
  // Records issuance, renewal, revocation, policy and token events when set.
  ledger::Service* ledger = nullptr;
};

class Authority {
 public:
  // `ca`, `store`, `hub` and `metrics` must outlive the Authority.
  Authority(ca::RotatingCa& ca, store::Store& store, revocation::Hub& hub,
            metrics::Metrics& metrics, AuthorityOptions options = {});

  // Loads tokens and the current policy; installs Policy::DefaultSource() as version 1
  // and, when no token exists, creates an admin token: `persist` saves it before it is
  // stored (so it is never lost), and it is returned once (empty otherwise).
  absl::StatusOr<std::string> Load(const std::function<absl::Status(const std::string&)>& persist);

  // `bearer` is the Authorization header's token (empty if none), `peer_chain` the client
  // certificate chain (leaf first; empty if none). Unauthenticated for an unknown token.
  absl::StatusOr<Caller> Authenticate(absl::string_view bearer,
                                      const std::vector<base::Bytes>& peer_chain) const;

  // POST /v1/identities. By a token's principal (not an auditor's), or by a parent agent's
  // SVID (delegation). The child's notAfter counts from the instant its TTL was checked.
  // A refusal (PermissionDenied: the policy, delegation or lifetime rules) is recorded in
  // the ledger as an "issuance" event with decision "deny": who asked, for what, and why.
  absl::StatusOr<IssuedIdentity> CreateIdentity(const Caller& caller,
                                                const CreateIdentityRequest& request);
  // POST /v1/identities/renew: a new SVID for the caller's own instance, presenting its
  // current certificate (an older one is PermissionDenied and recorded as a suspected key
  // theft). The current policy is applied again (Policy::AuthorizeRenewal), and the
  // lifetime never passes creation + max_instance_lifetime. A refusal is recorded as a
  // "renewal" event with decision "deny".
  absl::StatusOr<IssuedIdentity> Renew(const Caller& caller, absl::string_view csr);
  // POST /v1/jwt-svids for the caller's own instance; a refusal is recorded as an
  // "issuance" event of resource "jwt-svid:AUDIENCE..." with decision "deny".
  absl::StatusOr<MintedJwt> MintJwt(const Caller& caller, const JwtRequest& request);
  // POST /v1/revocations: admin for anything; an agent for itself or its subtree. Every
  // instance revoked gets its own "revocation" event (those reached through an ancestor,
  // a name or a principal say so in `reason`), stored with the revocation; a refusal is a
  // "revocation" event with decision "deny".
  absl::StatusOr<revocation::Entry> Revoke(const Caller& caller, const RevokeRequest& request);

  // Admin operations.
  absl::StatusOr<AppliedPolicy> ApplyPolicy(const Caller& caller, absl::string_view source);
  // Returns the new token (its secret shown once), expiring after `ttl` when given. An
  // auditor token may read the ledger and the audit routes, and nothing else. A principal
  // token for a principal the current policy does not name (a typo, most likely) is
  // FailedPrecondition unless `force`.
  absl::StatusOr<CreatedToken> CreateToken(const Caller& caller, absl::string_view principal,
                                           bool auditor = false,
                                           std::optional<absl::Duration> ttl = std::nullopt,
                                           bool force = false);
  // Every token, without its secret's hash.
  absl::StatusOr<std::vector<store::TokenRecord>> ListTokens(const Caller& caller) const;
  // NotFound; FailedPrecondition when already revoked, or for the last admin token.
  absl::Status RevokeToken(const Caller& caller, absl::string_view id);
  // Admin, or a token created as auditor. Unauthenticated without a token, else
  // PermissionDenied.
  absl::Status RequireAuditor(const Caller& caller) const;
  absl::Status RequireAdmin(const Caller& caller) const;

  // The signer of a batch delivered late (an agent's spool) with its chain: the chain must
  // have been valid at the leaf's notBefore, and the instance must be ours. Revocation is
  // read from the durable record, never only from memory, so pruning the hub never
  // re-admits a revoked key: `revoked_at` is set when it was revoked (InfinitePast for a
  // revocation whose instant is unknown). Unauthenticated or PermissionDenied otherwise.
  struct LateSigner {
    core::VerifiedX509Svid svid;
    std::optional<absl::Time> revoked_at;
  };
  absl::StatusOr<LateSigner> VerifyLateSigner(const std::vector<base::ByteView>& chain) const;

  // Federation relationships (federation/federation.h), admin only; adding, removing and
  // each new bundle fetched are "federation" events (resource "federation:TD").
  struct Federation {
    store::FederationRecord record;
    std::optional<uint64_t> bundle_sequence;  // of the bundle held
    std::string last_error;                   // of the last fetch; empty when it worked
    absl::Time next_refresh;
  };
  // Adds or replaces the relationship and fetches its bundle at once. `initial_bundle` is
  // the foreign bundle to trust before the first fetch (a self-serving https_spiffe
  // endpoint needs it); the relationship stays when that fetch fails (last_error).
  absl::StatusOr<Federation> AddFederation(const Caller& caller,
                                           const federation::Relationship& relationship,
                                           std::optional<core::Bundle> initial_bundle);
  // Ends the relationship: its bundle is forgotten and no longer trusted. NotFound.
  absl::Status RemoveFederation(const Caller& caller, absl::string_view trust_domain);
  // Fetches the relationship's bundle now; the fetch's error when it fails. NotFound.
  absl::StatusOr<Federation> RefreshFederation(const Caller& caller,
                                               absl::string_view trust_domain);
  absl::StatusOr<std::vector<Federation>> ListFederations(const Caller& caller) const;
  // Fetches the bundle of every relationship whose refresh hint has passed (a failed
  // fetch waits for the next interval too), one after another until `stopping` says so.
  void RefreshDueFederations(const std::function<bool()>& stopping = nullptr);
  // The latest bundle of every federated trust domain, bound to it (ours is not there).
  std::vector<core::Bundle> FederatedBundles() const;
  // A value that changes whenever FederatedBundles() or the policy's foreign grants may
  // have (unique to this process's life), for subscribers to know when to fetch them again.
  std::string FederationVersion() const;

  // CA rotation (ca::RotatingCa), admin only, each change recorded as an "authority" event
  // (resource "authority:ID", reason the new state).
  absl::StatusOr<std::vector<ca::AuthorityInfo>> CaStatus(const Caller& caller) const;
  absl::StatusOr<ca::AuthorityInfo> PrepareAuthority(const Caller& caller);
  absl::StatusOr<ca::AuthorityInfo> ActivateAuthority(const Caller& caller, bool force = false,
                                                      absl::string_view chain_pem = "");
  // One old authority, or (no id) every old one that may retire; returns the ids retired.
  absl::StatusOr<std::vector<int64_t>> RetireAuthority(const Caller& caller,
                                                       std::optional<int64_t> id);
  absl::Status RevokeAuthority(const Caller& caller, int64_t id);
  // RotatingCa::RotateOnSchedule, each change recorded with principal "schedule".
  absl::Status RotateOnSchedule(absl::Duration period);

  // Admin reads: an instance with its revocation (NotFound; InvalidArgument for a malformed
  // id), matching
  // instances newest first, policy versions (0 is the latest; NotFound).
  absl::StatusOr<IdentityView> GetIdentity(const Caller& caller,
                                           absl::string_view instance_id) const;
  absl::StatusOr<std::vector<IdentityView>> ListIdentities(
      const Caller& caller, const store::IdentityFilter& filter) const;
  absl::StatusOr<std::vector<store::StoredPolicy>> ListPolicies(const Caller& caller) const;
  absl::StatusOr<store::StoredPolicy> GetPolicy(const Caller& caller, int64_t version) const;

  // The public revocation log: the durable entries after `after`, at most `limit`
  // (a stream's backlog), and the same as a published page.
  absl::StatusOr<std::vector<revocation::Entry>> RevocationLog(int64_t after, size_t limit) const;
  absl::StatusOr<RevocationPage> Revocations(int64_t after, size_t limit) const;

  std::shared_ptr<const policy::PolicyVersion> current_policy() const;
  const core::X509Verifier& verifier() const { return verifier_; }
  const ca::RotatingCa& ca() const { return ca_; }

 private:
  absl::StatusOr<IssuedIdentity> CreateIdentityUnrecorded(const Caller& caller,
                                                          const CreateIdentityRequest& request);
  // Records a CA change made by `caller`.
  absl::Status RecordAuthority(const Caller& caller, int64_t id, absl::string_view state);
  // `theft_recorded` is set when the refusal was recorded already (a suspected key theft).
  absl::StatusOr<IssuedIdentity> RenewUnrecorded(const Caller& caller, absl::string_view csr,
                                                 bool& theft_recorded);
  absl::StatusOr<MintedJwt> MintJwtUnrecorded(const Caller& caller, const JwtRequest& request);
  absl::StatusOr<revocation::Entry> RevokeUnrecorded(const Caller& caller,
                                                     const RevokeRequest& request);
  // Appends `refusal` as a "deny" event when `status` is PermissionDenied and the caller is
  // known (a token's principal or a verified SVID), at most kRefusalsPerSecond per caller:
  // who asked (`principal` without a subject, `caller` when an agent asked about another),
  // and why (the status's message). Returns `status`, or the store's error.
  absl::Status RecordRefusal(const Caller& caller, ledger::Event refusal, absl::Status status);
  // A refusal event about the caller's own instance: its record's fields when the store
  // knows it, else only the resource.
  ledger::Event SelfRefusal(const Caller& caller, std::string type) const;

  struct TokenEntry {
    std::string principal;
    base::Bytes secret_hash;
    bool admin;
    bool auditor;
    std::optional<absl::Time> expires_at;
    bool revoked;
  };
  // Relationships and their bundles from the store (Load).
  absl::Status LoadFederations();
  // One fetch for `trust_domain`, over the network without the change lock; keeps a newer
  // bundle in the store and in memory unless the relationship was removed or replaced
  // meanwhile (NotFound, Aborted).
  absl::StatusOr<Federation> FetchFederation(const std::string& trust_domain)
      ABSL_LOCKS_EXCLUDED(federation_change_mu_);
  Federation Describe(const std::string& trust_domain) const ABSL_LOCKS_EXCLUDED(federation_mu_);

  // The signed lifecycle event to store with a mutation; nullopt without a ledger.
  absl::StatusOr<std::optional<store::LedgerAppend>> Audit(ledger::Event event) const;
  // The lifecycle event fields of an instance.
  static ledger::Event SubjectEvent(const store::IdentityRecord& record, std::string parent);
  absl::StatusOr<CreatedToken> NewToken(
      absl::string_view principal, bool admin, bool auditor, std::optional<absl::Duration> ttl,
      const std::function<absl::Status(const std::string&)>& persist = nullptr);
  // Signs the certificate: valid from `now` (back-dated) for `ttl`.
  absl::StatusOr<IssuedIdentity> Issue(store::IdentityRecord record,
                                       const core::CertificateRequest& csr, absl::Time now,
                                       absl::Duration ttl, const core::SvidAttributes& attrs);
  absl::StatusOr<store::IdentityRecord> CallerRecord(const Caller& caller) const;
  absl::StatusOr<IdentityView> View(store::IdentityRecord record) const;

  ca::RotatingCa& ca_;
  store::Store& store_;
  revocation::Hub& hub_;
  metrics::Metrics& metrics_;
  const AuthorityOptions options_;
  std::shared_ptr<core::BundleSet> bundles_;
  core::X509Verifier verifier_;
  core::X509Verifier late_verifier_;  // the same bundles, revocation left to the store
  base::RateLimiter principal_limiter_;
  base::RateLimiter refusal_limiter_;  // refusal events per caller

  // The last renewal of an instance: a retry by `previous_serial` with the same key, whose
  // reply was lost, renews again instead of counting as key theft.
  struct RecentRenewal {
    std::string previous_serial, current_serial;
    base::Bytes key;  // SPKI DER the renewal certified
    absl::Time at;
  };

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, TokenEntry> tokens_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, RecentRenewal> recent_renewals_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const policy::PolicyVersion> policy_ ABSL_GUARDED_BY(mu_);
  absl::Mutex apply_mu_;  // serializes policy versions

  struct FederationState {
    federation::Relationship relationship;
    store::FederationRecord record;
    std::string last_error;
    absl::Time next_refresh;
    uint64_t generation = 0;  // a fetch applies only to the relationship it began with
  };
  mutable absl::Mutex federation_mu_;
  std::map<std::string, FederationState> federations_ ABSL_GUARDED_BY(federation_mu_);
  core::BundleSet federated_;         // the latest bundle of each relationship
  absl::Mutex federation_change_mu_;  // one add, remove or fetched bundle kept at a time
  const std::string boot_;            // random, for FederationVersion()
  std::atomic<uint64_t> federation_changes_{0};
};

}  // namespace tw::authority
