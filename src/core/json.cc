#include "core/json.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tw::core {

absl::StatusOr<nlohmann::json> ParseStrictJson(absl::string_view text, absl::string_view what,
                                               size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": larger than ", max_bytes, " bytes"));
  }
  constexpr int kMaxDepth = 32;
  // Member names of the open objects, flat; `starts` marks where each object's begin.
  // Objects are small, so a linear scan beats a set per object.
  std::vector<std::string> keys;
  std::vector<size_t> starts;
  std::string problem;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (!problem.empty()) return false;
    if (depth > kMaxDepth) {
      problem = "nested too deeply";
      return false;
    }
    if (event == E::object_start) {
      starts.push_back(keys.size());
    } else if (event == E::object_end) {
      keys.resize(starts.back());
      starts.pop_back();
    } else if (event == E::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      for (size_t i = starts.back(); i < keys.size(); ++i) {
        if (keys[i] == key) {
          problem = absl::StrCat("duplicate member \"", absl::CHexEscape(key.substr(0, 64)), "\"");
          return false;
        }
      }
      keys.push_back(key);
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
