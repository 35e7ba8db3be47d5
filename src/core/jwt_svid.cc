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

using crypto::SignatureScheme;
using nlohmann::json;

constexpr size_t kMaxTokenBytes = 16 * 1024;
constexpr double kMaxNumericDate = 253402300799;  // 9999-12-31T23:59:59Z

// Untrusted text quoted in an error message: bounded and escaped (no log injection).
std::string Quote(absl::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, 64)), "\"");
}

std::string JsonString(absl::string_view s) { return json(std::string(s)).dump(); }

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

}  // namespace

absl::StatusOr<std::string> MintJwtSvid(const crypto::Signer& signer, const JwtSvidRequest& r) {
  if (r.audience.empty()) return absl::InvalidArgumentError("JWT-SVID: audience is required");
  if (r.subject.is_trust_domain_id()) {
    return absl::InvalidArgumentError("JWT-SVID: sub must name a workload, not the trust domain");
  }
  if (r.ttl <= absl::ZeroDuration())
    return absl::InvalidArgumentError("JWT-SVID: TTL must be positive");
  // The JSON is written directly (nlohmann escapes every free-form string): building a DOM
  // per token would cost a fifth of the signature itself.
  SignatureScheme scheme = signer.algorithm();
  std::string header = absl::StrCat(R"({"alg":")", crypto::JoseName(scheme), R"(","kid":)",
                                    JsonString(signer.key_id()), R"(,"typ":"JWT"})");
  int64_t iat = absl::ToUnixSeconds(r.issued_at);
  std::string claims = absl::StrCat(R"({"sub":")", r.subject.str(), R"(","aud":[)");
  for (size_t i = 0; i < r.audience.size(); ++i) {
    absl::StrAppend(&claims, i ? "," : "", JsonString(r.audience[i]));
  }
  absl::StrAppend(&claims, R"(],"exp":)", iat + absl::ToInt64Seconds(r.ttl), R"(,"iat":)", iat,
                  R"(,"jti":")", base::Base64UrlEncode(base::AsChars(crypto::RandomBytes(16))),
                  R"(")");
  // Scopes, trust levels and SPIFFE IDs have JSON-safe alphabets by construction.
  if (!r.attributes.scopes.empty()) {
    absl::StrAppend(&claims, R"(,"scope":")", JoinScopes(r.attributes.scopes), R"(")");
  }
  absl::StrAppend(&claims, R"(,"tw_trust_level":")", TrustLevelName(r.attributes.trust_level),
                  R"(")");
  if (r.attributes.policy_version != 0) {
    absl::StrAppend(&claims, R"(,"tw_policy_version":)", r.attributes.policy_version);
  }
  if (r.attributes.parent) {
    absl::StrAppend(&claims, R"(,"tw_parent":")", r.attributes.parent->str(), R"(")");
  }
  if (!r.attributes.principal.empty()) {
    absl::StrAppend(&claims, R"(,"tw_principal":)", JsonString(r.attributes.principal));
  }
  claims.push_back('}');
  std::string signing_input =
      absl::StrCat(base::Base64UrlEncode(header), ".", base::Base64UrlEncode(claims));
  TW_ASSIGN_OR_RETURN(base::Bytes sig, signer.Sign(base::AsBytes(signing_input)));
  const crypto::KeyType type = signer.public_key().type();
  // ECDSA in JOSE's r||s, low-S: one encoding per signature, as strict JOSE verifiers (and
  // token caches keyed by the token) expect. RSA signatures are JOSE's as they are.
  base::Bytes raw =
      crypto::IsEcdsa(scheme)
          ? crypto::EcdsaLowS(type, crypto::EcdsaDerToRaw(sig, crypto::FieldBytes(type)))
          : std::move(sig);
  if (raw.empty()) return absl::InternalError("JWT-SVID: signer returned a malformed signature");
  return absl::StrCat(signing_input, ".", base::Base64UrlEncode(base::AsChars(raw)));
}

absl::StatusOr<JwtSvid> ValidateJwtSvid(absl::string_view token, absl::string_view audience,
                                        const BundleSet& bundles, absl::Time now,
                                        const std::vector<TrustDomain>& attribute_trust_domains) {
  if (audience.empty()) {
    return absl::InvalidArgumentError("JWT-SVID: refusing to validate without an audience");
  }
  if (token.size() > kMaxTokenBytes) return Malformed("token is larger than 16 KiB");
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return Malformed("want three dot-separated parts (JWS compact form)");
  std::string header_text, claims_text, sig;
  if (!base::Base64UrlDecode(parts[0], &header_text) ||
      !base::Base64UrlDecode(parts[1], &claims_text) || !base::Base64UrlDecode(parts[2], &sig)) {
    return Malformed("a part is not unpadded base64url");
  }
  // The signature is outside the signed text: only its canonical spelling is accepted, so a
  // token has one string form (deny lists and replay caches key on it).
  if (base::Base64UrlEncode(sig) != parts[2])
    return Malformed("signature is not canonical base64url");

  // §3.2 step 2: the header, algorithm first. Members are gathered, then judged in order.
  std::optional<json> alg_member, kid_member, typ_member;
  std::string unknown_member;
  TW_RETURN_IF_ERROR(VisitStrictJsonObject(header_text, "JWT-SVID header",
                                           [&](const std::string& name, json&& value) {
                                             if (name == "alg") {
                                               alg_member = std::move(value);
                                             } else if (name == "kid") {
                                               kid_member = std::move(value);
                                             } else if (name == "typ") {
                                               typ_member = std::move(value);
                                             } else if (unknown_member.empty()) {
                                               unknown_member = name;
                                             }
                                             return absl::OkStatus();
                                           }));
  if (!alg_member || !alg_member->is_string()) return Malformed("header has no alg");
  const std::string& alg = alg_member->get_ref<const std::string&>();
  std::optional<SignatureScheme> scheme = crypto::SchemeFromJoseName(alg);
  if (!scheme) return Reject(absl::StrCat("algorithm ", Quote(alg), " is not allowed"));
  if (!unknown_member.empty()) {
    return Reject(absl::StrCat("header member ", Quote(unknown_member), " is not allowed"));
  }
  if (typ_member && *typ_member != "JWT" && *typ_member != "JOSE") {
    return Reject("typ must be JWT or JOSE");
  }
  std::optional<std::string> kid;
  if (kid_member) {
    if (!kid_member->is_string()) return Malformed("kid is not a string");
    kid = kid_member->get<std::string>();
  }

  // Step 3: the claims, not yet trusted; the ones we read are picked out as they stream by.
  std::optional<json> sub_member, aud_member, scope_member, jti_member, level_member, policy_member,
      parent_member, principal_member;
  std::optional<absl::Time> exp, nbf, iat;
  TW_RETURN_IF_ERROR(VisitStrictJsonObject(
      claims_text, "JWT-SVID claims", [&](const std::string& name, json&& value) {
        if (name == "exp" || name == "nbf" || name == "iat") {
          // NumericDate (RFC 7519 §2), bounded to years 1970..9999 so conversion is exact.
          if (!value.is_number() || !std::isfinite(value.get<double>()) ||
              value.get<double>() < 0 || value.get<double>() > kMaxNumericDate) {
            return Malformed(absl::StrCat("\"", name, "\" is not a NumericDate in 1970..9999"));
          }
          absl::Time t = absl::FromUnixMicros(static_cast<int64_t>(value.get<double>() * 1e6));
          (name == "exp" ? exp : name == "nbf" ? nbf : iat) = t;
          return absl::OkStatus();
        }
        std::optional<json>* slot = name == "sub"                 ? &sub_member
                                    : name == "aud"               ? &aud_member
                                    : name == "scope"             ? &scope_member
                                    : name == "jti"               ? &jti_member
                                    : name == "tw_trust_level"    ? &level_member
                                    : name == "tw_policy_version" ? &policy_member
                                    : name == "tw_parent"         ? &parent_member
                                    : name == "tw_principal"      ? &principal_member
                                                                  : nullptr;
        if (slot != nullptr) *slot = std::move(value);
        return absl::OkStatus();
      }));
  if (!sub_member || !sub_member->is_string()) return Reject("sub is missing");
  auto sub = SpiffeId::FromString(sub_member->get_ref<const std::string&>());
  if (!sub.ok()) return Reject(absl::StrCat("sub: ", sub.status().message()));
  if (sub->is_trust_domain_id()) return Reject("sub names the trust domain, not a workload");
  if (!exp) return Reject("exp is missing");

  // Steps 4-7: the key from sub's own trust domain, then the signature.
  std::shared_ptr<const Bundle> bundle = bundles.Get(sub->trust_domain_name());
  if (bundle == nullptr) {
    return Reject(absl::StrCat("no bundle for trust domain \"", sub->trust_domain_name(), "\""));
  }
  // The JWS signing input is the token up to its second dot (RFC 7515 §5.2).
  absl::string_view signing_input = token.substr(0, parts[0].size() + 1 + parts[1].size());
  base::Bytes der_sig;
  bool found_key = false;
  bool verified = false;
  for (const JwtAuthority& a : bundle->jwt_authorities()) {
    if (kid && a.key_id != *kid) continue;
    if (!KeyFits(a.key, *scheme)) {
      if (kid)
        return Reject(
            absl::StrCat("algorithm ", Quote(alg), " does not fit the key ", Quote(*kid)));
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
    return Reject(kid ? absl::StrCat("no JWT authority with kid ", Quote(*kid),
                                     " in the bundle of \"", sub->trust_domain_name(), "\"")
                      : absl::StrCat("no JWT authority for ", Quote(alg), " in the bundle of \"",
                                     sub->trust_domain_name(), "\""));
  }
  if (!verified) return Reject("signature does not verify");

  // Step 8: time.
  if (now > *exp + kJwtLeeway) return Reject("token expired");
  if (nbf && now + kJwtLeeway < *nbf) return Reject("token is not yet valid (nbf)");
  if (iat && now + kJwtLeeway < *iat) return Reject("token was issued in the future (iat)");

  // Step 9: audience membership; aud may be a string or an array of strings.
  if (!aud_member) return Reject("aud is missing");
  std::vector<std::string> aud;
  if (aud_member->is_string()) {
    aud.push_back(aud_member->get<std::string>());
  } else if (aud_member->is_array() && !aud_member->empty()) {
    for (const json& v : *aud_member) {
      if (!v.is_string()) return Malformed("aud holds a non-string");
      aud.push_back(v.get<std::string>());
    }
  } else {
    return Malformed("aud is neither a string nor a non-empty array");
  }
  if (std::find(aud.begin(), aud.end(), audience) == aud.end()) {
    return Reject(absl::StrCat("audience ", Quote(audience), " is not in aud"));
  }

  JwtSvid out{.subject = *std::move(sub),
              .audience = std::move(aud),
              .expiry = *exp,
              .issued_at = iat,
              .token_id = {},
              .attributes = {}};
  if (jti_member && jti_member->is_string()) out.token_id = jti_member->get<std::string>();
  if (std::none_of(attribute_trust_domains.begin(), attribute_trust_domains.end(),
                   [&](const TrustDomain& td) { return out.subject.MemberOf(td); })) {
    return out;
  }
  if (scope_member) {
    if (!scope_member->is_string()) return Reject("scope is not a string");
    for (absl::string_view s :
         absl::StrSplit(scope_member->get_ref<const std::string&>(), ' ', absl::SkipEmpty())) {
      auto scope = Scope::Parse(s);
      if (!scope.ok()) return Reject(scope.status().message());
      out.attributes.scopes.push_back(*std::move(scope));
    }
  }
  if (level_member) {
    if (!level_member->is_string()) return Reject("tw_trust_level is not a string");
    auto level = ParseTrustLevel(level_member->get_ref<const std::string&>());
    if (!level.ok()) return Reject(level.status().message());
    out.attributes.trust_level = *level;
  }
  if (policy_member) {
    if (!policy_member->is_number_unsigned())
      return Reject("tw_policy_version is not an unsigned integer");
    out.attributes.policy_version = policy_member->get<int64_t>();
  }
  if (parent_member) {
    if (!parent_member->is_string()) return Reject("tw_parent is not a string");
    auto parent = SpiffeId::FromString(parent_member->get_ref<const std::string&>());
    if (!parent.ok()) return Reject(absl::StrCat("tw_parent: ", parent.status().message()));
    out.attributes.parent = *std::move(parent);
  }
  if (principal_member) {
    if (!principal_member->is_string()) return Reject("tw_principal is not a string");
    out.attributes.principal = principal_member->get<std::string>();
  }
  return out;
}

}  // namespace tw::core
