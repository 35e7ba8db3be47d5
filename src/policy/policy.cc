#include "policy/policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "toml++/toml.h"

namespace tw::policy {
namespace {

using core::Scope;
using core::TrustLevel;

constexpr absl::string_view kDefaultSource =
    R"(# Installed on first start: the admin token may create any agent.
[principals.admin]
names = ["*/*/*"]
scopes = ["*:*"]
max_ttl = "24h"
max_trust_level = "high"
may_delegate = true
max_depth = 3
)";

absl::Status Invalid(absl::string_view where, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("policy: ", where, ": ", why));
}

// Strings, arrays and tables as JSON; any other value as null, which the JSON form's
// parser refuses by name.
nlohmann::json TomlToJson(const toml::node& node) {
  if (const toml::value<std::string>* s = node.as_string()) return s->get();
  if (const toml::array* a = node.as_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const toml::node& n : *a) out.push_back(TomlToJson(n));
    return out;
  }
  if (const toml::table* t = node.as_table()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : *t) out[std::string(key.str())] = TomlToJson(value);
    return out;
  }
  return nullptr;
}

absl::StatusOr<std::string> String(const toml::node& node, absl::string_view where) {
  const toml::value<std::string>* s = node.as_string();
  if (s == nullptr) return Invalid(where, "must be a string");
  return s->get();
}

absl::StatusOr<std::vector<std::string>> Strings(const toml::node& node, absl::string_view where) {
  const toml::array* array = node.as_array();
  if (array == nullptr) return Invalid(where, "must be an array of strings");
  std::vector<std::string> out;
  for (const toml::node& item : *array) {
    auto s = String(item, where);
    if (!s.ok()) return Invalid(where, "must be an array of strings");
    out.push_back(*std::move(s));
  }
  return out;
}

absl::StatusOr<TrustLevel> Level(const toml::node& node, absl::string_view where) {
  auto s = String(node, where);
  if (!s.ok()) return s.status();
  auto level = core::ParseTrustLevel(*s);
  if (!level.ok()) return Invalid(where, level.status().message());
  return *level;
}

absl::StatusOr<PrincipalRule> ParsePrincipal(const toml::table& table, const std::string& name,
                                             nlohmann::json* json) {
  PrincipalRule rule;
  bool has_ttl = false, has_level = false, has_names = false, has_scopes = false;
  for (const auto& [key, node] : table) {
    const std::string where = absl::StrCat("principals.", name, ".", std::string(key.str()));
    if (key == "names") {
      auto names = Strings(node, where);
      if (!names.ok()) return names.status();
      for (const std::string& n : *names) {
        auto pattern = core::NamePattern::Parse(n);
        if (!pattern.ok()) return Invalid(where, pattern.status().message());
        rule.names.push_back(*std::move(pattern));
      }
      has_names = true;
    } else if (key == "scopes") {
      auto scopes = Strings(node, where);
      if (!scopes.ok()) return scopes.status();
      auto parsed = core::ParseScopes(*scopes);
      if (!parsed.ok()) return Invalid(where, parsed.status().message());
      rule.scopes = *std::move(parsed);
      has_scopes = true;
    } else if (key == "max_ttl") {
      auto s = String(node, where);
      if (!s.ok()) return s.status();
      auto ttl = core::ParseDuration(*s);
      if (!ttl.ok()) return Invalid(where, ttl.status().message());
      rule.max_ttl = *ttl;
      has_ttl = true;
    } else if (key == "max_trust_level") {
      auto level = Level(node, where);
      if (!level.ok()) return level.status();
      rule.max_trust_level = *level;
      has_level = true;
    } else if (key == "may_delegate") {
      const toml::value<bool>* b = node.as_boolean();
      if (b == nullptr) return Invalid(where, "must be true or false");
      rule.may_delegate = b->get();
    } else if (key == "max_depth") {
      const toml::value<int64_t>* i = node.as_integer();
      if (i == nullptr || i->get() < 0 || i->get() > 16) {
        return Invalid(where, "must be an integer from 0 to 16");
      }
      rule.max_depth = static_cast<int>(i->get());
    } else {
      return Invalid(where, "unknown key");
    }
  }
  const std::string where = absl::StrCat("principals.", name);
  if (!has_names) return Invalid(where, "names is required");
  if (!has_scopes) return Invalid(where, "scopes is required");
  if (!has_ttl) return Invalid(where, "max_ttl is required");
  if (!has_level) return Invalid(where, "max_trust_level is required");

  nlohmann::json names = nlohmann::json::array(), scopes = nlohmann::json::array();
  for (const core::NamePattern& n : rule.names) names.push_back(n.str());
  for (const Scope& s : rule.scopes) scopes.push_back(s.str());
  *json = {{"names", names},
           {"scopes", scopes},
           {"max_ttl_seconds", absl::ToInt64Seconds(rule.max_ttl)},
           {"max_trust_level", std::string(core::TrustLevelName(rule.max_trust_level))},
           {"may_delegate", rule.may_delegate},
           {"max_depth", rule.max_depth}};
  return rule;
}

absl::StatusOr<ScopeRule> ParseScopeRule(const toml::node& node, size_t index,
                                         nlohmann::json* json) {
  const std::string where = absl::StrCat("scope_rules[", index, "]");
  const toml::table* table = node.as_table();
  if (table == nullptr) return Invalid(where, "must be a table");
  std::optional<Scope> scope;
  std::optional<TrustLevel> level;
  for (const auto& [key, value] : *table) {
    const std::string at = absl::StrCat(where, ".", std::string(key.str()));
    if (key == "scope") {
      auto s = String(value, at);
      if (!s.ok()) return s.status();
      auto parsed = Scope::Parse(*s);
      if (!parsed.ok()) return Invalid(at, parsed.status().message());
      scope = *std::move(parsed);
    } else if (key == "min_trust_level") {
      auto l = Level(value, at);
      if (!l.ok()) return l.status();
      level = *l;
    } else {
      return Invalid(at, "unknown key");
    }
  }
  if (!scope || !level) return Invalid(where, "scope and min_trust_level are required");
  *json = {{"scope", scope->str()}, {"min_trust_level", std::string(core::TrustLevelName(*level))}};
  return ScopeRule{*std::move(scope), *level};
}

}  // namespace

absl::string_view Policy::DefaultSource() { return kDefaultSource; }

absl::StatusOr<Policy> Policy::Parse(absl::string_view source) {
  if (source.size() > 1024 * 1024) return Invalid("document", "larger than 1 MiB");
  toml::table root;
  try {
    root = toml::parse(std::string_view(source.data(), source.size()));
  } catch (const toml::parse_error& e) {
    return Invalid(absl::StrCat("line ", e.source().begin.line), std::string(e.description()));
  }
  Policy policy;
  nlohmann::json principals = nlohmann::json::object(), rules = nlohmann::json::array();
  for (const auto& [key, node] : root) {
    if (key == "principals") {
      const toml::table* table = node.as_table();
      if (table == nullptr) return Invalid("principals", "must be a table");
      for (const auto& [name, value] : *table) {
        const std::string principal(name.str());
        if (principal.empty() || principal.size() > 128 ||
            principal.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_.") !=
                std::string::npos) {
          return Invalid(absl::StrCat("principals.", principal),
                         "principal names are 1..128 of a-z 0-9 - _ .");
        }
        const toml::table* rule_table = value.as_table();
        if (rule_table == nullptr) {
          return Invalid(absl::StrCat("principals.", principal), "must be a table");
        }
        nlohmann::json json;
        auto rule = ParsePrincipal(*rule_table, principal, &json);
        if (!rule.ok()) return rule.status();
        principals[principal] = std::move(json);
        policy.principals_.emplace_back(principal, *std::move(rule));
      }
    } else if (key == "scope_rules") {
      const toml::array* array = node.as_array();
      if (array == nullptr) return Invalid("scope_rules", "must be an array of tables");
      for (size_t i = 0; i < array->size(); ++i) {
        nlohmann::json json;
        auto rule = ParseScopeRule(*array->get(i), i, &json);
        if (!rule.ok()) return rule.status();
        rules.push_back(std::move(json));
        policy.scope_rules_.push_back(*std::move(rule));
      }
    } else if (key == "foreign") {
      const toml::array* array = node.as_array();
      if (array == nullptr) return Invalid("foreign", "must be an array of tables");
      nlohmann::json grants = nlohmann::json::array();
      for (const toml::node& grant : *array) grants.push_back(TomlToJson(grant));
      auto parsed = core::ParseForeignGrants(grants);
      if (!parsed.ok()) return Invalid("foreign", parsed.status().message());
      policy.foreign_ = *std::move(parsed);
    } else {
      return Invalid(std::string(key.str()), "unknown key");
    }
  }
  std::sort(policy.principals_.begin(), policy.principals_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  policy.json_ = {{"principals", principals}, {"scope_rules", rules}};
  // Only when present: the documents written before it keep their hash.
  if (!policy.foreign_.empty()) policy.json_["foreign"] = core::ForeignGrantsJson(policy.foreign_);
  return policy;
}

const PrincipalRule* Policy::FindPrincipal(absl::string_view principal) const {
  auto it = std::lower_bound(
      principals_.begin(), principals_.end(), principal,
      [](const auto& entry, absl::string_view name) { return entry.first < name; });
  if (it == principals_.end() || it->first != principal) return nullptr;
  return &it->second;
}

absl::Status Policy::AuthorizeCreation(const CreationRequest& r) const {
  auto denied = [](auto&&... parts) { return absl::PermissionDeniedError(absl::StrCat(parts...)); };
  const PrincipalRule* rule = FindPrincipal(r.principal);
  if (rule == nullptr) return denied("principal \"", r.principal, "\" has no policy entry");
  if (std::none_of(rule->names.begin(), rule->names.end(),
                   [&](const core::NamePattern& p) { return p.Matches(r.name); })) {
    return denied("name ", r.name.str(), " is outside the names of principal \"", r.principal,
                  "\"");
  }
  for (const Scope& s : r.scopes) {
    if (!core::ScopesAllow(rule->scopes, s)) {
      return denied("scope ", s.str(), " is beyond the scopes of principal \"", r.principal, "\"");
    }
  }
  if (r.ttl > rule->max_ttl) {
    return denied("ttl ", absl::FormatDuration(r.ttl), " exceeds the policy's max_ttl ",
                  absl::FormatDuration(rule->max_ttl));
  }
  if (r.trust_level > rule->max_trust_level) {
    return denied("trust level ", core::TrustLevelName(r.trust_level),
                  " exceeds the policy's max_trust_level ",
                  core::TrustLevelName(rule->max_trust_level));
  }
  for (const ScopeRule& sr : scope_rules_) {
    for (const Scope& s : r.scopes) {
      if (sr.scope.Overlaps(s) && r.trust_level < sr.min_trust_level) {
        return denied("scope ", s.str(), " requires trust level ",
                      core::TrustLevelName(sr.min_trust_level), " or higher");
      }
    }
  }
  if (r.parent) {
    const ParentGrant& p = *r.parent;
    if (!rule->may_delegate) {
      return denied("principal \"", r.principal, "\" does not allow delegation");
    }
    if (p.depth + 1 > rule->max_depth) {
      return denied("delegation depth ", p.depth + 1, " exceeds max_depth ", rule->max_depth);
    }
    absl::Status covered = core::CheckScopesCovered(p.scopes, r.scopes);
    if (!covered.ok()) return denied("delegation: ", covered.message());
    if (r.trust_level > p.trust_level) {
      return denied("trust level ", core::TrustLevelName(r.trust_level), " exceeds the parent's ",
                    core::TrustLevelName(p.trust_level));
    }
    if (r.now + r.ttl > p.not_after) {
      return denied("ttl ", absl::FormatDuration(r.ttl), " outlives the parent (",
                    absl::FormatDuration(absl::Trunc(p.not_after - r.now, absl::Seconds(1))),
                    " left)");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RenewalGrant> Policy::AuthorizeRenewal(const RenewalRequest& r) const {
  auto denied = [](auto&&... parts) { return absl::PermissionDeniedError(absl::StrCat(parts...)); };
  const PrincipalRule* rule = FindPrincipal(r.principal);
  if (rule == nullptr) {
    return denied("principal \"", r.principal, "\" is no longer in the policy");
  }
  if (std::none_of(rule->names.begin(), rule->names.end(),
                   [&](const core::NamePattern& p) { return p.Matches(r.name); })) {
    return denied("name ", r.name.str(), " is no longer among the names of principal \"",
                  r.principal, "\"");
  }
  RenewalGrant grant{.trust_level = std::min(r.trust_level, rule->max_trust_level),
                     .ttl = std::min(r.ttl, rule->max_ttl)};
  if (r.parent) {
    if (!rule->may_delegate) {
      return denied("principal \"", r.principal, "\" no longer allows delegation");
    }
    if (r.parent->depth + 1 > rule->max_depth) {
      return denied("delegation depth ", r.parent->depth + 1, " exceeds max_depth ",
                    rule->max_depth);
    }
    grant.trust_level = std::min(grant.trust_level, r.parent->trust_level);
    grant.ttl = std::min(grant.ttl, r.parent->not_after - r.now);
  }
  for (const Scope& s : r.scopes) {
    bool keep =
        core::ScopesAllow(rule->scopes, s) && (!r.parent || core::ScopesAllow(r.parent->scopes, s));
    for (const ScopeRule& sr : scope_rules_) {
      keep = keep && !(sr.scope.Overlaps(s) && grant.trust_level < sr.min_trust_level);
    }
    if (keep) grant.scopes.push_back(s);
  }
  if (grant.ttl <= absl::ZeroDuration()) return denied("no lifetime is left to renew");
  return grant;
}

}  // namespace tw::policy
