#include "trustwarden/verifier.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "core/certificate.h"
#include "core/jwt_svid.h"
#include "core/scope.h"
#include "sdk/identity_state.h"
#include "sdk/peer_check.h"
#include "sdk/status_error.h"

namespace trustwarden {
namespace internal {
namespace {

namespace core = tw::core;

Decision Refuse(std::string reason) {
  Decision d;
  d.reason = std::move(reason);
  return d;
}

// Fails closed on a stale stream; refuses an instance revoked by the stream that speaks for
// its trust domain (ours, or a followed federated domain's). A federated domain's peer also
// needs our own stream fresh: the federated bundles and grants come through it.
absl::Status Live(const Endpoint& endpoint, const core::SpiffeId& id) {
  const RevocationWatcher* watcher = WatcherFor(endpoint, id);
  const absl::Duration bound = endpoint.max_staleness;
  if (endpoint.watcher != nullptr && watcher != endpoint.watcher.get()) {
    if (absl::Status fresh = endpoint.watcher->CheckFresh(bound); !fresh.ok()) {
      return absl::UnavailableError(absl::StrCat("fail closed: ", fresh.message()));
    }
  }
  if (watcher == nullptr) return absl::OkStatus();
  const RevocationWatcher::Standing standing = watcher->StandingOf(InstanceOf(id), bound);
  if (!standing.fresh.ok()) {
    return absl::UnavailableError(absl::StrCat("fail closed: ", standing.fresh.message()));
  }
  if (standing.revoked) return absl::PermissionDeniedError(absl::StrCat(id.str(), " is revoked"));
  return absl::OkStatus();
}

// `endpoint` outlives the verifier (both are PeerCheck's).
core::X509VerifierOptions VerifierOptionsFor(const Endpoint& endpoint) {
  core::X509VerifierOptions options;
  options.attribute_trust_domains = endpoint.trust_domains;
  options.revocation_check = [&endpoint](const core::VerifiedX509Svid& svid) {
    return Live(endpoint, svid.spiffe_id);
  };
  return options;
}

}  // namespace

PeerCheck::PeerCheck(Endpoint endpoint)
    : endpoint_(std::move(endpoint)), x509_(endpoint_.bundles, VerifierOptionsFor(endpoint_)) {}

bool PeerCheck::Ours(const core::SpiffeId& id) const {
  return std::any_of(endpoint_.trust_domains.begin(), endpoint_.trust_domains.end(),
                     [&](const core::TrustDomain& td) { return id.MemberOf(td); });
}

absl::StatusOr<Decision> PeerCheck::Judge(const core::SpiffeId& id,
                                          const core::SvidAttributes* attributes,
                                          const Requirement& r) const {
  Decision d;
  d.spiffe_id = id.str();
  d.instance_id = InstanceOf(id);
  // Ours carry their scopes; a federated domain's hold what our policy grants them, and
  // one it grants nothing is refused unless `r` names it or its domain.
  const bool ours = Ours(id);
  std::vector<core::Scope> foreign;
  if (!ours && endpoint_.watcher != nullptr) {
    foreign = core::ForeignScopes(*endpoint_.watcher->ForeignGrants(), id);
  }
  const std::vector<core::Scope>& scopes = attributes != nullptr ? attributes->scopes : foreign;
  for (const core::Scope& s : scopes) d.scopes.push_back(s.str());
  if (attributes != nullptr) {
    d.trust_level = std::string(core::TrustLevelName(attributes->trust_level));
  }
  const bool listed =
      std::find(r.spiffe_ids.begin(), r.spiffe_ids.end(), id.str()) != r.spiffe_ids.end();
  const bool in_domain = !r.trust_domain.empty() && id.trust_domain_name() == r.trust_domain;
  if (!ours && foreign.empty() && !listed && !in_domain) {
    d.reason = absl::StrCat(id.str(), " is of federated trust domain ", id.trust_domain_name(),
                            " and our policy grants it nothing");
  } else if (!r.spiffe_ids.empty() && !listed) {
    d.reason = absl::StrCat(id.str(), " is not an allowed peer");
  } else if (!r.trust_domain.empty() && !in_domain) {
    d.reason = absl::StrCat(id.str(), " is not in trust domain ", r.trust_domain);
  } else if (!r.scope.empty()) {
    TW_ASSIGN_OR_RETURN(const core::Scope scope, core::Scope::Parse(r.scope));
    if (!core::ScopesAllow(scopes, scope))
      d.reason = absl::StrCat("scope ", r.scope, " is not granted to ", id.str());
  }
  if (d.reason.empty() && !r.min_trust_level.empty()) {
    TW_ASSIGN_OR_RETURN(const core::TrustLevel needed, core::ParseTrustLevel(r.min_trust_level));
    if (attributes == nullptr || attributes->trust_level < needed) {
      d.reason = absl::StrCat(id.str(), " is below trust level ", r.min_trust_level);
    }
  }
  d.allowed = d.reason.empty();
  return d;
}

absl::StatusOr<Decision> PeerCheck::CheckX509(const std::vector<tw::base::ByteView>& chain,
                                              const Requirement& r) const {
  absl::StatusOr<core::VerifiedX509Svid> svid = x509_.Verify(chain);
  if (!svid.ok()) return Refuse(std::string(svid.status().message()));
  return Judge(svid->spiffe_id, svid->attributes ? &*svid->attributes : nullptr, r);
}

absl::StatusOr<Decision> PeerCheck::CheckJwt(const std::string& token, const std::string& audience,
                                             const Requirement& r) const {
  const bool has_jwt_keys =
      std::any_of(endpoint_.trust_domains.begin(), endpoint_.trust_domains.end(),
                  [&](const core::TrustDomain& td) {
                    std::shared_ptr<const core::Bundle> b = endpoint_.bundles->Get(td.name());
                    return b != nullptr && !b->jwt_authorities().empty();
                  });
  if (!has_jwt_keys) {
    return Refuse(
        "the trust bundle holds no JWT-SVID keys (a PEM bundle has only X.509 authorities): "
        "give the SPIFFE bundle JSON, e.g. trustwarden-data/bundle.json");
  }
  absl::StatusOr<core::JwtSvid> jwt = core::ValidateJwtSvid(token, audience, *endpoint_.bundles,
                                                            absl::Now(), endpoint_.trust_domains);
  if (!jwt.ok()) return Refuse(std::string(jwt.status().message()));
  if (absl::Status live = Live(endpoint_, jwt->subject); !live.ok()) {
    return Refuse(std::string(live.message()));
  }
  return Judge(jwt->subject, Ours(jwt->subject) ? &jwt->attributes : nullptr, r);
}

}  // namespace internal

struct Verifier::Impl {
  std::shared_ptr<const internal::PeerCheck> check;
  std::string audience;
  AgentIdentity* recorder;

  // A recorded verification names what it was about.
  absl::Status CheckRecordable(const Requirement& r) const {
    if (recorder != nullptr && (r.resource.empty() || r.scope.empty())) {
      return absl::InvalidArgumentError(
          "a recorded verification needs Requirement.resource and Requirement.scope");
    }
    return absl::OkStatus();
  }

  // Records `d` as an observation signed by the recorder (its subject), naming the caller
  // when its SVID verified.
  absl::Status Record(Decision& d, const Requirement& r) const {
    if (recorder == nullptr) return absl::OkStatus();
    AgentIdentity::State& state = *internal::Access::Of(*recorder);
    const internal::Credential c = state.Current();
    tw::ledger::Event e = internal::SubjectEvent(c, "observation", state.clock.Now());
    e.caller = d.spiffe_id;
    e.resource = r.resource;
    e.action = r.scope;
    e.decision = d.allowed ? "allow" : "deny";
    e.reason = d.reason;
    TW_RETURN_IF_ERROR(state.recorder.Record(c, e));
    d.event_id = e.id;
    return absl::OkStatus();
  }

  absl::StatusOr<Decision> VerifyX509(const std::string& chain_pem, const Requirement& r) const {
    TW_RETURN_IF_ERROR(CheckRecordable(r));
    absl::StatusOr<Decision> d = DecideX509(chain_pem, r);
    if (d.ok()) TW_RETURN_IF_ERROR(Record(*d, r));
    return d;
  }

  absl::StatusOr<Decision> DecideX509(const std::string& chain_pem, const Requirement& r) const {
    auto chain = tw::core::Certificate::ParseChain(chain_pem);
    if (!chain.ok()) return internal::Refuse(std::string(chain.status().message()));
    if (chain->empty()) return internal::Refuse("no certificate");
    std::vector<tw::base::ByteView> ders;
    for (const tw::core::Certificate& c : *chain) ders.emplace_back(c.der());
    return check->CheckX509(ders, r);
  }

  absl::StatusOr<Decision> VerifyJwt(const std::string& token, const Requirement& r) const {
    TW_RETURN_IF_ERROR(CheckRecordable(r));
    if (audience.empty()) {
      return absl::FailedPreconditionError(
          "VerifierOptions.audience is needed to verify JWT-SVIDs");
    }
    absl::StatusOr<Decision> d = check->CheckJwt(token, audience, r);
    if (d.ok()) TW_RETURN_IF_ERROR(Record(*d, r));
    return d;
  }
};

Verifier::Verifier(VerifierOptions options)
    : impl_(
          new Impl{std::make_shared<internal::PeerCheck>(internal::ValueOrThrow(
                       internal::ResolveWatched(options.connection, tw::base::Clock::Monotonic()))),
                   std::move(options.audience), options.recorder}) {}
Verifier::~Verifier() = default;
Verifier::Verifier(Verifier&&) noexcept = default;
Verifier& Verifier::operator=(Verifier&&) noexcept = default;

Decision Verifier::verify_x509(const std::string& chain_pem, const Requirement& r) const {
  return internal::ValueOrThrow(impl_->VerifyX509(chain_pem, r));
}

Decision Verifier::verify_jwt(const std::string& token, const Requirement& r) const {
  return internal::ValueOrThrow(impl_->VerifyJwt(token, r));
}

}  // namespace trustwarden
