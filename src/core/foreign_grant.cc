#include "core/foreign_grant.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tw::core {
namespace {

absl::Status Invalid(size_t index, absl::string_view member, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("grant ", index, ": ", member, ": ", why));
}

absl::StatusOr<std::vector<std::string>> Strings(const nlohmann::json& object, size_t index,
                                                 const char* member) {
  std::vector<std::string> out;
  auto it = object.find(member);
  if (it == object.end()) return out;
  if (!it->is_array()) return Invalid(index, member, "must be an array of strings");
  // An empty list of who would read as "nobody" but mean "the whole domain".
  if (it->empty() && std::string_view(member) != "scopes") {
    return Invalid(index, member, "is empty: omit it to grant the whole domain");
  }
  for (const nlohmann::json& s : *it) {
    if (!s.is_string()) return Invalid(index, member, "must be an array of strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace

bool ForeignGrant::Covers(const SpiffeId& id) const {
  if (!id.MemberOf(trust_domain)) return false;
  if (names.empty() && spiffe_ids.empty()) return true;
  if (std::find(spiffe_ids.begin(), spiffe_ids.end(), id) != spiffe_ids.end()) return true;
  absl::StatusOr<AgentInstance> agent = ParseAgentSpiffeId(id);
  return agent.ok() && std::any_of(names.begin(), names.end(),
                                   [&](const NamePattern& n) { return n.Matches(agent->name); });
}

std::vector<Scope> ForeignScopes(const std::vector<ForeignGrant>& grants, const SpiffeId& id) {
  std::vector<Scope> out;
  for (const ForeignGrant& g : grants) {
    if (!g.Covers(id)) continue;
    for (const Scope& s : g.scopes) {
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    }
  }
  return out;
}

nlohmann::json ForeignGrantsJson(const std::vector<ForeignGrant>& grants) {
  nlohmann::json out = nlohmann::json::array();
  for (const ForeignGrant& g : grants) {
    nlohmann::json grant = {{"trust_domain", g.trust_domain.name()},
                            {"scopes", nlohmann::json::array()}};
    for (const Scope& s : g.scopes) grant["scopes"].push_back(s.str());
    for (const NamePattern& n : g.names) grant["names"].push_back(n.str());
    for (const SpiffeId& id : g.spiffe_ids) grant["spiffe_ids"].push_back(id.str());
    out.push_back(std::move(grant));
  }
  return out;
}

absl::StatusOr<std::vector<ForeignGrant>> ParseForeignGrants(const nlohmann::json& json) {
  if (!json.is_array()) return absl::InvalidArgumentError("grants: must be an array");
  std::vector<ForeignGrant> out;
  for (size_t i = 0; i < json.size(); ++i) {
    const nlohmann::json& g = json[i];
    if (!g.is_object()) return Invalid(i, "grant", "must be an object");
    for (const auto& [key, value] : g.items()) {
      if (key != "trust_domain" && key != "names" && key != "spiffe_ids" && key != "scopes") {
        return Invalid(i, key, "unknown member");
      }
    }
    auto td = g.find("trust_domain");
    if (td == g.end() || !td->is_string()) return Invalid(i, "trust_domain", "must be a string");
    absl::StatusOr<TrustDomain> domain = TrustDomain::FromName(td->get<std::string>());
    if (!domain.ok()) return Invalid(i, "trust_domain", domain.status().message());
    ForeignGrant grant{.trust_domain = *std::move(domain)};
    absl::StatusOr<std::vector<std::string>> names = Strings(g, i, "names");
    if (!names.ok()) return names.status();
    for (const std::string& n : *names) {
      absl::StatusOr<NamePattern> pattern = NamePattern::Parse(n);
      if (!pattern.ok()) return Invalid(i, "names", pattern.status().message());
      grant.names.push_back(*std::move(pattern));
    }
    absl::StatusOr<std::vector<std::string>> ids = Strings(g, i, "spiffe_ids");
    if (!ids.ok()) return ids.status();
    for (const std::string& s : *ids) {
      absl::StatusOr<SpiffeId> id = SpiffeId::FromString(s);
      if (!id.ok()) return Invalid(i, "spiffe_ids", id.status().message());
      if (!id->MemberOf(grant.trust_domain)) {
        return Invalid(i, "spiffe_ids",
                       absl::StrCat(s, " is not in trust domain ", grant.trust_domain.name()));
      }
      grant.spiffe_ids.push_back(*std::move(id));
    }
    absl::StatusOr<std::vector<std::string>> scopes = Strings(g, i, "scopes");
    if (!scopes.ok()) return scopes.status();
    if (scopes->empty()) return Invalid(i, "scopes", "at least one scope is needed");
    absl::StatusOr<std::vector<Scope>> parsed = ParseScopes(*scopes);
    if (!parsed.ok()) return Invalid(i, "scopes", parsed.status().message());
    grant.scopes = *std::move(parsed);
    out.push_back(std::move(grant));
  }
  return out;
}

}  // namespace tw::core
