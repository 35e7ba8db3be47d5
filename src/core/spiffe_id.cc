#include "core/spiffe_id.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tw::core {
namespace {

constexpr absl::string_view kScheme = "spiffe://";

bool TrustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool PathChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("SPIFFE ID: ", what));
}

std::string Printable(char c) {
  if (c >= 0x21 && c < 0x7f) return absl::StrCat("'", absl::string_view(&c, 1), "'");
  return absl::StrCat("byte 0x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
}

absl::Status CheckTrustDomain(absl::string_view td) {
  if (td.empty()) return Invalid("trust domain is missing");
  if (td.size() > kMaxTrustDomainBytes) return Invalid("trust domain is longer than 255 bytes");
  for (char c : td) {
    if (TrustDomainChar(c)) continue;
    if (c == ':') return Invalid("trust domain contains ':' (a port is not allowed)");
    if (c == '@') return Invalid("trust domain contains '@' (userinfo is not allowed)");
    if (c == '%') return Invalid("trust domain contains '%' (percent-encoding is not allowed)");
    if (c >= 'A' && c <= 'Z') return Invalid("trust domain must be lowercase");
    return Invalid(absl::StrCat("trust domain contains the invalid character ", Printable(c)));
  }
  return absl::OkStatus();
}

absl::Status CheckSegment(absl::string_view seg) {
  if (seg.empty()) return Invalid("path has an empty segment");
  if (seg == "." || seg == "..") return Invalid("path has a '.' or '..' segment");
  for (char c : seg) {
    if (PathChar(c)) continue;
    if (c == '?') return Invalid("a query is not allowed");
    if (c == '#') return Invalid("a fragment is not allowed");
    if (c == '%') return Invalid("path contains '%' (percent-encoding is not allowed)");
    return Invalid(absl::StrCat("path contains the invalid character ", Printable(c)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrustDomain> TrustDomain::FromName(absl::string_view name) {
  if (absl::Status s = CheckTrustDomain(name); !s.ok()) return s;
  return TrustDomain(std::string(name));
}

absl::StatusOr<TrustDomain> TrustDomain::FromNameOrId(absl::string_view s) {
  if (!absl::StartsWith(s, kScheme)) return FromName(s);
  auto id = SpiffeId::FromString(s);
  if (!id.ok()) return id.status();
  return id->trust_domain();
}

absl::StatusOr<SpiffeId> SpiffeId::FromString(absl::string_view id) {
  if (id.empty()) return Invalid("is empty");
  if (id.size() > kMaxSpiffeIdBytes) return Invalid("is longer than 2048 bytes");
  if (!absl::StartsWith(id, kScheme)) {
    if (absl::StartsWithIgnoreCase(id, kScheme))
      return Invalid("scheme must be lowercase 'spiffe'");
    return Invalid("scheme must be 'spiffe://'");
  }
  absl::string_view rest = id.substr(kScheme.size());
  size_t slash = rest.find('/');
  absl::string_view td = rest.substr(0, slash);
  // A query or fragment right after the authority.
  for (char c : {'?', '#'}) {
    if (td.find(c) != absl::string_view::npos) {
      return Invalid(c == '?' ? "a query is not allowed" : "a fragment is not allowed");
    }
  }
  if (absl::Status s = CheckTrustDomain(td); !s.ok()) return s;
  if (slash != absl::string_view::npos) {
    absl::string_view path = rest.substr(slash + 1);
    if (path.empty() || path.back() == '/') return Invalid("path has a trailing '/'");
    for (absl::string_view seg : absl::StrSplit(path, '/')) {
      if (absl::Status s = CheckSegment(seg); !s.ok()) return s;
    }
  }
  return SpiffeId(std::string(id), kScheme.size() + td.size());
}

absl::StatusOr<SpiffeId> SpiffeId::FromSegments(const TrustDomain& td,
                                                const std::vector<absl::string_view>& segments) {
  std::string id = td.IdString();
  for (absl::string_view seg : segments) {
    if (absl::Status s = CheckSegment(seg); !s.ok()) return s;
    absl::StrAppend(&id, "/", seg);
  }
  if (id.size() > kMaxSpiffeIdBytes) return Invalid("is longer than 2048 bytes");
  size_t td_end = kScheme.size() + td.name().size();
  return SpiffeId(std::move(id), td_end);
}

TrustDomain SpiffeId::trust_domain() const { return TrustDomain(std::string(trust_domain_name())); }

absl::string_view SpiffeId::trust_domain_name() const {
  return absl::string_view(id_).substr(kScheme.size(), td_end_ - kScheme.size());
}

absl::string_view SpiffeId::path() const { return absl::string_view(id_).substr(td_end_); }

std::vector<absl::string_view> SpiffeId::segments() const {
  absl::string_view p = path();
  if (p.empty()) return {};
  return absl::StrSplit(p.substr(1), '/');
}

}  // namespace tw::core
