// How commands print: one JSON document with --json, aligned tables and plain lines
// otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace tw::cli {

// Adds --json ("one JSON document on stdout") to `cmd`, setting `*as_json`; a command run
// with it that fails prints {"error": {"code", "message"}} on stdout too (see Fail).
void AddJsonFlag(CLI::App* cmd, bool* as_json);
// Whether the command line asked for --json.
bool JsonRequested();

// `doc` with --json, else `human` (a line or lines) on stdout.
void Emit(bool as_json, const nlohmann::json& doc, const std::string& human);

// `j` on stdout, indented, as one document.
void PrintJson(const nlohmann::json& j);

// `rows` under `header` on stdout, each column as wide as its widest cell, two spaces apart.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

// Colour on stdout: only on a terminal, and never with NO_COLOR set (no-color.org).
bool UseColour();

// A one-line report of a long operation on stderr ("verifying  1,200,000/3,000,000 entries
// 40%  85,000/s  21s left"), only when stderr is a terminal: drawn at the first update, then
// at most ten times a second, and erased when destroyed.
class Progress {
 public:
  explicit Progress(std::string what);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `done` of `total` entries (total 0: not known yet).
  void Update(uint64_t done, uint64_t total);

 private:
  const bool active_;
  const std::string what_;
  const absl::Time start_;
  absl::Time drawn_at_ = absl::InfinitePast();
};

// `j[key]` as text: a string as it is, a number or boolean as JSON, "-" when missing or null.
std::string Field(const nlohmann::json& j, const char* key);

}  // namespace tw::cli
