#include "core/attributes.h"

#include "crypto/der.h"

namespace tw::core {

namespace der = crypto::der;

base::Bytes EncodeAttributes(const SvidAttributes& a) {
  base::Bytes out;
  der::Writer w(&out);
  size_t seq = w.Open(der::kSequence);
  w.AddUint(1);
  size_t scopes = w.Open(der::kSequence);
  for (const Scope& s : a.scopes) w.Add(der::kUtf8String, base::AsBytes(s.str()));
  w.Close(scopes);
  w.AddUint(static_cast<uint64_t>(a.trust_level), der::kEnumerated);
  w.AddUint(static_cast<uint64_t>(a.policy_version));
  if (a.parent) w.Add(der::ContextPrimitive(0), base::AsBytes(a.parent->str()));
  if (!a.principal.empty()) w.Add(der::ContextPrimitive(1), base::AsBytes(a.principal));
  w.Close(seq);
  return out;
}

absl::StatusOr<SvidAttributes> DecodeAttributes(base::ByteView bytes) {
  auto invalid = [](absl::string_view why) {
    return absl::InvalidArgumentError(std::string("TrustWarden attributes extension: ") +
                                      std::string(why));
  };
  der::Reader outer(bytes), seq(base::ByteView{}), scopes(base::ByteView{});
  int64_t version, level;
  SvidAttributes a;
  if (!outer.Enter(der::kSequence, &seq) || !outer.empty() || !seq.ReadUint(&version) ||
      !seq.Enter(der::kSequence, &scopes) || !seq.ReadUint(&level, der::kEnumerated) ||
      !seq.ReadUint(&a.policy_version)) {
    return invalid("malformed DER");
  }
  if (version != 1) return invalid("unsupported version");
  if (level > static_cast<int64_t>(TrustLevel::kCritical)) return invalid("unknown trust level");
  a.trust_level = static_cast<TrustLevel>(level);
  while (!scopes.empty()) {
    base::ByteView s;
    if (!scopes.Read(der::kUtf8String, &s)) return invalid("malformed scope list");
    auto scope = Scope::Parse(base::AsChars(s));
    if (!scope.ok()) return invalid(scope.status().message());
    a.scopes.push_back(*std::move(scope));
  }
  base::ByteView v;
  bool present;
  if (!seq.ReadOptional(der::ContextPrimitive(0), &v, &present)) return invalid("malformed parent");
  if (present) {
    auto parent = SpiffeId::FromString(base::AsChars(v));
    if (!parent.ok()) return invalid(parent.status().message());
    a.parent = *std::move(parent);
  }
  if (!seq.ReadOptional(der::ContextPrimitive(1), &v, &present)) {
    return invalid("malformed principal");
  }
  if (present) {
    if (v.empty()) return invalid("empty principal");
    a.principal = std::string(base::AsChars(v));
  }
  if (!seq.empty()) return invalid("unexpected trailing fields");
  return a;
}

}  // namespace tw::core
