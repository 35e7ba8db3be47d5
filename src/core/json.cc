#include "core/json.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tw::core {

absl::StatusOr<nlohmann::json> ParseStrictJson(absl::string_view text, absl::string_view what,
                                               size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": larger than ", max_bytes, " bytes"));
  }
  constexpr int kMaxDepth = 32;
  std::vector<std::set<std::string>> keys;  // member names per open object
  std::string problem;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (!problem.empty()) return false;
    if (depth > kMaxDepth) {
      problem = "nested too deeply";
      return false;
    }
    if (event == E::object_start) {
      keys.emplace_back();
    } else if (event == E::object_end) {
      keys.pop_back();
    } else if (event == E::key) {
      if (!keys.back().insert(parsed.get<std::string>()).second) {
        problem = absl::StrCat("duplicate member \"", parsed.get<std::string>().substr(0, 64), "\"");
        return false;
      }
    }
    return true;
  };
  try {
    nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), callback);
    if (!problem.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", problem));
    return j;
  } catch (const nlohmann::json::exception& e) {
    if (!problem.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", problem));
    return absl::InvalidArgumentError(absl::StrCat(what, ": not valid JSON"));
  }
}

}  // namespace tw::core
