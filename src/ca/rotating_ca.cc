#include "ca/rotating_ca.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/bytes.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "core/certificate.h"
#include "core/spiffe_id.h"
#include "crypto/digest.h"
#include "crypto/pkcs11_signer.h"
#include "crypto/signer_factory.h"
#include "crypto/software_signer.h"
#include "nlohmann/json.hpp"

namespace tw::ca {
namespace {

using json = nlohmann::json;

constexpr AuthorityState kStates[] = {AuthorityState::kPrepared, AuthorityState::kActive,
                                      AuthorityState::kOld, AuthorityState::kRetired,
                                      AuthorityState::kRevoked};

std::string Path(const std::string& dir, absl::string_view name) {
  return absl::StrCat(dir, "/", name);
}

bool Published(AuthorityState s) {
  return s == AuthorityState::kPrepared || s == AuthorityState::kActive ||
         s == AuthorityState::kOld;
}

int64_t Ms(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }
absl::Time FromMs(int64_t ms) { return ms == 0 ? absl::InfinitePast() : absl::FromUnixMillis(ms); }

}  // namespace

absl::string_view AuthorityStateName(AuthorityState state) {
  switch (state) {
    case AuthorityState::kPrepared:
      return "prepared";
    case AuthorityState::kActive:
      return "active";
    case AuthorityState::kOld:
      return "old";
    case AuthorityState::kRetired:
      return "retired";
    case AuthorityState::kRevoked:
      return "revoked";
  }
  return "unknown";
}

// One authority as stored, with the signers of those that sign or will.
struct RotatingCa::Entry {
  int64_t id = 0;
  AuthorityState state = AuthorityState::kActive;
  std::string ca_key, jwt_key;
  std::string chain_pem;  // its CA certificate first, up to the root
  // Upstream mode: the request for its CA certificate, which the root has not signed yet
  // (chain_pem is empty until Activate receives it).
  std::string csr_pem;
  std::string jwt_public_pem;  // the JWT key's public half (kept after the key is gone)
  absl::Time prepared_at = absl::InfinitePast(), activated_at = absl::InfinitePast(),
             deactivated_at = absl::InfinitePast();
  std::shared_ptr<const core::X509Issuer> issuer;  // prepared and active
  std::shared_ptr<const crypto::Signer> jwt;       // prepared and active
};

struct RotatingCa::State {
  std::vector<Entry> entries;
  int64_t sequence = 0;
  size_t active = 0;
  std::shared_ptr<const core::Bundle> bundle, history;
};

RotatingCa::RotatingCa(std::string dir, RotatingCaOptions options)
    : dir_(std::move(dir)), options_(options) {}

bool RotatingCa::Exists(const std::string& dir) {
  return ::access(Path(dir, "authorities.json").c_str(), F_OK) == 0;
}

std::shared_ptr<const RotatingCa::State> RotatingCa::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

std::shared_ptr<const core::X509Issuer> RotatingCa::issuer() const {
  std::shared_ptr<const State> s = state();
  return s->entries[s->active].issuer;
}

std::shared_ptr<const crypto::Signer> RotatingCa::jwt_signer() const {
  std::shared_ptr<const State> s = state();
  return s->entries[s->active].jwt;
}

std::shared_ptr<const core::Bundle> RotatingCa::bundle() const { return state()->bundle; }

absl::Duration RotatingCa::PublishedLongEnough() const { return 3 * options_.refresh_hint; }
std::shared_ptr<const core::Bundle> RotatingCa::history() const { return state()->history; }

void RotatingCa::OnChange(std::function<void(const core::Bundle&)> listener) {
  absl::MutexLock lock(&mu_);
  listeners_.push_back(std::move(listener));
}

absl::StatusOr<std::shared_ptr<const RotatingCa::State>> RotatingCa::Derive(
    std::vector<Entry> entries, int64_t sequence) const {
  auto s = std::make_shared<State>();
  if (entries.empty()) return absl::InvalidArgumentError("authorities.json has no authority");
  TW_ASSIGN_OR_RETURN(std::vector<core::Certificate> first,
                      core::Certificate::ParseChain(entries.front().chain_pem));
  if (first.empty() || first.front().uri_sans().empty()) {
    return absl::InvalidArgumentError("authority 1 has no CA certificate with a SPIFFE ID");
  }
  TW_ASSIGN_OR_RETURN(core::SpiffeId td_id,
                      core::SpiffeId::FromString(first.front().uri_sans()[0]));
  const core::TrustDomain trust_domain = td_id.trust_domain();
  core::Bundle bundle(trust_domain), history(trust_domain);
  bool active = false;
  for (size_t i = 0; i < entries.size(); ++i) {
    Entry& e = entries[i];
    std::vector<base::Bytes> chain = core::DecodePemBlocks(e.chain_pem, "CERTIFICATE");
    const bool awaiting_root =
        chain.empty() && e.state == AuthorityState::kPrepared && !e.csr_pem.empty();
    if (chain.empty() && !awaiting_root)
      return absl::InvalidArgumentError(absl::StrCat("authority ", e.id, ": no chain"));
    TW_ASSIGN_OR_RETURN(crypto::PublicKey jwt_key, crypto::PublicKey::FromPem(e.jwt_public_pem));
    for (core::Bundle* b : {&history, Published(e.state) ? &bundle : nullptr}) {
      if (b == nullptr) continue;
      const bool known =
          chain.empty() || std::any_of(b->x509_authorities().begin(), b->x509_authorities().end(),
                                       [&](const auto& a) {
                                         return base::Equal(a->certificate.der(), chain.back());
                                       });
      if (!known) TW_RETURN_IF_ERROR(b->AddX509Authority(chain.back()));
      b->AddJwtAuthority(jwt_key.Thumbprint(), jwt_key);
    }
    if (e.state == AuthorityState::kActive) {
      if (active) return absl::InvalidArgumentError("authorities.json has two active authorities");
      active = true;
      s->active = i;
    }
    if ((e.state == AuthorityState::kActive || e.state == AuthorityState::kPrepared) &&
        e.issuer == nullptr && !awaiting_root) {
      TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Signer> ca_key, crypto::OpenSigner(e.ca_key));
      TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Signer> jwt, crypto::OpenSigner(e.jwt_key));
      if (jwt->public_key() != jwt_key) {
        return absl::FailedPreconditionError(
            absl::StrCat(e.jwt_key, " is not the JWT key of authority ", e.id));
      }
      TW_ASSIGN_OR_RETURN(core::X509Issuer issuer,
                          core::X509Issuer::Create(std::move(ca_key), std::move(chain)));
      e.issuer = std::make_shared<const core::X509Issuer>(std::move(issuer));
      e.jwt = std::move(jwt);
    }
  }
  if (!active) return absl::InvalidArgumentError("authorities.json has no active authority");
  bundle.set_sequence(sequence);
  bundle.set_refresh_hint_seconds(absl::ToInt64Seconds(options_.refresh_hint));
  history.set_sequence(sequence);
  s->sequence = sequence;
  s->entries = std::move(entries);
  s->bundle = std::make_shared<const core::Bundle>(std::move(bundle));
  s->history = std::make_shared<const core::Bundle>(std::move(history));
  return std::shared_ptr<const State>(std::move(s));
}

absl::Status RotatingCa::Commit(std::shared_ptr<const State> next) {
  json list = json::array();
  for (const Entry& e : next->entries) {
    list.push_back(json{{"id", e.id},
                        {"state", std::string(AuthorityStateName(e.state))},
                        {"ca_key", e.ca_key},
                        {"jwt_key", e.jwt_key},
                        {"chain", e.chain_pem},
                        {"csr", e.csr_pem},
                        {"jwt_public_key", e.jwt_public_pem},
                        {"prepared_at", Ms(e.prepared_at)},
                        {"activated_at", Ms(e.activated_at)},
                        {"deactivated_at", Ms(e.deactivated_at)}});
  }
  const Entry& active = next->entries[next->active];
  // The bundle before the state that names it: a crash in between republishes it.
  TW_RETURN_IF_ERROR(base::WriteFile(Path(dir_, "bundle.json"), next->bundle->ToJson()));
  TW_RETURN_IF_ERROR(base::WriteFile(Path(dir_, "bundle.pem"), next->bundle->ToPem()));
  TW_RETURN_IF_ERROR(base::WriteFile(Path(dir_, "bundle-history.json"), next->history->ToJson()));
  TW_RETURN_IF_ERROR(base::WriteFile(Path(dir_, "ca.pem"), active.chain_pem));
  TW_RETURN_IF_ERROR(base::WriteFile(
      Path(dir_, "authorities.json"),
      json{{"sequence", next->sequence}, {"authorities", std::move(list)}}.dump(2) + "\n", 0600));
  std::vector<std::function<void(const core::Bundle&)>> listeners;
  {
    absl::MutexLock lock(&mu_);
    state_ = next;
    listeners = listeners_;
  }
  for (const auto& listener : listeners) listener(*next->bundle);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RotatingCa>> RotatingCa::Open(const std::string& dir,
                                                             RotatingCaOptions options) {
  std::unique_ptr<RotatingCa> ca(new RotatingCa(dir, options));
  const std::string path = Path(dir, "authorities.json");
  TW_ASSIGN_OR_RETURN(std::string text, base::ReadFile(path));
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("authorities") || !doc["authorities"].is_array()) {
    return absl::InvalidArgumentError(path + ": not an authorities document");
  }
  std::vector<Entry> entries;
  int64_t sequence = 0;
  try {
    sequence = doc.at("sequence").get<int64_t>();
    for (const json& a : doc["authorities"]) {
      Entry e;
      e.id = a.at("id").get<int64_t>();
      const std::string state = a.at("state").get<std::string>();
      bool known = false;
      for (AuthorityState s : kStates) {
        if (AuthorityStateName(s) != state) continue;
        e.state = s;
        known = true;
      }
      if (!known) return absl::InvalidArgumentError(path + ": unknown state " + state);
      e.ca_key = a.at("ca_key").get<std::string>();
      e.jwt_key = a.at("jwt_key").get<std::string>();
      e.chain_pem = a.at("chain").get<std::string>();
      e.csr_pem = a.value("csr", std::string());
      e.jwt_public_pem = a.at("jwt_public_key").get<std::string>();
      e.prepared_at = FromMs(a.at("prepared_at").get<int64_t>());
      e.activated_at = FromMs(a.at("activated_at").get<int64_t>());
      e.deactivated_at = FromMs(a.at("deactivated_at").get<int64_t>());
      entries.push_back(std::move(e));
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  auto state = ca->Derive(std::move(entries), sequence);
  if (!state.ok()) {
    return absl::Status(state.status().code(), absl::StrCat(path, ": ", state.status().message()));
  }
  absl::MutexLock lock(&ca->mu_);
  ca->state_ = *std::move(state);
  return ca;
}

absl::StatusOr<std::unique_ptr<RotatingCa>> RotatingCa::Adopt(const std::string& dir,
                                                              CaDirectory initial,
                                                              CaSigners::Uris initial_uris,
                                                              RotatingCaOptions options) {
  std::unique_ptr<RotatingCa> ca(new RotatingCa(dir, options));
  Entry e{.id = 1,
          .state = AuthorityState::kActive,
          .ca_key = initial_uris.ca,
          .jwt_key = initial_uris.jwt,
          .prepared_at = initial.issuer().certificate().not_before(),
          .activated_at = initial.issuer().certificate().not_before()};
  std::vector<base::ByteView> chain;
  for (const core::Certificate& c : initial.issuer().chain()) chain.push_back(c.der());
  e.chain_pem = core::CertificatesToPem(chain);
  e.jwt_public_pem = core::PemEncode("PUBLIC KEY", initial.jwt_signer().public_key_der());
  std::vector<Entry> entries;
  entries.push_back(std::move(e));
  TW_ASSIGN_OR_RETURN(auto state,
                      ca->Derive(std::move(entries), initial.bundle().sequence().value_or(1)));
  absl::MutexLock change(&ca->change_mu_);
  TW_RETURN_IF_ERROR(ca->Commit(std::move(state)));
  return ca;
}

std::vector<AuthorityInfo> RotatingCa::Status() const {
  std::shared_ptr<const State> s = state();
  std::vector<AuthorityInfo> out;
  for (const Entry& e : s->entries) {
    AuthorityInfo info{.id = e.id,
                       .state = e.state,
                       .ca_key = e.ca_key,
                       .jwt_key = e.jwt_key,
                       .csr_pem = e.csr_pem,
                       .prepared_at = e.prepared_at,
                       .activated_at = e.activated_at,
                       .deactivated_at = e.deactivated_at};
    auto chain = core::Certificate::ParseChain(e.chain_pem);
    if (chain.ok() && !chain->empty()) {
      info.serial = chain->front().SerialHex();
      info.not_after = chain->front().not_after();
      info.fingerprint_sha256 = base::HexEncode(crypto::Sha256(chain->back().der()));
    }
    if (auto key = crypto::PublicKey::FromPem(e.jwt_public_pem); key.ok()) {
      info.jwt_key_id = key->Thumbprint();
    }
    if (e.deactivated_at != absl::InfinitePast()) {
      info.signs_until =
          std::max(std::min(e.deactivated_at + options_.max_svid_lifetime, info.not_after),
                   e.deactivated_at + options_.max_jwt_lifetime);
    }
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<AuthorityInfo> RotatingCa::Prepare(absl::Time now) {
  absl::MutexLock change(&change_mu_);
  std::shared_ptr<const State> s = state();
  for (const Entry& e : s->entries) {
    if (e.state == AuthorityState::kPrepared) {
      return absl::FailedPreconditionError(
          absl::StrCat("authority ", e.id, " is prepared already: activate it (ca activate)"));
    }
  }
  const Entry& active = s->entries[s->active];
  const bool upstream = active.issuer->chain().size() > 1;
  int64_t id = 0;
  for (const Entry& e : s->entries) id = std::max(id, e.id);
  ++id;
  const crypto::KeyType type = active.issuer->signer().public_key().type();
  // Keys where the active ones live: the same token, or files beside the directory's.
  auto make_key = [&](const std::string& like,
                      absl::string_view role) -> absl::StatusOr<std::string> {
    if (absl::StartsWith(like, "pkcs11:")) {
      TW_ASSIGN_OR_RETURN(crypto::Pkcs11Uri uri, crypto::ParsePkcs11Uri(like));
      const std::string label =
          absl::StrCat(uri.object.empty() ? "trustwarden" : uri.object, "-", id);
      uri.object.clear();
      uri.id.clear();
      return crypto::GeneratePkcs11Key(uri, label, type);
    }
    const std::string path = Path(dir_, absl::StrCat(role, "-", id, ".key.pem"));
    TW_ASSIGN_OR_RETURN(auto key, crypto::SoftwareSigner::Generate(type));
    TW_RETURN_IF_ERROR(key->WriteFile(path));
    return crypto::FileKeyUri(path);
  };
  Entry next{.id = id, .state = AuthorityState::kPrepared, .prepared_at = now};
  TW_ASSIGN_OR_RETURN(next.ca_key, make_key(active.ca_key, "ca"));
  TW_ASSIGN_OR_RETURN(next.jwt_key, make_key(active.jwt_key, "jwt"));
  TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Signer> ca_key, crypto::OpenSigner(next.ca_key));
  TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Signer> jwt, crypto::OpenSigner(next.jwt_key));
  if (upstream) {
    // The root signs the request where it lives (ca sign-intermediate); Activate takes
    // the chain it returns.
    TW_ASSIGN_OR_RETURN(base::Bytes csr, core::BuildCertificateRequest(*ca_key));
    next.csr_pem = core::PemEncode("CERTIFICATE REQUEST", csr);
  } else {
    TW_ASSIGN_OR_RETURN(base::Bytes der,
                        core::X509Issuer::SelfSignedCa(*ca_key, {.trust_domain = trust_domain(),
                                                                 .not_before = now - kBackdate,
                                                                 .not_after = now + options_.ca_ttl,
                                                                 .path_len = std::nullopt}));
    next.chain_pem = core::PemEncode("CERTIFICATE", der);
  }
  next.jwt_public_pem = core::PemEncode("PUBLIC KEY", jwt->public_key_der());
  std::vector<Entry> entries = s->entries;
  entries.push_back(std::move(next));
  TW_ASSIGN_OR_RETURN(auto derived, Derive(std::move(entries), s->sequence + 1));
  TW_RETURN_IF_ERROR(Commit(derived));
  return Status().back();
}

absl::StatusOr<AuthorityInfo> RotatingCa::Activate(absl::Time now, bool now_anyway,
                                                   absl::string_view chain_pem) {
  absl::MutexLock change(&change_mu_);
  std::shared_ptr<const State> s = state();
  std::vector<Entry> entries = s->entries;
  auto prepared = std::find_if(entries.begin(), entries.end(),
                               [](const Entry& e) { return e.state == AuthorityState::kPrepared; });
  if (prepared == entries.end()) {
    return absl::FailedPreconditionError("no authority is prepared: ca prepare first");
  }
  if (prepared->chain_pem.empty() && chain_pem.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "authority ", prepared->id,
        " awaits the upstream root's signature: sign its request where the root lives (ca "
        "sign-intermediate) and activate it with the chain (ca activate --chain)"));
  }
  if (!prepared->chain_pem.empty() && !chain_pem.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("authority ", prepared->id, " has its CA certificate already: no --chain"));
  }
  if (!chain_pem.empty()) {
    // The same root as the active authority's, so that the bundle's X.509 part is unchanged.
    std::vector<base::Bytes> chain = core::DecodePemBlocks(chain_pem, "CERTIFICATE");
    TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Signer> ca_key,
                        crypto::OpenSigner(prepared->ca_key));
    TW_ASSIGN_OR_RETURN(core::X509Issuer issuer,
                        UpstreamIssuer(std::move(ca_key), chain, base::Clock::System()));
    if (issuer.trust_domain() != trust_domain()) {
      return absl::InvalidArgumentError(absl::StrCat("the chain is for trust domain ",
                                                     issuer.trust_domain().name(), ", not ",
                                                     trust_domain().name()));
    }
    const auto& roots = s->bundle->x509_authorities();
    if (!std::any_of(roots.begin(), roots.end(), [&](const auto& a) {
          return base::Equal(a->certificate.der(), chain.back());
        })) {
      return absl::InvalidArgumentError(
          "the chain ends with another root than the bundle's: a new root is not a rotation");
    }
    std::vector<base::ByteView> views(chain.begin(), chain.end());
    prepared->chain_pem = core::CertificatesToPem(views);
    prepared->csr_pem.clear();
  }
  const absl::Time published_enough = prepared->prepared_at + PublishedLongEnough();
  if (!now_anyway && now < published_enough) {
    return absl::FailedPreconditionError(absl::StrCat(
        "authority ", prepared->id, " was published ",
        absl::FormatDuration(absl::Trunc(now - prepared->prepared_at, absl::Seconds(1))),
        " ago; verifiers refresh the bundle every ", absl::ToInt64Seconds(options_.refresh_hint),
        "s and it must be published for 3 of those: activate it after ",
        absl::FormatTime(absl::RFC3339_sec, published_enough, absl::UTCTimeZone()),
        " (or now anyway: --force)"));
  }
  const int64_t id = prepared->id;
  prepared->state = AuthorityState::kActive;
  prepared->activated_at = now;
  Entry& old = entries[s->active];
  old.state = AuthorityState::kOld;
  old.deactivated_at = now;
  old.issuer = nullptr;  // it signs nothing more
  old.jwt = nullptr;
  TW_ASSIGN_OR_RETURN(auto derived, Derive(std::move(entries), s->sequence + 1));
  TW_RETURN_IF_ERROR(Commit(derived));
  for (const AuthorityInfo& info : Status()) {
    if (info.id == id) return info;
  }
  return absl::InternalError("the activated authority vanished");
}

absl::Status RotatingCa::Retire(int64_t id, absl::Time now) {
  absl::MutexLock change(&change_mu_);
  std::shared_ptr<const State> s = state();
  const std::vector<AuthorityInfo> infos = Status();
  auto info =
      std::find_if(infos.begin(), infos.end(), [id](const AuthorityInfo& i) { return i.id == id; });
  if (info == infos.end()) return absl::NotFoundError(absl::StrCat("no authority ", id));
  if (info->state != AuthorityState::kOld) {
    return absl::FailedPreconditionError(absl::StrCat(
        "authority ", id, " is ", AuthorityStateName(info->state), ": only an old one retires"));
  }
  if (now < info->signs_until) {
    return absl::FailedPreconditionError(
        absl::StrCat("authority ", id, " may have signed SVIDs valid until ",
                     absl::FormatTime(absl::RFC3339_sec, info->signs_until, absl::UTCTimeZone()),
                     ": retire it after that (or ca revoke-authority to remove it now)"));
  }
  std::vector<Entry> entries = s->entries;
  for (Entry& e : entries) {
    if (e.id == id) e.state = AuthorityState::kRetired;
  }
  TW_ASSIGN_OR_RETURN(auto derived, Derive(std::move(entries), s->sequence + 1));
  return Commit(derived);
}

absl::StatusOr<std::vector<int64_t>> RotatingCa::RetireExpired(absl::Time now) {
  std::vector<int64_t> retired;
  std::optional<absl::Time> first;
  for (const AuthorityInfo& a : Status()) {
    if (a.state != AuthorityState::kOld) continue;
    if (now >= a.signs_until) {
      TW_RETURN_IF_ERROR(Retire(a.id, now));
      retired.push_back(a.id);
    } else if (!first || a.signs_until < *first) {
      first = a.signs_until;
    }
  }
  if (retired.empty() && !first) return absl::FailedPreconditionError("no authority is old");
  if (retired.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("old authorities may have signed SVIDs valid until ",
                     absl::FormatTime(absl::RFC3339_sec, *first, absl::UTCTimeZone()),
                     ": retire them after that (or ca revoke-authority to remove one now)"));
  }
  return retired;
}

absl::StatusOr<std::vector<std::pair<int64_t, AuthorityState>>> RotatingCa::RotateOnSchedule(
    absl::Time now, absl::Duration period) {
  std::vector<std::pair<int64_t, AuthorityState>> changes;
  if (auto retired = RetireExpired(now); retired.ok()) {
    for (int64_t id : *retired) changes.emplace_back(id, AuthorityState::kRetired);
  }
  std::vector<AuthorityInfo> status = Status();
  auto active = std::find_if(status.begin(), status.end(), [](const AuthorityInfo& a) {
    return a.state == AuthorityState::kActive;
  });
  auto prepared = std::find_if(status.begin(), status.end(), [](const AuthorityInfo& a) {
    return a.state == AuthorityState::kPrepared;
  });
  if (active == status.end()) return changes;
  if (prepared == status.end() && now >= active->activated_at + period * 5 / 6) {
    if (issuer()->chain().size() > 1) return changes;  // upstream mode: by hand, as the root signs
    TW_ASSIGN_OR_RETURN(AuthorityInfo made, Prepare(now));
    changes.emplace_back(made.id, AuthorityState::kPrepared);
  } else if (prepared != status.end() && prepared->csr_pem.empty() &&
             now >= active->activated_at + period &&
             now >= prepared->prepared_at + PublishedLongEnough()) {
    TW_ASSIGN_OR_RETURN(AuthorityInfo made, Activate(now));
    changes.emplace_back(made.id, AuthorityState::kActive);
  }
  return changes;
}

absl::Status RotatingCa::RevokeAuthority(int64_t id, absl::Time now) {
  absl::MutexLock change(&change_mu_);
  std::shared_ptr<const State> s = state();
  std::vector<Entry> entries = s->entries;
  auto e =
      std::find_if(entries.begin(), entries.end(), [id](const Entry& x) { return x.id == id; });
  if (e == entries.end()) return absl::NotFoundError(absl::StrCat("no authority ", id));
  if (e->state == AuthorityState::kActive) {
    return absl::FailedPreconditionError(absl::StrCat(
        "authority ", id, " is the active one: prepare and activate another, then revoke it"));
  }
  if (!Published(e->state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("authority ", id, " is ", AuthorityStateName(e->state), " already"));
  }
  // An intermediate under the root the bundle keeps for the others: leaving the bundle would
  // not untrust what it signed, and saying it was revoked would mislead.
  const std::vector<base::Bytes> chain = core::DecodePemBlocks(e->chain_pem, "CERTIFICATE");
  if (chain.size() > 1) {
    for (const Entry& other : entries) {
      if (other.id == id || !Published(other.state)) continue;
      const std::vector<base::Bytes> theirs = core::DecodePemBlocks(other.chain_pem, "CERTIFICATE");
      if (!theirs.empty() && theirs.back() == chain.back()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "authority ", id, " is an intermediate of the upstream root authority ", other.id,
            " also chains to: the bundle keeps that root, so what it signed stays trusted until "
            "the intermediate expires; stop trusting it at the root (a new root), not here"));
      }
    }
  }
  e->state = AuthorityState::kRevoked;
  if (e->deactivated_at == absl::InfinitePast()) e->deactivated_at = now;
  e->issuer = nullptr;
  e->jwt = nullptr;
  TW_ASSIGN_OR_RETURN(auto derived, Derive(std::move(entries), s->sequence + 1));
  return Commit(derived);
}

}  // namespace tw::ca
