// The CLI's usage errors and exit codes, shared by every command.
#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace tw::cli {

// Exit codes of every command: 0 ok, 1 refused or invalid, 2 usage, 3 the server is
// unreachable (or failing).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;

// The exit code a failed command returns for `status`.
int ExitCodeOf(const absl::Status& status);

// What to tell the user about a command line `app` refused with `error`: an unknown command
// or flag is named with the nearest known one (or the choices); anything else is CLI11's
// own message; then which --help to read.
std::string UsageMessage(const CLI::App& app, const CLI::ParseError& error);

}  // namespace tw::cli
