// How commands print: one JSON document with --json, aligned tables and plain lines
// otherwise.
#pragma once

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
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

// `j[key]` as text: a string as it is, a number or boolean as JSON, "-" when missing or null.
std::string Field(const nlohmann::json& j, const char* key);

}  // namespace tw::cli
