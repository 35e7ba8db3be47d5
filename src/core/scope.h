// Scopes ("action:object"), trust levels and TTL durations as DESIGN.md defines them.
// Value types; thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tw::core {

// "read:transactions", "write:ledger.*", "read:*", "*:*". The action is `*` or a name of
// letters, digits, '_' and '-'; the object is `*` or a name of letters, digits and
// "_ . - /", optionally ending in `*` (prefix wildcard).
class Scope {
 public:
  static absl::StatusOr<Scope> Parse(absl::string_view s);

  const std::string& str() const { return text_; }
  absl::string_view action() const { return absl::string_view(text_).substr(0, colon_); }
  // The object without its trailing wildcard.
  absl::string_view object_prefix() const;
  bool object_wildcard() const { return wildcard_; }

  // True when this (granted) scope covers `requested`, which may itself hold wildcards.
  bool Covers(const Scope& requested) const;
  // True when some concrete scope is covered by both this scope and `other`.
  bool Overlaps(const Scope& other) const;

  bool operator==(const Scope& o) const { return text_ == o.text_; }

 private:
  Scope(std::string text, size_t colon, bool wildcard)
      : text_(std::move(text)), colon_(colon), wildcard_(wildcard) {}
  std::string text_;
  size_t colon_;
  bool wildcard_;
};

// Parses each scope; InvalidArgument names the first bad one.
absl::StatusOr<std::vector<Scope>> ParseScopes(const std::vector<std::string>& scopes);
// True when some granted scope covers `requested`.
bool ScopesAllow(const std::vector<Scope>& granted, const Scope& requested);
// OK when every requested scope is covered by a granted one (delegation only narrows);
// PermissionDenied naming the first scope that is not.
absl::Status CheckScopesCovered(const std::vector<Scope>& granted,
                                const std::vector<Scope>& requested);
// Scopes joined by single spaces (the OAuth / JWT "scope" claim form).
std::string JoinScopes(const std::vector<Scope>& scopes);

// low < medium < high < critical.
enum class TrustLevel { kLow = 0, kMedium = 1, kHigh = 2, kCritical = 3 };
absl::StatusOr<TrustLevel> ParseTrustLevel(absl::string_view s);
absl::string_view TrustLevelName(TrustLevel level);

// "90s", "30m", "8h", "2d", or sums such as "1h30m". Positive, whole seconds, at most
// 3650 days. InvalidArgument otherwise.
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view s);

}  // namespace tw::core
