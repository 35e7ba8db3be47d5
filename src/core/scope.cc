#include "core/scope.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tw::core {
namespace {

constexpr size_t kMaxScopeBytes = 256;

bool NameChar(char c, bool object) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
      c == '-') {
    return true;
  }
  return object && (c == '.' || c == '/');
}

absl::Status Invalid(absl::string_view scope, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("scope \"", absl::CHexEscape(scope.substr(0, 64)), "\": ", why));
}

}  // namespace

absl::StatusOr<Scope> Scope::Parse(absl::string_view s) {
  if (s.size() > kMaxScopeBytes) return Invalid(s, "longer than 256 bytes");
  size_t colon = s.find(':');
  if (colon == absl::string_view::npos) return Invalid(s, "must be action:object");
  absl::string_view action = s.substr(0, colon);
  absl::string_view object = s.substr(colon + 1);
  if (action.empty()) return Invalid(s, "action is empty");
  if (action != "*") {
    for (char c : action) {
      if (!NameChar(c, false)) return Invalid(s, "action has an invalid character");
    }
  }
  if (object.empty()) return Invalid(s, "object is empty");
  bool wildcard = object.back() == '*';
  absl::string_view prefix = wildcard ? object.substr(0, object.size() - 1) : object;
  for (char c : prefix) {
    if (!NameChar(c, true)) return Invalid(s, "object has an invalid character");
  }
  return Scope(std::string(s), colon, wildcard);
}

absl::string_view Scope::object_prefix() const {
  absl::string_view object = absl::string_view(text_).substr(colon_ + 1);
  return wildcard_ ? object.substr(0, object.size() - 1) : object;
}

bool Scope::Covers(const Scope& requested) const {
  absl::string_view a = action();
  if (a != "*" && a != requested.action()) return false;
  absl::string_view prefix = object_prefix();
  absl::string_view want = requested.object_prefix();
  if (!wildcard_) return !requested.wildcard_ && prefix == want;
  return want.substr(0, prefix.size()) == prefix;
}

bool Scope::Overlaps(const Scope& other) const {
  if (action() != "*" && other.action() != "*" && action() != other.action()) return false;
  absl::string_view a = object_prefix(), b = other.object_prefix();
  if (wildcard_ && other.wildcard_) return absl::StartsWith(a, b) || absl::StartsWith(b, a);
  if (wildcard_) return absl::StartsWith(b, a);
  if (other.wildcard_) return absl::StartsWith(a, b);
  return a == b;
}

absl::StatusOr<std::vector<Scope>> ParseScopes(const std::vector<std::string>& scopes) {
  std::vector<Scope> out;
  out.reserve(scopes.size());
  for (const std::string& s : scopes) {
    auto scope = Scope::Parse(s);
    if (!scope.ok()) return scope.status();
    out.push_back(*std::move(scope));
  }
  return out;
}

bool ScopesAllow(const std::vector<Scope>& granted, const Scope& requested) {
  for (const Scope& g : granted) {
    if (g.Covers(requested)) return true;
  }
  return false;
}

absl::Status CheckScopesCovered(const std::vector<Scope>& granted,
                                const std::vector<Scope>& requested) {
  for (const Scope& r : requested) {
    if (!ScopesAllow(granted, r)) {
      return absl::PermissionDeniedError(
          absl::StrCat("scope \"", r.str(), "\" is not covered by the granted scopes"));
    }
  }
  return absl::OkStatus();
}

std::string JoinScopes(const std::vector<Scope>& scopes) {
  return absl::StrJoin(scopes, " ", [](std::string* out, const Scope& s) { out->append(s.str()); });
}

absl::StatusOr<TrustLevel> ParseTrustLevel(absl::string_view s) {
  for (TrustLevel l :
       {TrustLevel::kLow, TrustLevel::kMedium, TrustLevel::kHigh, TrustLevel::kCritical}) {
    if (TrustLevelName(l) == s) return l;
  }
  return absl::InvalidArgumentError(absl::StrCat("trust level \"",
                                                 absl::CHexEscape(s.substr(0, 32)),
                                                 "\": want low, medium, high or critical"));
}

absl::string_view TrustLevelName(TrustLevel level) {
  switch (level) {
    case TrustLevel::kLow:
      return "low";
    case TrustLevel::kMedium:
      return "medium";
    case TrustLevel::kHigh:
      return "high";
    case TrustLevel::kCritical:
      return "critical";
  }
  return "low";
}

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view s) {
  auto invalid = [s](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("duration \"", absl::CHexEscape(s.substr(0, 32)), "\": ", why));
  };
  if (s.empty()) return invalid("is empty");
  int64_t total = 0;
  constexpr int64_t kMax = int64_t{3650} * 86400;
  while (!s.empty()) {
    size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    if (digits == 0 || digits > 10 || digits == s.size()) {
      return invalid("want a number and a unit (s, m, h, d), e.g. 30m");
    }
    int64_t n;
    if (!absl::SimpleAtoi(s.substr(0, digits), &n)) return invalid("bad number");
    int64_t unit;
    switch (s[digits]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        return invalid("unit must be s, m, h or d");
    }
    total += n * unit;
    if (total > kMax) return invalid("longer than 3650 days");
    s.remove_prefix(digits + 1);
  }
  if (total <= 0) return invalid("must be positive");
  return absl::Seconds(total);
}

}  // namespace tw::core
