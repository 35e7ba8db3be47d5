#include "cli/usage.h"

#include <algorithm>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tw::cli {
namespace {

// Levenshtein distance, for "did you mean".
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The candidate nearest to `word`, when it is near enough to be a typo; empty otherwise.
std::string Nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& c : candidates) {
    const size_t d = EditDistance(word, c);
    if (d < best_distance) best = c, best_distance = d;
  }
  return best;
}

// "trustwarden agent list" for the list subcommand.
std::string PathOf(const CLI::App& app) {
  std::string path = app.get_name();
  for (const CLI::App* p = app.get_parent(); p != nullptr; p = p->get_parent()) {
    path = absl::StrCat(p->get_name(), " ", path);
  }
  return path;
}

std::vector<std::string> SubcommandNames(const CLI::App& at) {
  std::vector<std::string> names;
  // Option groups are unnamed subcommands to CLI11: not commands.
  for (const CLI::App* sub : at.get_subcommands([](const CLI::App*) { return true; })) {
    if (!sub->get_name().empty()) names.push_back(sub->get_name());
  }
  return names;
}

std::string UnknownCommand(const CLI::App& at, const std::string& word) {
  const std::vector<std::string> names = SubcommandNames(at);
  const std::string near = Nearest(word, names);
  return absl::StrCat("unknown command \"", word, "\" for \"", PathOf(at), "\"",
                      near.empty() ? absl::StrCat(" (commands: ", absl::StrJoin(names, ", "), ")")
                                   : absl::StrCat("; did you mean \"", near, "\"?"));
}

std::string UnknownFlag(const CLI::App& at, const std::string& word) {
  std::vector<std::string> flags;
  for (const CLI::Option* o : at.get_options()) {
    for (const std::string& n : o->get_lnames()) flags.push_back("--" + n);
  }
  const std::string flag = word.substr(0, word.find('='));
  const std::string near = Nearest(flag, flags);
  return absl::StrCat("unknown flag \"", flag, "\" for \"", PathOf(at), "\"",
                      near.empty() ? "" : absl::StrCat("; did you mean \"", near, "\"?"));
}

}  // namespace

int ExitCodeOf(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) return kExitUnreachable;
  return kExitRefused;
}

std::string UsageMessage(const CLI::App& app, const CLI::ParseError& error) {
  // The deepest command the line reached, and the first word nothing took.
  const CLI::App* at = &app;
  while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
  const std::string hint = absl::StrCat("\nRun \"", PathOf(*at), " --help\" for usage.");
  for (const CLI::App* level = at; level != nullptr; level = level->get_parent()) {
    const std::vector<std::string> rest = level->remaining();
    if (rest.empty()) continue;
    const std::string& word = rest.front();
    if (absl::StartsWith(word, "--")) return UnknownFlag(*level, word) + hint;
    if (!absl::StartsWith(word, "-") && !SubcommandNames(*level).empty()) {
      return UnknownCommand(*level, word) + hint;
    }
    break;
  }
  if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr && !SubcommandNames(*at).empty() &&
      at->get_subcommands().empty()) {
    return absl::StrCat("\"", PathOf(*at),
                        "\" needs a command: ", absl::StrJoin(SubcommandNames(*at), ", "), hint);
  }
  return error.what() + hint;
}

}  // namespace tw::cli
