#include "core/bundle.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/json.h"

namespace tw::core {
namespace {

using nlohmann::json;

std::string B64Url(base::ByteView b) { return base::Base64UrlEncode(base::AsChars(b)); }

bool B64UrlDecode(const json& v, base::Bytes* out) {
  std::string raw;
  if (!v.is_string() || !base::Base64UrlDecode(v.get_ref<const std::string&>(), &raw)) return false;
  out->assign(raw.begin(), raw.end());
  return true;
}

json KeyMembers(const crypto::PublicKey& k) {
  if (k.type() == crypto::KeyType::kRsa) {
    return {{"kty", "RSA"}, {"n", B64Url(k.rsa_n())}, {"e", B64Url(k.rsa_e())}};
  }
  return {{"kty", "EC"},
          {"crv", std::string(crypto::CurveName(k.type()))},
          {"x", B64Url(k.ec_x())},
          {"y", B64Url(k.ec_y())}};
}

// The key a JWK's members describe; nullopt when they do not describe a supported key.
std::optional<crypto::PublicKey> JwkKey(const json& jwk) {
  const json& kty = jwk["kty"];
  if (kty == "EC") {
    base::Bytes x, y;
    if (!jwk.contains("crv") || !jwk["crv"].is_string() || !jwk.contains("x") ||
        !jwk.contains("y") || !B64UrlDecode(jwk["x"], &x) || !B64UrlDecode(jwk["y"], &y)) {
      return std::nullopt;
    }
    for (crypto::KeyType t :
         {crypto::KeyType::kEcP256, crypto::KeyType::kEcP384, crypto::KeyType::kEcP521}) {
      if (jwk["crv"] == std::string(crypto::CurveName(t))) {
        auto key = crypto::PublicKey::FromEcCoordinates(t, x, y);
        if (key.ok()) return *key;
      }
    }
    return std::nullopt;
  }
  if (kty == "RSA") {
    base::Bytes n, e;
    if (!jwk.contains("n") || !jwk.contains("e") || !B64UrlDecode(jwk["n"], &n) ||
        !B64UrlDecode(jwk["e"], &e)) {
      return std::nullopt;
    }
    auto key = crypto::PublicKey::FromRsaComponents(n, e);
    if (key.ok()) return *key;
  }
  return std::nullopt;
}

bool HasKeyMembers(const json& jwk) {
  for (const char* m : {"crv", "x", "y", "n", "e"}) {
    if (jwk.contains(m)) return true;
  }
  return false;
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("bundle: ", what));
}

absl::StatusOr<TrustDomain> CaTrustDomain(const Certificate& c) {
  if (c.uri_sans().size() == 1) {
    auto id = SpiffeId::FromString(c.uri_sans()[0]);
    if (id.ok() && id->is_trust_domain_id()) return id->trust_domain();
  }
  return Invalid("a CA certificate has no spiffe://TD URI SAN; give the trust domain");
}

absl::StatusOr<std::shared_ptr<const X509Authority>> MakeX509Authority(base::Bytes der) {
  TW_ASSIGN_OR_RETURN(Certificate cert, Certificate::Parse(std::move(der)));
  // A bundle authority signs SVIDs: a leaf published by mistake must not become one.
  if (!cert.is_ca() || (cert.has_key_usage() && !(cert.key_usage() & kKeyCertSign))) {
    return Invalid("an X.509 authority must be a CA certificate (cA=true, keyCertSign)");
  }
  TW_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKey::FromSpkiDer(cert.spki()));
  return std::make_shared<const X509Authority>(
      X509Authority{.certificate = std::move(cert), .key = std::move(key)});
}

}  // namespace

absl::Status Bundle::AddX509Authority(base::Bytes der) {
  TW_ASSIGN_OR_RETURN(auto authority, MakeX509Authority(std::move(der)));
  x509_.push_back(std::move(authority));
  return absl::OkStatus();
}

void Bundle::AddJwtAuthority(std::string key_id, crypto::PublicKey key) {
  jwt_.push_back(JwtAuthority{.key_id = std::move(key_id), .key = std::move(key)});
}

struct Bundle::Contents {
  std::vector<std::shared_ptr<const X509Authority>> cas;
  std::vector<JwtAuthority> jwts;
  std::optional<uint64_t> sequence;
  std::optional<int64_t> refresh_hint;
};

absl::Status Bundle::ReadJson(const nlohmann::json& doc, Contents* out) {
  if (!doc.is_object()) return Invalid("not a JSON object");
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) return Invalid("\"keys\" array missing");
  if (auto s = doc.find("spiffe_sequence"); s != doc.end()) {
    if (!s->is_number_unsigned()) return Invalid("spiffe_sequence is not an unsigned integer");
    out->sequence = s->get<uint64_t>();
  }
  if (auto h = doc.find("spiffe_refresh_hint"); h != doc.end()) {
    if (!h->is_number_integer() || h->get<int64_t>() < 0) {
      return Invalid("spiffe_refresh_hint is not a non-negative integer");
    }
    out->refresh_hint = h->get<int64_t>();
  }
  for (const json& jwk : *keys) {
    // Each rule below ignores one JWK, as §4.2 asks, rather than failing the bundle.
    if (!jwk.is_object() || !jwk.contains("kty") || !jwk.contains("use")) continue;
    if (jwk["use"] == "x509-svid") {
      if (!jwk.contains("x5c") || !jwk["x5c"].is_array() || jwk["x5c"].empty() ||
          !jwk["x5c"][0].is_string()) {
        continue;
      }
      std::string der;
      if (!absl::Base64Unescape(jwk["x5c"][0].get<std::string>(), &der)) continue;
      auto authority = MakeX509Authority(base::ToBytes(der));
      if (!authority.ok()) continue;
      if (HasKeyMembers(jwk)) {
        std::optional<crypto::PublicKey> key = JwkKey(jwk);
        if (!key || !(*key == (*authority)->key)) continue;
      }
      out->cas.push_back(*std::move(authority));
    } else if (jwk["use"] == "jwt-svid") {
      if (!jwk.contains("kid") || !jwk["kid"].is_string() || jwk["kid"] == "") continue;
      std::optional<crypto::PublicKey> key = JwkKey(jwk);
      if (!key) continue;
      out->jwts.push_back(JwtAuthority{.key_id = jwk["kid"].get<std::string>(), .key = *key});
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Bundle> Bundle::FromContents(Contents contents,
                                            std::optional<TrustDomain> trust_domain) {
  if (!trust_domain) {
    std::optional<TrustDomain> found;
    for (const auto& authority : contents.cas) {
      TW_ASSIGN_OR_RETURN(TrustDomain td, CaTrustDomain(authority->certificate));
      if (found && *found != td) return Invalid("CA certificates name different trust domains");
      found = td;
    }
    if (!found) return Invalid("no CA certificate names the trust domain; give it explicitly");
    trust_domain = found;
  }
  Bundle bundle(*std::move(trust_domain));
  bundle.x509_ = std::move(contents.cas);
  bundle.jwt_ = std::move(contents.jwts);
  bundle.sequence_ = contents.sequence;
  bundle.refresh_hint_ = contents.refresh_hint;
  return bundle;
}

absl::StatusOr<Bundle> Bundle::Parse(absl::string_view text,
                                     std::optional<TrustDomain> trust_domain) {
  Contents contents;
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start != absl::string_view::npos && text[start] == '{') {
    TW_ASSIGN_OR_RETURN(json doc, ParseStrictJson(text, "bundle"));
    TW_RETURN_IF_ERROR(ReadJson(doc, &contents));
  } else {
    // PEM has no JWK wrapper to ignore: a certificate that is not a usable CA is an error.
    for (base::Bytes& der : DecodePemBlocks(text, "CERTIFICATE")) {
      TW_ASSIGN_OR_RETURN(auto authority, MakeX509Authority(std::move(der)));
      contents.cas.push_back(std::move(authority));
    }
    if (contents.cas.empty()) return Invalid("neither SPIFFE bundle JSON nor PEM certificates");
  }
  return FromContents(std::move(contents), std::move(trust_domain));
}

absl::StatusOr<std::vector<Bundle>> ParseBundleMap(absl::string_view text) {
  TW_ASSIGN_OR_RETURN(json doc, ParseStrictJson(text, "bundle map"));
  if (!doc.is_object()) return Invalid("bundle map is not a JSON object");
  auto map = doc.find("trust_domains");
  if (map == doc.end() || !map->is_object()) return Invalid("\"trust_domains\" object missing");
  std::vector<Bundle> out;
  for (const auto& [name, value] : map->items()) {
    auto td = TrustDomain::FromNameOrId(name);
    if (!td.ok()) return Invalid(absl::StrCat("bundle map key: ", td.status().message()));
    if (absl::StartsWith(name, "spiffe://") && name != td->IdString()) {
      return Invalid(
          absl::StrCat("bundle map key \"", absl::CHexEscape(name.substr(0, 64)), "\" has a path"));
    }
    for (const Bundle& b : out) {
      if (b.trust_domain() == *td) {
        return Invalid(absl::StrCat("trust domain \"", td->name(), "\" appears twice"));
      }
    }
    Bundle::Contents contents;
    absl::Status s = Bundle::ReadJson(value, &contents);
    if (!s.ok()) return Invalid(absl::StrCat("trust domain \"", td->name(), "\": ", s.message()));
    TW_ASSIGN_OR_RETURN(Bundle b, Bundle::FromContents(std::move(contents), *td));
    out.push_back(std::move(b));
  }
  return out;
}

std::string BundleMapJson(const std::vector<Bundle>& bundles) {
  json map = json::object();
  for (const Bundle& b : bundles) {
    json one = json::parse(b.ToJson());
    one.erase("spiffe_refresh_hint");  // a map's refresh is the map's (§5)
    map[b.trust_domain().name()] = std::move(one);
  }
  return json{{"trust_domains", std::move(map)}}.dump(2) + "\n";
}

void BundleSet::ReplaceAll(std::vector<Bundle> bundles) {
  std::map<std::string, std::shared_ptr<const Bundle>, std::less<>> next;
  for (Bundle& b : bundles) {
    std::string name = b.trust_domain().name();
    next[name] = std::make_shared<const Bundle>(std::move(b));
  }
  absl::MutexLock lock(&mu_);
  bundles_ = std::move(next);
  generation_.fetch_add(1, std::memory_order_release);
}

std::string Bundle::ToJson() const {
  json keys = json::array();
  for (const auto& a : x509_) {
    json jwk = KeyMembers(a->key);
    jwk["use"] = "x509-svid";
    jwk["x5c"] = json::array({absl::Base64Escape(base::AsChars(a->certificate.der()))});
    keys.push_back(std::move(jwk));
  }
  for (const JwtAuthority& a : jwt_) {
    json jwk = KeyMembers(a.key);
    jwk["use"] = "jwt-svid";
    jwk["kid"] = a.key_id;
    keys.push_back(std::move(jwk));
  }
  json doc = {{"keys", std::move(keys)}};
  if (sequence_) doc["spiffe_sequence"] = *sequence_;
  if (refresh_hint_) doc["spiffe_refresh_hint"] = *refresh_hint_;
  return doc.dump(2) + "\n";
}

std::string Bundle::ToPem() const {
  std::vector<base::ByteView> ders;
  for (const auto& a : x509_) ders.push_back(a->certificate.der());
  return CertificatesToPem(ders);
}

void BundleSet::Put(Bundle bundle) {
  auto shared = std::make_shared<const Bundle>(std::move(bundle));
  absl::MutexLock lock(&mu_);
  bundles_[shared->trust_domain().name()] = std::move(shared);
  generation_.fetch_add(1, std::memory_order_release);
}

void BundleSet::Remove(const TrustDomain& td) {
  absl::MutexLock lock(&mu_);
  bundles_.erase(td.name());
  generation_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const Bundle> BundleSet::Get(absl::string_view trust_domain_name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = bundles_.find(trust_domain_name);
  return it == bundles_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const Bundle>> BundleSet::All() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::shared_ptr<const Bundle>> out;
  for (const auto& [name, bundle] : bundles_) out.push_back(bundle);
  return out;
}

uint64_t BundleSet::generation() const { return generation_.load(std::memory_order_acquire); }

}  // namespace tw::core
