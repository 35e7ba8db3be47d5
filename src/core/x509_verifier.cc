#include "core/x509_verifier.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status_macros.h"

namespace tw::core {
namespace {

constexpr size_t kMaxChainLength = 8;

absl::Status Reject(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("X.509-SVID rejected: ", why));
}

absl::Status CheckValidity(const Certificate& c, absl::string_view what, absl::Time now) {
  if (now < c.not_before()) {
    return Reject(
        absl::StrCat(what, " is not yet valid (notBefore ", base::Rfc3339(c.not_before()), ")"));
  }
  if (now > c.not_after()) {
    return Reject(absl::StrCat(what, " expired at ", base::Rfc3339(c.not_after())));
  }
  return absl::OkStatus();
}

// True when `issuer` may have issued `child`: names chain and key identifiers agree.
bool NamesChain(const Certificate& child, const Certificate& issuer) {
  if (!base::Equal(child.issuer(), issuer.subject())) return false;
  return child.authority_key_id().empty() || issuer.subject_key_id().empty() ||
         base::Equal(child.authority_key_id(), issuer.subject_key_id());
}

absl::Status CheckSigningCert(const Certificate& c, size_t intermediates_below,
                              absl::string_view what) {
  if (!c.is_ca()) return Reject(absl::StrCat(what, " is not a CA (cA=false)"));
  if (!c.has_key_usage() || !(c.key_usage() & kKeyCertSign)) {
    return Reject(absl::StrCat(what, " lacks the keyCertSign key usage"));
  }
  if (c.path_len() && static_cast<int64_t>(intermediates_below) > *c.path_len()) {
    return Reject(absl::StrCat(what, " pathLenConstraint is exceeded"));
  }
  if (!c.unhandled_critical_extension().empty()) {
    return Reject(absl::StrCat(what, " has an unsupported critical extension ",
                               c.unhandled_critical_extension()));
  }
  return absl::OkStatus();
}

// The host of a URI ("spiffe://example.org/x" -> "example.org"); empty when it has none.
absl::string_view UriHost(absl::string_view uri) {
  size_t start = uri.find("://");
  if (start == absl::string_view::npos) return {};
  absl::string_view host = uri.substr(start + 3);
  host = host.substr(0, host.find_first_of("/?#"));
  if (size_t at = host.rfind('@'); at != absl::string_view::npos) host = host.substr(at + 1);
  if (!host.empty() && host[0] != '[') host = host.substr(0, host.find(':'));
  return host;
}

// RFC 5280 §4.2.1.10: a URI constraint names a host, or with a leading '.' the hosts
// under a domain; a DNS constraint names a domain and every name under it.
bool Matches(const NameSubtree& s, absl::string_view name) {
  absl::string_view base = s.base;
  if (s.form == NameSubtree::Form::kUri) {
    absl::string_view host = UriHost(name);
    if (host.empty()) return false;
    if (absl::StartsWith(base, ".")) {
      return host.size() > base.size() && absl::EndsWithIgnoreCase(host, base);
    }
    return absl::EqualsIgnoreCase(host, base);
  }
  if (base.empty()) return true;
  if (absl::StartsWith(base, ".")) return absl::EndsWithIgnoreCase(name, base);
  return absl::EqualsIgnoreCase(name, base) ||
         (name.size() > base.size() && absl::EndsWithIgnoreCase(name, base) &&
          name[name.size() - base.size() - 1] == '.');
}

// Applies `ca`'s name constraints to the certificates below it in the path (RFC 5280
// §6.1.3 (b)-(c); self-issued intermediates are exempt).
absl::Status CheckNameConstraints(const Certificate& ca,
                                  const std::vector<const Certificate*>& below,
                                  absl::string_view what) {
  if (!ca.has_name_constraints()) return absl::OkStatus();
  for (size_t i = 0; i < below.size(); ++i) {
    const Certificate& c = *below[i];
    if (i > 0 && c.SelfIssued()) continue;
    for (NameSubtree::Form form : {NameSubtree::Form::kDns, NameSubtree::Form::kUri}) {
      const auto& names = form == NameSubtree::Form::kDns ? c.dns_sans() : c.uri_sans();
      bool any_permitted = false;
      for (const NameSubtree& s : ca.permitted_subtrees()) any_permitted |= s.form == form;
      for (absl::string_view name : names) {
        bool permitted = !any_permitted;
        for (const NameSubtree& s : ca.permitted_subtrees()) {
          permitted |= s.form == form && Matches(s, name);
        }
        bool excluded = false;
        for (const NameSubtree& s : ca.excluded_subtrees()) {
          excluded |= s.form == form && Matches(s, name);
        }
        if (!permitted || excluded) {
          return Reject(absl::StrCat("name \"", absl::CHexEscape(name.substr(0, 128)),
                                     "\" violates the name constraints of the ", what));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace {
std::atomic<uint64_t> next_verifier_id{1};
}  // namespace

X509Verifier::X509Verifier(std::shared_ptr<const BundleSet> bundles, X509VerifierOptions options)
    : bundles_(std::move(bundles)),
      options_(std::move(options)),
      id_(next_verifier_id.fetch_add(1, std::memory_order_relaxed)) {}

X509Verifier::LocalEntry& X509Verifier::LocalSlot(size_t hash) {
  thread_local std::array<LocalEntry, 256> slots;  // direct-mapped by the leaf's hash
  return slots[(hash >> 7) % slots.size()];
}

absl::StatusOr<VerifiedX509Svid> X509Verifier::Verify(
    const std::vector<base::ByteView>& chain) const {
  absl::Time now = options_.clock->Now();
  if (options_.cache_capacity == 0 || chain.empty()) {
    TW_ASSIGN_OR_RETURN(CacheEntry entry, VerifyUncached(chain, now));
    return CheckRevocation(std::move(entry.svid));
  }
  const absl::string_view der = base::AsChars(chain[0]);
  const size_t hash = absl::Hash<absl::string_view>{}(der);
  const uint64_t generation = bundles_->generation();
  auto usable = [&](const CacheEntry& e) {
    return e.generation == generation && now >= e.not_before && now <= e.svid.not_after;
  };
  // This thread's copy first, then the shared shard.
  LocalEntry& local = LocalSlot(hash);
  if (local.verifier == id_ && local.der == der && usable(*local.entry)) {
    return CheckRevocation(local.entry->svid);
  }
  std::optional<CacheEntry> hit;
  Shard& shard = ShardOf(hash);
  {
    absl::ReaderMutexLock lock(&shard.mu);
    auto it = shard.entries.find(der);
    if (it != shard.entries.end() && usable(it->second)) hit = it->second;
  }
  if (!hit) {
    TW_ASSIGN_OR_RETURN(hit, VerifyUncached(chain, now));
    const size_t per_shard = std::max<size_t>(1, options_.cache_capacity / kShards);
    absl::MutexLock lock(&shard.mu);
    if (shard.entries.size() >= per_shard) shard.entries.clear();
    shard.entries.insert_or_assign(std::string(der), *hit);
  }
  // Assigned in place: the slot's buffers are reused.
  local.verifier = id_;
  local.der.assign(der.data(), der.size());
  local.entry = *hit;
  return CheckRevocation(hit->svid);
}

absl::StatusOr<VerifiedX509Svid> X509Verifier::VerifyAt(const std::vector<base::ByteView>& chain,
                                                        absl::Time now) const {
  TW_ASSIGN_OR_RETURN(CacheEntry entry, VerifyUncached(chain, now));
  return CheckRevocation(std::move(entry.svid));
}

absl::StatusOr<VerifiedX509Svid> X509Verifier::CheckRevocation(VerifiedX509Svid svid) const {
  if (options_.revocation_check) TW_RETURN_IF_ERROR(options_.revocation_check(svid));
  return svid;
}

absl::StatusOr<crypto::PublicKey> X509Verifier::IntermediateKey(base::ByteView spki) const {
  constexpr size_t kMaxKeys = 256;
  {
    absl::ReaderMutexLock lock(&keys_mu_);
    auto it = keys_.find(base::AsChars(spki));
    if (it != keys_.end()) return it->second;
  }
  TW_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKey::FromSpkiDer(spki));
  absl::MutexLock lock(&keys_mu_);
  if (keys_.size() >= kMaxKeys) keys_.clear();
  keys_.emplace(std::string(base::AsChars(spki)), key);
  return key;
}

absl::StatusOr<X509Verifier::CacheEntry> X509Verifier::VerifyUncached(
    const std::vector<base::ByteView>& chain, absl::Time now) const {
  if (chain.empty()) return absl::InvalidArgumentError("X.509-SVID: empty certificate chain");
  if (chain.size() > kMaxChainLength) return Reject("certificate chain is too long");
  uint64_t generation = bundles_->generation();
  TW_ASSIGN_OR_RETURN(Certificate leaf,
                      Certificate::Parse(base::Bytes(chain[0].begin(), chain[0].end())));

  // SPIFFE rules on the leaf (X509-SVID §2, §4.1, §4.3, §5.2).
  if (leaf.uri_sans().size() != 1) {
    return Reject(
        absl::StrCat("leaf must have exactly one URI SAN (it has ", leaf.uri_sans().size(), ")"));
  }
  auto id = SpiffeId::FromString(leaf.uri_sans()[0]);
  if (!id.ok()) return Reject(absl::StrCat("leaf URI SAN: ", id.status().message()));
  if (id->is_trust_domain_id())
    return Reject("leaf SPIFFE ID has no path (it names the trust domain)");
  if (leaf.is_ca()) return Reject("leaf is a CA (cA=true)");
  if (!leaf.has_key_usage() || !(leaf.key_usage() & kDigitalSignature)) {
    return Reject("leaf lacks the digitalSignature key usage");
  }
  if (leaf.key_usage() & kKeyCertSign) return Reject("leaf has the keyCertSign key usage");
  if (leaf.key_usage() & kCrlSign) return Reject("leaf has the cRLSign key usage");
  if (!leaf.unhandled_critical_extension().empty()) {
    return Reject(absl::StrCat("leaf has an unsupported critical extension ",
                               leaf.unhandled_critical_extension()));
  }
  // A key no peer could verify a handshake with is refused here too (EC: on-curve check).
  if (auto key = crypto::PublicKey::FromSpkiDer(leaf.spki()); !key.ok()) {
    return Reject(absl::StrCat("leaf ", key.status().message()));
  }
  std::optional<SvidAttributes> attributes;
  bool honour_attributes =
      std::any_of(options_.attribute_trust_domains.begin(), options_.attribute_trust_domains.end(),
                  [&](const TrustDomain& td) { return id->MemberOf(td); });
  if (leaf.attributes() && honour_attributes) {
    auto a = DecodeAttributes(*leaf.attributes());
    if (!a.ok()) return Reject(a.status().message());
    attributes = *std::move(a);
  }

  // The bundle of the leaf's own trust domain (Federation §7.3).
  std::shared_ptr<const Bundle> bundle = bundles_->Get(id->trust_domain_name());
  if (bundle == nullptr) {
    return Reject(absl::StrCat("no bundle for trust domain \"", id->trust_domain_name(), "\""));
  }
  if (bundle->x509_authorities().empty()) {
    return Reject(
        absl::StrCat("the bundle of \"", id->trust_domain_name(), "\" has no X.509 authorities"));
  }

  // RFC 5280 §6 path validation from the leaf up to an authority of that bundle.
  TW_RETURN_IF_ERROR(CheckValidity(leaf, "leaf", now));
  absl::Time not_before = leaf.not_before();
  absl::Time not_after = leaf.not_after();
  std::vector<Certificate> intermediates;
  std::vector<bool> used;
  const Certificate* current = &leaf;
  std::vector<const Certificate*> path = {&leaf};  // verified so far, leaf first
  for (size_t depth = 0;; ++depth) {
    // Every candidate is tried; the first reason one failed is reported if none passes.
    absl::Status failure;
    auto note = [&failure](absl::Status s) {
      if (failure.ok()) failure = std::move(s);
    };
    for (const auto& authority : bundle->x509_authorities()) {
      const Certificate& anchor = authority->certificate;
      if (!NamesChain(*current, anchor) || !authority->key.Accepts(current->signature_scheme())) {
        continue;
      }
      if (!authority->key.Verify(current->signature_scheme(), current->tbs(), current->signature())
               .ok()) {
        note(Reject("a signature does not verify against the bundle authority"));
        continue;
      }
      if (absl::Status s = CheckValidity(anchor, "bundle authority", now); !s.ok()) {
        note(std::move(s));
        continue;
      }
      if (anchor.path_len() && static_cast<int64_t>(depth) > *anchor.path_len()) {
        note(Reject("bundle authority pathLenConstraint is exceeded"));
        continue;
      }
      if (!anchor.unhandled_critical_extension().empty()) {
        note(Reject(absl::StrCat("bundle authority has an unsupported critical extension ",
                                 anchor.unhandled_critical_extension())));
        continue;
      }
      if (absl::Status s = CheckNameConstraints(anchor, path, "bundle authority"); !s.ok()) {
        note(std::move(s));
        continue;
      }
      not_before = std::max(not_before, anchor.not_before());
      not_after = std::min(not_after, anchor.not_after());
      VerifiedX509Svid svid{.spiffe_id = *std::move(id),
                            .attributes = std::move(attributes),
                            .serial_hex = leaf.SerialHex(),
                            .not_after = not_after};
      return CacheEntry{
          .svid = std::move(svid), .not_before = not_before, .generation = generation};
    }
    if (intermediates.empty() && chain.size() > 1) {
      for (size_t i = 1; i < chain.size(); ++i) {
        TW_ASSIGN_OR_RETURN(Certificate c,
                            Certificate::Parse(base::Bytes(chain[i].begin(), chain[i].end())));
        intermediates.push_back(std::move(c));
      }
      used.assign(intermediates.size(), false);
    }
    const Certificate* next = nullptr;
    for (size_t i = 0; i < intermediates.size() && next == nullptr; ++i) {
      const Certificate& cand = intermediates[i];
      if (used[i] || !NamesChain(*current, cand)) continue;
      auto key = IntermediateKey(cand.spki());
      if (!key.ok() || !key->Accepts(current->signature_scheme()) ||
          !key->Verify(current->signature_scheme(), current->tbs(), current->signature()).ok()) {
        note(Reject("a signature does not verify against the presented intermediate"));
        continue;
      }
      absl::Status s = CheckSigningCert(cand, depth, "intermediate CA");
      if (s.ok()) s = CheckValidity(cand, "intermediate CA", now);
      if (s.ok()) s = CheckNameConstraints(cand, path, "intermediate CA");
      if (!s.ok()) {
        note(std::move(s));
        continue;
      }
      not_before = std::max(not_before, cand.not_before());
      not_after = std::min(not_after, cand.not_after());
      used[i] = true;
      next = &cand;
      path.push_back(next);
    }
    if (next == nullptr) {
      if (!failure.ok()) return failure;
      return Reject(absl::StrCat("no path to an authority of trust domain \"",
                                 id->trust_domain_name(), "\""));
    }
    current = next;
  }
}

}  // namespace tw::core
