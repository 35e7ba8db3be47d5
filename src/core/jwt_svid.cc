#include "core/jwt_svid.h"

#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "core/json.h"
#include "crypto/random.h"

namespace tw::core {
namespace {

using nlohmann::json;
using crypto::SignatureScheme;

constexpr size_t kMaxTokenBytes = 16 * 1024;

std::string B64Url(absl::string_view s) { return absl::WebSafeBase64Escape(s); }

bool B64UrlDecode(absl::string_view s, std::string* out) {
  if (s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
      absl::string_view::npos) {
    return false;
  }
  return absl::WebSafeBase64Unescape(s, out);
}

absl::Status Malformed(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("JWT-SVID malformed: ", why));
}
absl::Status Reject(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("JWT-SVID rejected: ", why));
}

// The key type an algorithm demands (RFC 7518 §3.4: ES256 is P-256, ...); nullopt: RSA.
std::optional<crypto::KeyType> EcCurveFor(SignatureScheme s) {
  switch (s) {
    case SignatureScheme::kEcdsaSha256:
      return crypto::KeyType::kEcP256;
    case SignatureScheme::kEcdsaSha384:
      return crypto::KeyType::kEcP384;
    case SignatureScheme::kEcdsaSha512:
      return crypto::KeyType::kEcP521;
    default:
      return std::nullopt;
  }
}

bool KeyFits(const crypto::PublicKey& key, SignatureScheme s) {
  std::optional<crypto::KeyType> curve = EcCurveFor(s);
  return curve ? key.type() == *curve : key.type() == crypto::KeyType::kRsa;
}

std::optional<absl::Time> NumericDate(const json& claims, const char* name, absl::Status* error) {
  if (!claims.contains(name)) return std::nullopt;
  const json& v = claims[name];
  if (!v.is_number() || !std::isfinite(v.get<double>())) {
    *error = Malformed(absl::StrCat("\"", name, "\" is not a NumericDate"));
    return std::nullopt;
  }
  return absl::FromUnixMicros(static_cast<int64_t>(v.get<double>() * 1e6));
}

}  // namespace

absl::StatusOr<std::string> MintJwtSvid(const crypto::Signer& signer, const JwtSvidRequest& r) {
  if (r.audience.empty()) return absl::InvalidArgumentError("JWT-SVID: audience is required");
  if (r.ttl <= absl::ZeroDuration()) return absl::InvalidArgumentError("JWT-SVID: TTL must be positive");
  SignatureScheme scheme = signer.algorithm();
  json header = {{"alg", std::string(crypto::JoseName(scheme))}, {"kid", signer.key_id()}, {"typ", "JWT"}};
  int64_t iat = absl::ToUnixSeconds(r.issued_at);
  json claims = {{"sub", r.subject.str()},
                 {"aud", r.audience},
                 {"exp", iat + absl::ToInt64Seconds(r.ttl)},
                 {"iat", iat},
                 {"jti", B64Url(base::AsChars(crypto::RandomBytes(16)))}};
  if (!r.attributes.scopes.empty()) claims["scope"] = JoinScopes(r.attributes.scopes);
  claims["tw_trust_level"] = std::string(TrustLevelName(r.attributes.trust_level));
  if (r.attributes.policy_version != 0) claims["tw_policy_version"] = r.attributes.policy_version;
  if (r.attributes.parent) claims["tw_parent"] = r.attributes.parent->str();
  if (!r.attributes.principal.empty()) claims["tw_principal"] = r.attributes.principal;
  std::string signing_input = absl::StrCat(B64Url(header.dump()), ".", B64Url(claims.dump()));
  TW_ASSIGN_OR_RETURN(base::Bytes der_sig, signer.Sign(base::AsBytes(signing_input)));
  base::Bytes raw = crypto::EcdsaDerToRaw(der_sig, crypto::FieldBytes(signer.public_key().type()));
  if (raw.empty()) return absl::InternalError("JWT-SVID: signer returned a malformed signature");
  return absl::StrCat(signing_input, ".", B64Url(base::AsChars(raw)));
}

absl::StatusOr<JwtSvid> ValidateJwtSvid(absl::string_view token, absl::string_view audience,
                                        const BundleSet& bundles, absl::Time now) {
  if (audience.empty()) {
    return absl::InvalidArgumentError("JWT-SVID: refusing to validate without an audience");
  }
  if (token.size() > kMaxTokenBytes) return Malformed("token is larger than 16 KiB");
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return Malformed("want three dot-separated parts (JWS compact form)");
  std::string header_text, claims_text, sig;
  if (!B64UrlDecode(parts[0], &header_text) || !B64UrlDecode(parts[1], &claims_text) ||
      !B64UrlDecode(parts[2], &sig)) {
    return Malformed("a part is not unpadded base64url");
  }

  // §3.2 step 2: the header, algorithm first.
  TW_ASSIGN_OR_RETURN(json header, ParseStrictJson(header_text, "JWT-SVID header"));
  if (!header.is_object()) return Malformed("header is not a JSON object");
  if (!header.contains("alg") || !header["alg"].is_string()) return Malformed("header has no alg");
  const std::string& alg = header["alg"].get_ref<const std::string&>();
  std::optional<SignatureScheme> scheme = crypto::SchemeFromJoseName(alg);
  if (!scheme) return Reject(absl::StrCat("algorithm \"", alg.substr(0, 16), "\" is not allowed"));
  for (const auto& [name, value] : header.items()) {
    if (name != "alg" && name != "kid" && name != "typ") {
      return Reject(absl::StrCat("header member \"", name.substr(0, 32), "\" is not allowed"));
    }
  }
  if (header.contains("typ") && header["typ"] != "JWT" && header["typ"] != "JOSE") {
    return Reject("typ must be JWT or JOSE");
  }
  std::optional<std::string> kid;
  if (header.contains("kid")) {
    if (!header["kid"].is_string()) return Malformed("kid is not a string");
    kid = header["kid"].get<std::string>();
  }

  // Step 3: the claims, not yet trusted.
  TW_ASSIGN_OR_RETURN(json claims, ParseStrictJson(claims_text, "JWT-SVID claims"));
  if (!claims.is_object()) return Malformed("claims are not a JSON object");
  if (!claims.contains("sub") || !claims["sub"].is_string()) return Reject("sub is missing");
  auto sub = SpiffeId::FromString(claims["sub"].get_ref<const std::string&>());
  if (!sub.ok()) return Reject(absl::StrCat("sub: ", sub.status().message()));
  absl::Status date_error;
  std::optional<absl::Time> exp = NumericDate(claims, "exp", &date_error);
  std::optional<absl::Time> nbf = NumericDate(claims, "nbf", &date_error);
  std::optional<absl::Time> iat = NumericDate(claims, "iat", &date_error);
  TW_RETURN_IF_ERROR(date_error);
  if (!exp) return Reject("exp is missing");

  // Steps 4-7: the key from sub's own trust domain, then the signature.
  std::shared_ptr<const Bundle> bundle = bundles.Get(sub->trust_domain_name());
  if (bundle == nullptr) {
    return Reject(absl::StrCat("no bundle for trust domain \"", sub->trust_domain_name(), "\""));
  }
  std::string signing_input = absl::StrCat(parts[0], ".", parts[1]);
  base::Bytes der_sig;
  bool found_key = false;
  bool verified = false;
  for (const JwtAuthority& a : bundle->jwt_authorities()) {
    if (kid && a.key_id != *kid) continue;
    if (!KeyFits(a.key, *scheme)) {
      if (kid) return Reject(absl::StrCat("algorithm ", alg, " does not fit the key \"", *kid, "\""));
      continue;
    }
    found_key = true;
    if (crypto::IsEcdsa(*scheme)) {
      if (sig.size() != 2 * crypto::FieldBytes(a.key.type())) break;
      der_sig = crypto::EcdsaRawToDer(base::AsBytes(sig));
    } else {
      der_sig = base::ToBytes(sig);
    }
    if (a.key.Verify(*scheme, base::AsBytes(signing_input), der_sig).ok()) {
      verified = true;
      break;
    }
  }
  if (!found_key) {
    return Reject(kid ? absl::StrCat("no JWT authority with kid \"", kid->substr(0, 64),
                                     "\" in the bundle of \"", sub->trust_domain_name(), "\"")
                      : absl::StrCat("no JWT authority for ", alg, " in the bundle of \"",
                                     sub->trust_domain_name(), "\""));
  }
  if (!verified) return Reject("signature does not verify");

  // Step 8: time.
  if (now > *exp + kJwtLeeway) return Reject("token expired");
  if (nbf && now + kJwtLeeway < *nbf) return Reject("token is not yet valid (nbf)");
  if (iat && now + kJwtLeeway < *iat) return Reject("token was issued in the future (iat)");

  // Step 9: audience membership; aud may be a string or an array of strings.
  if (!claims.contains("aud")) return Reject("aud is missing");
  std::vector<std::string> aud;
  const json& a = claims["aud"];
  if (a.is_string()) {
    aud.push_back(a.get<std::string>());
  } else if (a.is_array() && !a.empty()) {
    for (const json& v : a) {
      if (!v.is_string()) return Malformed("aud holds a non-string");
      aud.push_back(v.get<std::string>());
    }
  } else {
    return Malformed("aud is neither a string nor a non-empty array");
  }
  if (std::find(aud.begin(), aud.end(), audience) == aud.end()) {
    return Reject(absl::StrCat("audience \"", audience.substr(0, 64), "\" is not in aud"));
  }

  JwtSvid out{.subject = *std::move(sub),
              .audience = std::move(aud),
              .expiry = *exp,
              .issued_at = iat,
              .token_id = {},
              .attributes = {}};
  if (claims.contains("jti") && claims["jti"].is_string()) out.token_id = claims["jti"].get<std::string>();
  if (claims.contains("scope")) {
    if (!claims["scope"].is_string()) return Reject("scope is not a string");
    for (absl::string_view s : absl::StrSplit(claims["scope"].get_ref<const std::string&>(), ' ', absl::SkipEmpty())) {
      auto scope = Scope::Parse(s);
      if (!scope.ok()) return Reject(scope.status().message());
      out.attributes.scopes.push_back(*std::move(scope));
    }
  }
  if (claims.contains("tw_trust_level")) {
    if (!claims["tw_trust_level"].is_string()) return Reject("tw_trust_level is not a string");
    auto level = ParseTrustLevel(claims["tw_trust_level"].get_ref<const std::string&>());
    if (!level.ok()) return Reject(level.status().message());
    out.attributes.trust_level = *level;
  }
  if (claims.contains("tw_policy_version")) {
    if (!claims["tw_policy_version"].is_number_unsigned()) return Reject("tw_policy_version is not an unsigned integer");
    out.attributes.policy_version = claims["tw_policy_version"].get<int64_t>();
  }
  if (claims.contains("tw_parent")) {
    if (!claims["tw_parent"].is_string()) return Reject("tw_parent is not a string");
    auto parent = SpiffeId::FromString(claims["tw_parent"].get_ref<const std::string&>());
    if (!parent.ok()) return Reject(absl::StrCat("tw_parent: ", parent.status().message()));
    out.attributes.parent = *std::move(parent);
  }
  if (claims.contains("tw_principal")) {
    if (!claims["tw_principal"].is_string()) return Reject("tw_principal is not a string");
    out.attributes.principal = claims["tw_principal"].get<std::string>();
  }
  return out;
}

}  // namespace tw::core
