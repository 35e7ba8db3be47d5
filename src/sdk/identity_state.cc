#include "sdk/identity_state.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "core/certificate.h"
#include "core/x509_issuer.h"
#include "sdk/status_error.h"

namespace trustwarden {
namespace internal {

using nlohmann::json;
namespace core = tw::core;

absl::StatusOr<Issued> AcceptIssued(const Endpoint& endpoint, const json& reply,
                                    const tw::crypto::SoftwareSigner& key,
                                    const tw::base::Clock& clock) {
  const std::string pem = StringMember(reply, "svid_pem").value_or("");
  TW_ASSIGN_OR_RETURN(std::vector<core::Certificate> chain, core::Certificate::ParseChain(pem));
  if (chain.empty()) return absl::UnavailableError("server: the reply has no certificate");
  const tw::base::ByteView spki = chain[0].spki();
  if (tw::base::Bytes(spki.begin(), spki.end()) != key.public_key_der()) {
    return absl::UnavailableError("server: the certificate is not for this identity's key");
  }
  std::vector<tw::base::ByteView> ders;
  for (const core::Certificate& c : chain) ders.emplace_back(c.der());
  core::X509VerifierOptions options;
  options.clock = &clock;
  options.attribute_trust_domains = endpoint.trust_domains;
  core::X509Verifier verifier(endpoint.bundles, options);
  TW_ASSIGN_OR_RETURN(core::VerifiedX509Svid verified, verifier.Verify(ders));
  if (!verified.attributes) return absl::UnavailableError("server: the SVID has no attributes");
  std::string instance_id =
      StringMember(reply, "instance_id").value_or(InstanceOf(verified.spiffe_id));
  return Issued{.credential = {.svid_pem = pem, .svid = std::move(verified)},
                .instance_id = std::move(instance_id)};
}

}  // namespace internal

namespace {

using nlohmann::json;
namespace core = tw::core;

// JWT-SVIDs are reused until this long before they expire.
constexpr absl::Duration kJwtMargin = absl::Minutes(1);

}  // namespace

using State = AgentIdentity::State;

State::State(internal::Endpoint e, internal::Clocks c, internal::Issued first)
    : endpoint(std::move(e)),
      clocks(c),
      clock(*clocks.identity),
      instance_id(std::move(first.instance_id)),
      credential_(std::move(first.credential)),
      issued_at_(clock.Now()),
      recorder(endpoint, instance_id, [this] { renewer.ShipSoon(); }),
      renewer(clock, {.lifetime = [this] { return lifetime(); },
                      .renew =
                          [this] {
                            absl::Status renewed = Renew();
                            if (internal::IsRefusal(renewed)) MarkRevoked();
                            return renewed;
                          },
                      .ship = [this] { return recorder.ShipSpool(Current()); }}) {}

internal::Credential State::Current() const {
  absl::MutexLock lock(&mu_);
  return credential_;
}

internal::Lifetime State::lifetime() const {
  absl::MutexLock lock(&mu_);
  return {.issued = issued_at_, .not_after = credential_.svid.not_after};
}

bool State::IsRevoked() const {
  {
    absl::MutexLock lock(&mu_);
    if (revoked_ || closed_) return true;
  }
  return endpoint.watcher->IsRevoked(instance_id);
}

bool State::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

bool State::ended() const {
  absl::MutexLock lock(&mu_);
  return closed_ || detached_;
}

bool State::marked_revoked() const {
  absl::MutexLock lock(&mu_);
  return revoked_;
}

void State::MarkRevoked() {
  {
    absl::MutexLock lock(&mu_);
    revoked_ = true;
  }
  renewer.StopSoon();
}

void State::MarkClosed() {
  absl::MutexLock lock(&mu_);
  closed_ = revoked_ = true;
}

void State::MarkDetached() {
  absl::MutexLock lock(&mu_);
  detached_ = true;
}

absl::StatusOr<std::string> State::Jwt(const std::string& audience) {
  {
    absl::MutexLock lock(&mu_);
    auto it = jwts_.find(audience);
    if (it != jwts_.end() && it->second.expires - kJwtMargin > clock.Now()) {
      return it->second.token;
    }
  }
  const internal::Credential c = Current();
  TW_ASSIGN_OR_RETURN(auto client, internal::Connect(endpoint, &c));
  TW_ASSIGN_OR_RETURN(const json reply,
                      internal::Post(*client, "/v1/jwt-svids", json{{"audience", {audience}}}));
  const std::string token = internal::StringMember(reply, "token").value_or("");
  absl::Time expires;
  std::string err;
  if (token.empty() ||
      !absl::ParseTime(absl::RFC3339_full, internal::StringMember(reply, "expires_at").value_or(""),
                       &expires, &err)) {
    return absl::UnavailableError("server: the JWT-SVID reply lacks token or expires_at");
  }
  absl::MutexLock lock(&mu_);
  jwts_[audience] = {token, expires};
  return token;
}

absl::StatusOr<bool> State::RecordUnlessRefused(const internal::Credential& c,
                                                const tw::ledger::Event& event) {
  const absl::Status recorded = recorder.Record(c, event);
  if (recorded.ok()) return true;
  if (!internal::IsRefusal(recorded)) return recorded;
  MarkRevoked();
  return false;
}

absl::Status State::Renew() {
  if (renewal_key_ == nullptr) {
    TW_ASSIGN_OR_RETURN(renewal_key_,
                        tw::crypto::SoftwareSigner::Generate(tw::crypto::KeyType::kEcP256));
  }
  TW_ASSIGN_OR_RETURN(const tw::base::Bytes csr, core::BuildCertificateRequest(*renewal_key_));
  const internal::Credential current = Current();
  TW_ASSIGN_OR_RETURN(auto client, internal::Connect(endpoint, &current));
  TW_ASSIGN_OR_RETURN(const json reply,
                      internal::Post(*client, "/v1/identities/renew",
                                     json{{"csr", core::PemEncode("CERTIFICATE REQUEST", csr)}}));
  TW_ASSIGN_OR_RETURN(internal::Issued issued,
                      internal::AcceptIssued(endpoint, reply, *renewal_key_, clock));
  if (issued.credential.svid.spiffe_id.str() != current.svid.spiffe_id.str()) {
    return absl::UnavailableError("server: the renewed SVID names another instance");
  }
  issued.credential.key = std::move(renewal_key_);
  absl::MutexLock lock(&mu_);
  credential_ = std::move(issued.credential);
  issued_at_ = clock.Now();
  jwts_.clear();
  return absl::OkStatus();
}

}  // namespace trustwarden
