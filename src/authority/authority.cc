#include "authority/authority.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "core/certificate.h"
#include "core/csr.h"
#include "core/jwt_svid.h"
#include "crypto/digest.h"
#include "crypto/random.h"

namespace tw::authority {
namespace {

constexpr char kAdminPrincipal[] = "admin";
constexpr absl::Duration kDefaultJwtTtl = absl::Minutes(5);
// How long after its signer expired a spooled batch may still be delivered: it bounds
// what a stolen key of a revoked or expired instance can add, backdated, later.
constexpr absl::Duration kLateDeliveryWindow = absl::Hours(24);
// How long a renewal whose reply may have been lost can be asked for again.
constexpr absl::Duration kRenewalRetryWindow = absl::Minutes(10);
// Refusal events recorded per caller and second (ten seconds' worth in a burst): a
// refused caller cannot grow the ledger without bound.
constexpr double kRefusalsPerSecond = 5;
// A refused JWT mint names its audiences in the event's resource up to this size.
constexpr size_t kMaxRefusalResource = 512;

std::string Sha256Hex(absl::string_view text) {
  return base::HexEncode(crypto::Sha256(base::AsBytes(text)));
}

std::optional<std::string> InstanceOf(const core::SpiffeId& id) {
  auto agent = core::ParseAgentSpiffeId(id);
  if (!agent.ok()) return std::nullopt;
  return agent->instance_id;
}

absl::StatusOr<core::CertificateRequest> CheckCsr(absl::string_view text) {
  TW_ASSIGN_OR_RETURN(core::CertificateRequest csr, core::ParseCertificateRequest(text));
  if (!csr.uri_sans.empty()) {
    return absl::InvalidArgumentError(
        "CSR: must not request SANs; the server assigns the SPIFFE ID");
  }
  crypto::KeyType type = csr.public_key.type();
  if (type != crypto::KeyType::kEcP256 && type != crypto::KeyType::kEcP384) {
    return absl::InvalidArgumentError("CSR: the key must be ECDSA P-256 or P-384");
  }
  return csr;
}

absl::StatusOr<std::shared_ptr<const policy::PolicyVersion>> MakeVersion(
    const store::StoredPolicy& stored) {
  TW_ASSIGN_OR_RETURN(policy::Policy parsed, policy::Policy::Parse(stored.source));
  auto v = std::make_shared<policy::PolicyVersion>();
  v->version = stored.version;
  v->sha256_hex = stored.sha256_hex;
  v->created_at = stored.created_at;
  v->source = stored.source;
  v->policy = std::make_shared<const policy::Policy>(std::move(parsed));
  return v;
}

}  // namespace

Authority::Authority(ca::RotatingCa& ca, store::Store& store, revocation::Hub& hub,
                     metrics::Metrics& metrics, AuthorityOptions options)
    : ca_(ca),
      store_(store),
      hub_(hub),
      metrics_(metrics),
      options_(options),
      bundles_(std::make_shared<core::BundleSet>()),
      verifier_(bundles_,
                core::X509VerifierOptions{
                    .clock = options.clock,
                    .revocation_check = [&hub](const core::VerifiedX509Svid& svid) -> absl::Status {
                      std::optional<std::string> instance = InstanceOf(svid.spiffe_id);
                      if (instance && hub.IsRevoked(*instance)) {
                        return absl::PermissionDeniedError(
                            absl::StrCat("instance ", *instance, " is revoked"));
                      }
                      return absl::OkStatus();
                    },
                    .attribute_trust_domains = {ca.trust_domain()}}),
      late_verifier_(bundles_,
                     core::X509VerifierOptions{.clock = options.clock,
                                               .attribute_trust_domains = {ca.trust_domain()},
                                               .cache_capacity = 0}),
      principal_limiter_(options.issuances_per_principal, options.issuances_per_principal),
      refusal_limiter_(kRefusalsPerSecond, 10 * kRefusalsPerSecond),
      boot_(base::HexEncode(crypto::RandomBytes(8))) {
  bundles_->Put(*ca.bundle());
  // A rotation publishes a new bundle: SVIDs of every authority in it verify, and no others.
  ca.OnChange([bundles = bundles_](const core::Bundle& bundle) { bundles->Put(bundle); });
}

absl::StatusOr<std::string> Authority::Load(
    const std::function<absl::Status(const std::string&)>& persist) {
  TW_ASSIGN_OR_RETURN(std::vector<store::TokenRecord> tokens, store_.ListTokens());
  {
    absl::MutexLock lock(&mu_);
    for (store::TokenRecord& t : tokens) {
      tokens_[t.id] = TokenEntry{t.principal,  std::move(t.secret_hash), t.admin, t.auditor,
                                 t.expires_at, t.revoked_at.has_value()};
    }
  }
  auto stored = store_.GetPolicy(0);
  if (absl::IsNotFound(stored.status())) {
    absl::string_view source = policy::Policy::DefaultSource();
    TW_ASSIGN_OR_RETURN(policy::Policy parsed, policy::Policy::Parse(source));
    std::string sha = Sha256Hex(parsed.CanonicalJson());
    absl::Time now = options_.clock->Now();
    TW_ASSIGN_OR_RETURN(auto audit, Audit(ledger::Event{.type = "policy",
                                                        .principal = kAdminPrincipal,
                                                        .resource = "policy:1",
                                                        .reason = "sha256 " + sha}));
    TW_ASSIGN_OR_RETURN(int64_t version,
                        store_.AppendPolicy(source, sha, now, audit ? &*audit : nullptr));
    stored = store::StoredPolicy{version, sha, absl::FromUnixSeconds(absl::ToUnixSeconds(now)),
                                 std::string(source)};
  }
  if (!stored.ok()) return stored.status();
  TW_RETURN_IF_ERROR(LoadFederations());
  TW_ASSIGN_OR_RETURN(auto version, MakeVersion(*stored));
  {
    absl::MutexLock lock(&mu_);
    policy_ = std::move(version);
    if (!tokens_.empty()) return std::string();
  }
  TW_ASSIGN_OR_RETURN(CreatedToken admin, NewToken(kAdminPrincipal, /*admin=*/true,
                                                   /*auditor=*/false, std::nullopt, persist));
  return admin.token;
}

absl::StatusOr<std::optional<store::LedgerAppend>> Authority::Audit(ledger::Event event) const {
  if (options_.ledger == nullptr) return std::nullopt;
  return options_.ledger->ServerEvent(std::move(event));
}

ledger::Event Authority::SubjectEvent(const store::IdentityRecord& r, std::string parent) {
  return ledger::Event{.instance = r.spiffe_id,
                       .serial = r.serial_hex,
                       .parent = std::move(parent),
                       .principal = r.principal,
                       .policy_version = r.policy_version,
                       .resource = absl::StrCat("instance:", r.instance_id)};
}

absl::StatusOr<CreatedToken> Authority::NewToken(
    absl::string_view principal, bool admin, bool auditor, std::optional<absl::Duration> ttl,
    const std::function<absl::Status(const std::string&)>& persist) {
  std::string id = base::HexEncode(crypto::RandomBytes(8));
  base::Bytes secret_bytes = crypto::RandomBytes(32);
  std::string secret = base::Base64UrlEncode(base::AsChars(secret_bytes));
  const absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(options_.clock->Now()));
  store::TokenRecord record{
      id, std::string(principal), crypto::Sha256(base::AsBytes(secret)), admin, now, auditor};
  if (ttl) record.expires_at = now + *ttl;
  std::string token = absl::StrCat("tw_", id, "_", secret);
  if (persist) {
    TW_RETURN_IF_ERROR(persist(token));
  }
  std::string reason = admin ? "admin" : auditor ? "auditor" : "principal";
  if (ttl) absl::StrAppend(&reason, ", expires ", base::Rfc3339(*record.expires_at));
  TW_ASSIGN_OR_RETURN(auto audit, Audit(ledger::Event{.type = "token",
                                                      .principal = record.principal,
                                                      .resource = absl::StrCat("token:", id),
                                                      .reason = reason}));
  TW_RETURN_IF_ERROR(store_.InsertToken(record, audit ? &*audit : nullptr));
  absl::MutexLock lock(&mu_);
  tokens_[id] =
      TokenEntry{record.principal, record.secret_hash, admin, auditor, record.expires_at, false};
  return CreatedToken{id, std::move(token), record.expires_at};
}

absl::StatusOr<Caller> Authority::Authenticate(absl::string_view bearer,
                                               const std::vector<base::Bytes>& peer_chain) const {
  Caller caller;
  if (!bearer.empty()) {
    // tw_<16 hex id>_<base64url secret>; the id selects the record, the secret's hash is
    // compared in constant time.
    const absl::Status bad = absl::UnauthenticatedError("the bearer token is not valid");
    constexpr size_t kIdSize = 16;
    absl::string_view rest = bearer;
    if (!absl::ConsumePrefix(&rest, "tw_") || rest.size() <= kIdSize + 1 || rest[kIdSize] != '_') {
      return bad;
    }
    absl::string_view id = rest.substr(0, kIdSize);
    base::Bytes hash = crypto::Sha256(base::AsBytes(rest.substr(kIdSize + 1)));
    absl::MutexLock lock(&mu_);
    auto it = tokens_.find(id);
    if (it == tokens_.end() || !crypto::ConstantTimeEqual(hash, it->second.secret_hash)) {
      return bad;
    }
    // Only the holder of the secret learns why a real token no longer works.
    if (it->second.revoked) return absl::UnauthenticatedError("the bearer token was revoked");
    if (it->second.expires_at && options_.clock->Now() >= *it->second.expires_at) {
      return absl::UnauthenticatedError("the bearer token has expired");
    }
    caller.principal = it->second.principal;
    caller.token_id = std::string(id);
    caller.token_expires_at = it->second.expires_at;
    caller.admin = it->second.admin;
    caller.auditor = it->second.auditor;
  }
  if (!peer_chain.empty()) {
    std::vector<base::ByteView> views(peer_chain.begin(), peer_chain.end());
    auto svid = verifier_.Verify(views);
    if (svid.ok()) {
      caller.instance_id = InstanceOf(svid->spiffe_id).value_or("");
      caller.svid = *std::move(svid);
    } else {
      caller.svid_error = svid.status();
    }
  }
  return caller;
}

absl::Status Authority::RequireAdmin(const Caller& caller) const {
  if (caller.admin) return absl::OkStatus();
  if (caller.principal.empty() && !caller.svid) {
    return absl::UnauthenticatedError("this route needs the admin token");
  }
  return absl::PermissionDeniedError("this route needs the admin token");
}

absl::StatusOr<Authority::LateSigner> Authority::VerifyLateSigner(
    const std::vector<base::ByteView>& chain) const {
  if (chain.empty()) return absl::InvalidArgumentError("the chain is empty");
  TW_ASSIGN_OR_RETURN(core::Certificate leaf,
                      core::Certificate::Parse(base::Bytes(chain[0].begin(), chain[0].end())));
  if (options_.clock->Now() > leaf.not_after() + kLateDeliveryWindow) {
    return absl::PermissionDeniedError(absl::StrCat("the batch's signer expired more than ",
                                                    absl::FormatDuration(kLateDeliveryWindow),
                                                    " ago: too late to deliver"));
  }
  TW_ASSIGN_OR_RETURN(core::VerifiedX509Svid svid,
                      late_verifier_.VerifyAt(chain, leaf.not_before()));
  std::optional<std::string> instance = InstanceOf(svid.spiffe_id);
  if (!instance) {
    return absl::PermissionDeniedError(
        absl::StrCat(svid.spiffe_id.str(), " is not an agent instance"));
  }
  auto record = store_.GetIdentity(*instance);
  if (absl::IsNotFound(record.status())) {
    return absl::PermissionDeniedError(
        absl::StrCat("instance ", *instance, " is unknown to this server"));
  }
  TW_RETURN_IF_ERROR(record.status());
  LateSigner out{std::move(svid), std::nullopt};
  if (record->revoked_sequence) out.revoked_at = record->revoked_at.value_or(absl::InfinitePast());
  return out;
}

std::shared_ptr<const policy::PolicyVersion> Authority::current_policy() const {
  absl::MutexLock lock(&mu_);
  return policy_;
}

absl::StatusOr<store::IdentityRecord> Authority::CallerRecord(const Caller& caller) const {
  if (!caller.svid) {
    if (!caller.svid_error.ok()) {
      if (absl::IsPermissionDenied(caller.svid_error)) return caller.svid_error;
      return absl::UnauthenticatedError(caller.svid_error.message());
    }
    return absl::UnauthenticatedError("this route needs the agent's SVID as client certificate");
  }
  if (caller.instance_id.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat(caller.svid->spiffe_id.str(), " is not an agent instance"));
  }
  auto record = store_.GetIdentity(caller.instance_id);
  if (absl::IsNotFound(record.status())) {
    return absl::PermissionDeniedError(
        absl::StrCat("instance ", caller.instance_id, " is unknown to this server"));
  }
  if (!record.ok()) return record.status();
  if (record->revoked_sequence) {
    return absl::PermissionDeniedError(
        absl::StrCat("instance ", caller.instance_id, " is revoked"));
  }
  return record;
}

absl::StatusOr<IssuedIdentity> Authority::Issue(store::IdentityRecord record,
                                                const core::CertificateRequest& csr, absl::Time now,
                                                absl::Duration ttl,
                                                const core::SvidAttributes& attrs) {
  TW_ASSIGN_OR_RETURN(core::SpiffeId id, core::SpiffeId::FromString(record.spiffe_id));
  core::LeafRequest leaf{.spiffe_id = std::move(id),
                         .not_before = now - ca::kBackdate,
                         .not_after = now + ttl,
                         .attributes = attrs};
  const std::shared_ptr<const core::X509Issuer> issuer = ca_.issuer();
  TW_ASSIGN_OR_RETURN(base::Bytes der, issuer->IssueLeaf(leaf, csr.public_key));
  std::vector<base::ByteView> chain = {der};
  const auto& served = issuer->served_chain();
  chain.insert(chain.end(), served.begin(), served.end());
  IssuedIdentity out;
  out.svid_pem = core::CertificatesToPem(chain);
  TW_ASSIGN_OR_RETURN(core::Certificate cert, core::Certificate::Parse(std::move(der)));
  record.serial_hex = base::HexEncode(cert.serial());
  record.not_before = cert.not_before();
  record.not_after = cert.not_after();
  out.record = std::move(record);
  return out;
}

absl::StatusOr<IssuedIdentity> Authority::CreateIdentity(const Caller& caller,
                                                         const CreateIdentityRequest& request) {
  absl::StatusOr<IssuedIdentity> issued = CreateIdentityUnrecorded(caller, request);
  if (issued.ok()) return issued;
  return RecordRefusal(caller,
                       ledger::Event{.type = "issuance",
                                     .parent = caller.svid ? caller.svid->spiffe_id.str() : "",
                                     .resource = absl::StrCat("agent:", request.name.str())},
                       issued.status());
}

absl::Status Authority::RecordRefusal(const Caller& caller, ledger::Event refusal,
                                      absl::Status status) {
  if (!absl::IsPermissionDenied(status)) return status;
  const std::string asker = caller.svid ? caller.svid->spiffe_id.str() : caller.principal;
  if (asker.empty() || !refusal_limiter_.Allow(asker, options_.clock->Now())) return status;
  refusal.decision = "deny";
  refusal.reason = std::string(status.message());
  if (refusal.instance.empty()) refusal.principal = caller.principal;
  if (caller.svid && refusal.instance != asker && refusal.parent != asker) refusal.caller = asker;
  absl::StatusOr<std::optional<store::LedgerAppend>> audit = Audit(std::move(refusal));
  if (!audit.ok()) return audit.status();
  if (*audit) TW_RETURN_IF_ERROR(store_.AppendLedger(**audit).status());
  return status;
}

ledger::Event Authority::SelfRefusal(const Caller& caller, std::string type) const {
  ledger::Event event{.resource = absl::StrCat("instance:", caller.instance_id)};
  if (auto record = store_.GetIdentity(caller.instance_id); record.ok()) {
    event = SubjectEvent(*record, "");
    if (caller.svid) event.serial = caller.svid->serial_hex;
  }
  event.type = std::move(type);
  return event;
}

absl::StatusOr<IssuedIdentity> Authority::CreateIdentityUnrecorded(
    const Caller& caller, const CreateIdentityRequest& request) {
  const absl::Time start = options_.clock->Now();
  std::shared_ptr<const policy::PolicyVersion> version = current_policy();
  std::string principal;
  std::optional<policy::ParentGrant> grant;
  std::optional<store::IdentityRecord> parent;
  if (caller.auditor && !caller.admin) {
    return absl::PermissionDeniedError(
        "an auditor token is read-only: it cannot create identities");
  }
  if (!caller.principal.empty()) {
    principal = caller.principal;
  } else {
    TW_ASSIGN_OR_RETURN(parent, CallerRecord(caller));
    principal = parent->principal;
    TW_ASSIGN_OR_RETURN(std::vector<core::Scope> scopes, core::ParseScopes(parent->scopes));
    TW_ASSIGN_OR_RETURN(core::TrustLevel level, core::ParseTrustLevel(parent->trust_level));
    grant = policy::ParentGrant{std::move(scopes), level,
                                std::min(parent->not_after, caller.svid->not_after), parent->depth};
  }
  if (!principal_limiter_.Allow(principal, start)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("principal \"", principal, "\" exceeds its issuance rate"));
  }
  TW_ASSIGN_OR_RETURN(core::CertificateRequest csr, CheckCsr(request.csr));

  absl::Duration ttl = options_.default_ttl;
  if (request.ttl) {
    ttl = *request.ttl;
    if (ttl > options_.max_instance_lifetime) {
      return absl::PermissionDeniedError(
          absl::StrCat("ttl ", absl::FormatDuration(ttl), " exceeds the server's max lifetime ",
                       absl::FormatDuration(options_.max_instance_lifetime)));
    }
  } else {
    ttl = std::min(ttl, options_.max_instance_lifetime);
    if (const policy::PrincipalRule* rule = version->policy->FindPrincipal(principal)) {
      ttl = std::min(ttl, rule->max_ttl);
    }
    if (grant) ttl = std::min(ttl, absl::Trunc(grant->not_after - start, absl::Seconds(1)));
  }
  TW_RETURN_IF_ERROR(
      version->policy->AuthorizeCreation(policy::CreationRequest{.principal = principal,
                                                                 .name = request.name,
                                                                 .scopes = request.scopes,
                                                                 .ttl = ttl,
                                                                 .trust_level = request.trust_level,
                                                                 .parent = grant,
                                                                 .now = start}));

  const std::string instance_id = core::NewInstanceId();
  TW_ASSIGN_OR_RETURN(core::SpiffeId id,
                      core::AgentSpiffeId(ca_.trust_domain(), request.name, instance_id));
  core::SvidAttributes attrs{.scopes = request.scopes,
                             .trust_level = request.trust_level,
                             .policy_version = version->version,
                             .principal = principal};
  store::IdentityRecord record{
      .instance_id = instance_id,
      .spiffe_id = id.str(),
      .name = request.name.str(),
      .principal = principal,
      .policy_version = version->version,
      .trust_level = std::string(core::TrustLevelName(request.trust_level)),
      .created_at = start};
  for (const core::Scope& s : request.scopes) record.scopes.push_back(s.str());
  if (parent) {
    attrs.parent = caller.svid->spiffe_id;
    record.parent = parent->instance_id;
    record.depth = parent->depth + 1;
  }
  // notAfter counts from the instant the TTL was checked against the parent's lifetime.
  TW_ASSIGN_OR_RETURN(IssuedIdentity issued, Issue(std::move(record), csr, start, ttl, attrs));
  ledger::Event event = SubjectEvent(issued.record, attrs.parent ? attrs.parent->str() : "");
  event.type = "issuance";
  TW_ASSIGN_OR_RETURN(auto audit, Audit(std::move(event)));
  absl::Status stored = store_.InsertIdentity(issued.record, audit ? &*audit : nullptr);
  if (absl::IsFailedPrecondition(stored)) {
    return absl::PermissionDeniedError(absl::StrCat("delegation refused: ", stored.message()));
  }
  TW_RETURN_IF_ERROR(stored);
  metrics_.RecordIssuance(options_.clock->Now() - start);
  if (attrs.parent) issued.parent_spiffe_id = attrs.parent->str();
  return issued;
}

absl::StatusOr<IssuedIdentity> Authority::Renew(const Caller& caller, absl::string_view csr_text) {
  bool theft_recorded = false;
  absl::StatusOr<IssuedIdentity> renewed = RenewUnrecorded(caller, csr_text, theft_recorded);
  if (renewed.ok() || theft_recorded) return renewed;
  return RecordRefusal(caller, SelfRefusal(caller, "renewal"), renewed.status());
}

absl::StatusOr<IssuedIdentity> Authority::RenewUnrecorded(const Caller& caller,
                                                          absl::string_view csr_text,
                                                          bool& theft_recorded) {
  TW_ASSIGN_OR_RETURN(store::IdentityRecord record, CallerRecord(caller));
  const absl::Time now = options_.clock->Now();
  TW_ASSIGN_OR_RETURN(core::CertificateRequest csr, CheckCsr(csr_text));
  const base::Bytes csr_key = csr.public_key.spki_der();
  bool retry = false;
  {
    // A renewal whose reply was lost comes again with the previous certificate and the key
    // it asked for then: that is the instance, not a thief.
    absl::MutexLock lock(&mu_);
    auto it = recent_renewals_.find(record.instance_id);
    retry = it != recent_renewals_.end() && it->second.previous_serial == caller.svid->serial_hex &&
            it->second.current_serial == record.serial_hex && it->second.key == csr_key &&
            now - it->second.at < kRenewalRetryWindow;
  }
  if (caller.svid->serial_hex != record.serial_hex && !retry) {
    // The instance renewed already: whoever holds this older certificate's key is not the
    // instance, or its key was copied.
    ledger::Event event = SubjectEvent(record, "");
    event.type = "renewal";
    event.serial = caller.svid->serial_hex;
    event.decision = "deny";
    event.reason = absl::StrCat("suspected key theft: renewal with certificate ",
                                caller.svid->serial_hex, ", replaced by ", record.serial_hex);
    TW_ASSIGN_OR_RETURN(auto audit, Audit(std::move(event)));
    if (audit) TW_RETURN_IF_ERROR(store_.AppendLedger(*audit).status());
    theft_recorded = true;
    metrics_.RecordSuspectedKeyTheft();
    return absl::PermissionDeniedError(
        absl::StrCat("certificate ", caller.svid->serial_hex, " is not the current one of ",
                     record.instance_id, ": renewal refused and recorded as suspected key theft"));
  }
  const absl::Duration lifetime_left = record.created_at + options_.max_instance_lifetime - now;
  if (lifetime_left < absl::Seconds(1)) {
    return absl::PermissionDeniedError(
        absl::StrCat("instance ", record.instance_id, " reached the server's max lifetime of ",
                     absl::FormatDuration(options_.max_instance_lifetime), ": create a new one"));
  }
  std::shared_ptr<const policy::PolicyVersion> version = current_policy();
  TW_ASSIGN_OR_RETURN(core::AgentName name, core::AgentName::Parse(record.name));
  policy::RenewalRequest request{
      .principal = record.principal,
      .name = std::move(name),
      .ttl = std::min(record.not_after - record.not_before - ca::kBackdate,
                      absl::Trunc(lifetime_left, absl::Seconds(1))),
      .now = now};
  TW_ASSIGN_OR_RETURN(request.scopes, core::ParseScopes(record.scopes));
  TW_ASSIGN_OR_RETURN(request.trust_level, core::ParseTrustLevel(record.trust_level));
  std::optional<core::SpiffeId> parent_id;
  if (!record.parent.empty()) {
    TW_ASSIGN_OR_RETURN(store::IdentityRecord parent, store_.GetIdentity(record.parent));
    if (parent.revoked_sequence || parent.not_after <= now) {
      return absl::PermissionDeniedError("the parent instance is revoked or expired");
    }
    TW_ASSIGN_OR_RETURN(std::vector<core::Scope> parent_scopes, core::ParseScopes(parent.scopes));
    TW_ASSIGN_OR_RETURN(core::TrustLevel parent_level, core::ParseTrustLevel(parent.trust_level));
    request.parent =
        policy::ParentGrant{std::move(parent_scopes), parent_level, parent.not_after, parent.depth};
    TW_ASSIGN_OR_RETURN(parent_id, core::SpiffeId::FromString(parent.spiffe_id));
  }
  // The policy as it is now, not as it was at creation: narrowed scopes, capped trust level
  // and TTL, and no renewal for a principal the policy dropped.
  TW_ASSIGN_OR_RETURN(policy::RenewalGrant grant, version->policy->AuthorizeRenewal(request));
  core::SvidAttributes attrs{.scopes = grant.scopes,
                             .trust_level = grant.trust_level,
                             .policy_version = version->version,
                             .parent = parent_id,
                             .principal = record.principal};
  const std::string current_serial = record.serial_hex;
  record.policy_version = version->version;
  record.trust_level = std::string(core::TrustLevelName(grant.trust_level));
  record.scopes.clear();
  for (const core::Scope& s : grant.scopes) record.scopes.push_back(s.str());
  TW_ASSIGN_OR_RETURN(IssuedIdentity issued, Issue(std::move(record), csr, now, grant.ttl, attrs));
  ledger::Event event = SubjectEvent(issued.record, parent_id ? parent_id->str() : "");
  event.type = "renewal";
  TW_ASSIGN_OR_RETURN(auto audit, Audit(std::move(event)));
  absl::Status stored =
      store_.RenewIdentity(issued.record, current_serial, audit ? &*audit : nullptr);
  if (absl::IsFailedPrecondition(stored)) return absl::PermissionDeniedError(stored.message());
  TW_RETURN_IF_ERROR(stored);
  {
    absl::MutexLock lock(&mu_);
    if (recent_renewals_.size() > 100000) {
      absl::erase_if(recent_renewals_,
                     [now](const auto& kv) { return now - kv.second.at >= kRenewalRetryWindow; });
    }
    recent_renewals_[issued.record.instance_id] = RecentRenewal{
        retry ? recent_renewals_[issued.record.instance_id].previous_serial : current_serial,
        issued.record.serial_hex, csr_key, now};
  }
  metrics_.RecordRenewal();
  if (parent_id) issued.parent_spiffe_id = parent_id->str();
  return issued;
}

absl::StatusOr<MintedJwt> Authority::MintJwt(const Caller& caller, const JwtRequest& request) {
  absl::StatusOr<MintedJwt> minted = MintJwtUnrecorded(caller, request);
  if (minted.ok()) return minted;
  ledger::Event refusal = SelfRefusal(caller, "issuance");
  refusal.resource = absl::StrCat("jwt-svid:", absl::StrJoin(request.audience, " "));
  if (refusal.resource.size() > kMaxRefusalResource) refusal.resource = "jwt-svid";
  return RecordRefusal(caller, std::move(refusal), minted.status());
}

absl::StatusOr<MintedJwt> Authority::MintJwtUnrecorded(const Caller& caller,
                                                       const JwtRequest& request) {
  TW_ASSIGN_OR_RETURN(store::IdentityRecord record, CallerRecord(caller));
  const absl::Time now = options_.clock->Now();
  absl::Duration ttl = request.ttl.value_or(kDefaultJwtTtl);
  if (ttl > options_.max_jwt_ttl) {
    return absl::InvalidArgumentError(absl::StrCat("\"ttl\": JWT-SVIDs live at most ",
                                                   absl::FormatDuration(options_.max_jwt_ttl)));
  }
  ttl = std::min(ttl, caller.svid->not_after - now);
  if (ttl <= absl::ZeroDuration()) return absl::PermissionDeniedError("the SVID has expired");
  core::JwtSvidRequest jwt{.subject = caller.svid->spiffe_id,
                           .audience = request.audience,
                           .issued_at = now,
                           .ttl = ttl,
                           .attributes = caller.svid->attributes.value_or(core::SvidAttributes{})};
  TW_ASSIGN_OR_RETURN(std::string token, core::MintJwtSvid(*ca_.jwt_signer(), jwt));
  metrics_.RecordJwt();
  return MintedJwt{std::move(token), absl::FromUnixSeconds(absl::ToUnixSeconds(now + ttl))};
}

absl::StatusOr<revocation::Entry> Authority::Revoke(const Caller& caller,
                                                    const RevokeRequest& request) {
  absl::StatusOr<revocation::Entry> entry = RevokeUnrecorded(caller, request);
  if (entry.ok()) return entry;
  return RecordRefusal(caller,
                       ledger::Event{.type = "revocation",
                                     .resource = absl::StrCat(revocation::KindName(request.kind),
                                                              ":", request.target)},
                       entry.status());
}

absl::StatusOr<revocation::Entry> Authority::RevokeUnrecorded(const Caller& caller,
                                                              const RevokeRequest& request) {
  if (!caller.admin) {
    if (!caller.principal.empty()) return RequireAdmin(caller);
    TW_ASSIGN_OR_RETURN(store::IdentityRecord self, CallerRecord(caller));
    const bool by_instance =
        request.kind == revocation::Kind::kInstance || request.kind == revocation::Kind::kSubtree;
    if (!by_instance) {
      return absl::PermissionDeniedError("an agent may revoke only itself or its subtree");
    }
    // The target must be the caller or one of its descendants: walk up the parent chain.
    std::string at = request.target;
    for (int hops = 0; at != self.instance_id; ++hops) {
      auto r = store_.GetIdentity(at);
      if (absl::IsNotFound(r.status()) && hops == 0) return r.status();
      if (!r.ok() || r->parent.empty() || hops > 32) {
        return absl::PermissionDeniedError("an agent may revoke only itself or its subtree");
      }
      at = r->parent;
    }
  }
  const bool by_instance =
      request.kind == revocation::Kind::kInstance || request.kind == revocation::Kind::kSubtree;
  const std::string resource =
      absl::StrCat(revocation::KindName(request.kind), ":", request.target);
  const std::string asker = caller.svid && !caller.admin ? caller.svid->spiffe_id.str() : "";
  // The parent of an instance target: the one parent the revoked set may not contain.
  std::string target_parent;
  if (by_instance) {
    if (auto target = store_.GetIdentity(request.target); target.ok() && !target->parent.empty()) {
      if (auto parent = store_.GetIdentity(target->parent); parent.ok()) {
        target_parent = parent->spiffe_id;
      }
    }
  }
  // One event per revoked instance, in its own audit trail; inside the store's transaction.
  store::RevocationAudit audit;
  if (options_.ledger != nullptr) {
    audit = [&](const revocation::Entry&, const std::vector<store::IdentityRecord>& revoked)
        -> absl::StatusOr<store::LedgerAppend> {
      absl::flat_hash_map<absl::string_view, absl::string_view> spiffe_ids;
      for (const store::IdentityRecord& r : revoked) spiffe_ids[r.instance_id] = r.spiffe_id;
      std::vector<ledger::Event> events;
      events.reserve(revoked.size() + 1);
      bool target_revoked = false;
      for (const store::IdentityRecord& r : revoked) {
        const bool seed = by_instance ? r.instance_id == request.target
                                      : (request.kind == revocation::Kind::kAgent
                                             ? r.name == request.target
                                             : r.principal == request.target);
        target_revoked = target_revoked || (by_instance && seed);
        auto parent = spiffe_ids.find(r.parent);
        ledger::Event event =
            SubjectEvent(r, parent != spiffe_ids.end() ? std::string(parent->second)
                            : seed && by_instance      ? target_parent
                                                       : "");
        event.type = "revocation";
        event.resource = resource;
        event.reason = seed ? request.reason
                            : absl::StrCat("cascaded from ", resource,
                                           request.reason.empty() ? "" : ": ", request.reason);
        if (event.instance != asker) event.caller = asker;
        events.push_back(std::move(event));
      }
      if (by_instance && !target_revoked) {
        // Only descendants were left to revoke: the request itself is an event too.
        events.push_back(ledger::Event{
            .type = "revocation", .resource = resource, .reason = request.reason, .caller = asker});
      }
      return options_.ledger->ServerEvents(std::move(events));
    };
  }
  const std::string revoked_by =
      asker.empty() ? absl::StrCat("principal:", caller.principal) : asker;
  TW_ASSIGN_OR_RETURN(revocation::Entry entry,
                      store_.Revoke(request.kind, request.target, request.reason,
                                    options_.clock->Now(), audit, revoked_by));
  hub_.Publish(entry);
  metrics_.RecordRevocation(entry.instances.size());
  return entry;
}

absl::StatusOr<AppliedPolicy> Authority::ApplyPolicy(const Caller& caller,
                                                     absl::string_view source) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  TW_ASSIGN_OR_RETURN(policy::Policy parsed, policy::Policy::Parse(source));
  for (const core::ForeignGrant& g : parsed.foreign_grants()) {
    if (g.trust_domain == ca_.trust_domain()) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: foreign: ", g.trust_domain.name(),
                       " is our own trust domain: its agents' scopes are in their certificates"));
    }
  }
  std::string sha = Sha256Hex(parsed.CanonicalJson());
  absl::MutexLock apply(&apply_mu_);
  if (const std::shared_ptr<const policy::PolicyVersion> current = current_policy();
      current->sha256_hex == sha) {
    return AppliedPolicy{*current, /*unchanged=*/true};
  }
  const absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(options_.clock->Now()));
  int64_t next = current_policy()->version + 1;
  TW_ASSIGN_OR_RETURN(auto audit, Audit(ledger::Event{.type = "policy",
                                                      .principal = caller.principal,
                                                      .resource = absl::StrCat("policy:", next),
                                                      .reason = "sha256 " + sha}));
  TW_ASSIGN_OR_RETURN(int64_t number,
                      store_.AppendPolicy(source, sha, now, audit ? &*audit : nullptr));
  auto version = std::make_shared<policy::PolicyVersion>(
      policy::PolicyVersion{number, sha, now, std::string(source),
                            std::make_shared<const policy::Policy>(std::move(parsed))});
  absl::MutexLock lock(&mu_);
  policy_ = version;
  ++federation_changes_;  // its foreign grants may have changed
  return AppliedPolicy{*version};
}

absl::StatusOr<CreatedToken> Authority::CreateToken(const Caller& caller,
                                                    absl::string_view principal, bool auditor,
                                                    std::optional<absl::Duration> ttl, bool force) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  TW_RETURN_IF_ERROR(CheckPrincipalName(principal));
  if (principal == kAdminPrincipal) {
    return absl::InvalidArgumentError("principal \"admin\" is reserved for the admin token");
  }
  if (ttl && *ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError("\"ttl\": a token lives at least 1s");
  }
  if (!auditor && !force && current_policy()->policy->FindPrincipal(principal) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("principal ", base::Quote(principal), " is not named in policy version ",
                     current_policy()->version,
                     ", so its token could create nothing; check the name, "
                     "or force it (\"force\": true, token create --force)"));
  }
  return NewToken(principal, /*admin=*/false, auditor, ttl);
}

absl::StatusOr<std::vector<store::TokenRecord>> Authority::ListTokens(const Caller& caller) const {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  TW_ASSIGN_OR_RETURN(std::vector<store::TokenRecord> tokens, store_.ListTokens());
  for (store::TokenRecord& t : tokens) t.secret_hash.clear();
  return tokens;
}

absl::Status Authority::RevokeToken(const Caller& caller, absl::string_view id) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  std::string principal;
  {
    absl::MutexLock lock(&mu_);
    auto it = tokens_.find(id);
    if (it == tokens_.end()) {
      return absl::NotFoundError(absl::StrCat("token ", base::Quote(id), " is unknown"));
    }
    if (it->second.revoked) {
      return absl::FailedPreconditionError(absl::StrCat("token ", id, " is already revoked"));
    }
    if (it->second.admin && std::none_of(tokens_.begin(), tokens_.end(), [&](const auto& other) {
          return other.first != it->first && other.second.admin && !other.second.revoked;
        })) {
      return absl::FailedPreconditionError("the last admin token cannot be revoked");
    }
    principal = it->second.principal;
  }
  TW_ASSIGN_OR_RETURN(auto audit, Audit(ledger::Event{.type = "token",
                                                      .principal = principal,
                                                      .resource = absl::StrCat("token:", id),
                                                      .reason = "revoked"}));
  TW_RETURN_IF_ERROR(store_.RevokeToken(id, options_.clock->Now(), audit ? &*audit : nullptr));
  absl::MutexLock lock(&mu_);
  tokens_[id].revoked = true;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ca::AuthorityInfo>> Authority::CaStatus(const Caller& caller) const {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  return ca_.Status();
}

absl::Status Authority::RecordAuthority(const Caller& caller, int64_t id, absl::string_view state) {
  TW_ASSIGN_OR_RETURN(auto audit, Audit(ledger::Event{.type = "authority",
                                                      .principal = caller.principal,
                                                      .resource = absl::StrCat("authority:", id),
                                                      .reason = std::string(state)}));
  if (audit) TW_RETURN_IF_ERROR(store_.AppendLedger(*audit).status());
  return absl::OkStatus();
}

absl::StatusOr<ca::AuthorityInfo> Authority::PrepareAuthority(const Caller& caller) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  TW_ASSIGN_OR_RETURN(ca::AuthorityInfo info, ca_.Prepare(options_.clock->Now()));
  TW_RETURN_IF_ERROR(RecordAuthority(caller, info.id, "prepared"));
  return info;
}

absl::StatusOr<ca::AuthorityInfo> Authority::ActivateAuthority(const Caller& caller, bool force,
                                                               absl::string_view chain_pem) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  TW_ASSIGN_OR_RETURN(ca::AuthorityInfo info,
                      ca_.Activate(options_.clock->Now(), force, chain_pem));
  TW_RETURN_IF_ERROR(RecordAuthority(caller, info.id, "active"));
  return info;
}

absl::StatusOr<std::vector<int64_t>> Authority::RetireAuthority(const Caller& caller,
                                                                std::optional<int64_t> id) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  std::vector<int64_t> retired;
  if (id) {
    TW_RETURN_IF_ERROR(ca_.Retire(*id, options_.clock->Now()));
    retired.push_back(*id);
  } else {
    TW_ASSIGN_OR_RETURN(retired, ca_.RetireExpired(options_.clock->Now()));
  }
  for (int64_t r : retired) TW_RETURN_IF_ERROR(RecordAuthority(caller, r, "retired"));
  return retired;
}

absl::Status Authority::RevokeAuthority(const Caller& caller, int64_t id) {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  TW_RETURN_IF_ERROR(ca_.RevokeAuthority(id, options_.clock->Now()));
  return RecordAuthority(caller, id, "revoked");
}

absl::Status Authority::RotateOnSchedule(absl::Duration period) {
  TW_ASSIGN_OR_RETURN(auto changes, ca_.RotateOnSchedule(options_.clock->Now(), period));
  const Caller schedule{.principal = "schedule"};
  for (const auto& [id, state] : changes) {
    TW_RETURN_IF_ERROR(RecordAuthority(schedule, id, ca::AuthorityStateName(state)));
  }
  return absl::OkStatus();
}

absl::Status Authority::RequireAuditor(const Caller& caller) const {
  if (caller.auditor) return absl::OkStatus();
  return RequireAdmin(caller);
}

absl::StatusOr<IdentityView> Authority::View(store::IdentityRecord record) const {
  IdentityView view{.record = std::move(record)};
  if (!view.record.parent.empty()) {
    TW_ASSIGN_OR_RETURN(store::IdentityRecord parent, store_.GetIdentity(view.record.parent));
    view.parent_spiffe_id = std::move(parent.spiffe_id);
  }
  return view;
}

absl::StatusOr<IdentityView> Authority::GetIdentity(const Caller& caller,
                                                    absl::string_view instance_id) const {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  TW_RETURN_IF_ERROR(core::CheckInstanceId(instance_id));
  TW_ASSIGN_OR_RETURN(store::IdentityRecord record, store_.GetIdentity(instance_id));
  const std::optional<int64_t> sequence = record.revoked_sequence;
  TW_ASSIGN_OR_RETURN(IdentityView view, View(std::move(record)));
  if (sequence) {
    absl::StatusOr<revocation::Entry> entry = store_.GetRevocation(*sequence);
    if (entry.ok()) {
      view.revocation = *std::move(entry);
    } else if (!absl::IsNotFound(entry.status())) {
      return entry.status();
    }
  }
  return view;
}

absl::StatusOr<std::vector<IdentityView>> Authority::ListIdentities(
    const Caller& caller, const store::IdentityFilter& filter) const {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  TW_ASSIGN_OR_RETURN(std::vector<store::IdentityRecord> records, store_.ListIdentities(filter));
  // Parents are mostly in the same page; the others are read one by one.
  absl::flat_hash_map<std::string, std::string> spiffe_ids;
  for (const store::IdentityRecord& r : records) spiffe_ids[r.instance_id] = r.spiffe_id;
  std::vector<IdentityView> out;
  out.reserve(records.size());
  for (store::IdentityRecord& r : records) {
    auto it = r.parent.empty() ? spiffe_ids.end() : spiffe_ids.find(r.parent);
    if (it != spiffe_ids.end()) {
      out.push_back(IdentityView{.record = std::move(r), .parent_spiffe_id = it->second});
    } else {
      TW_ASSIGN_OR_RETURN(IdentityView view, View(std::move(r)));
      out.push_back(std::move(view));
    }
  }
  return out;
}

absl::StatusOr<std::vector<store::StoredPolicy>> Authority::ListPolicies(
    const Caller& caller) const {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  return store_.ListPolicies();
}

absl::StatusOr<store::StoredPolicy> Authority::GetPolicy(const Caller& caller,
                                                         int64_t version) const {
  TW_RETURN_IF_ERROR(RequireAdmin(caller));
  return store_.GetPolicy(version);
}

absl::StatusOr<std::vector<revocation::Entry>> Authority::RevocationLog(int64_t after,
                                                                        size_t limit) const {
  return store_.ListRevocations(after, limit);
}

absl::StatusOr<RevocationPage> Authority::Revocations(int64_t after, size_t limit) const {
  RevocationPage page;
  page.sequence = hub_.sequence();
  TW_ASSIGN_OR_RETURN(page.entries, store_.ListRevocations(after, limit));
  // Entries committed but not yet published wait for the hub, so that a page never runs
  // ahead of the stream.
  std::erase_if(page.entries, [&page](const auto& e) { return e.sequence > page.sequence; });
  page.more = page.entries.size() == limit && page.entries.back().sequence < page.sequence;
  page.next_after = page.more ? page.entries.back().sequence : std::max(after, page.sequence);
  return page;
}

}  // namespace tw::authority
