// Shared plumbing for the `trustwarden` subcommands: each registers itself on the CLI11
// app and leaves the action to run after parsing. Single-threaded.
#pragma once

#include <functional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace tw::cli {

// The action chosen by the parsed command line; returns the process exit code.
using Action = std::function<int()>;

// Registers `id`, `ca`, `svid` and `jwt` (the offline tools) on `app`.
void RegisterOfflineCommands(CLI::App& app, Action* action);

// Registers `server`.
void RegisterServerCommand(CLI::App& app, Action* action);

// Registers the API clients: `agent`, `revoke`, `token`, `policy`, `bundle`.
void RegisterClientCommands(CLI::App& app, Action* action);

// Registers `audit query|trace` and `ledger verify|export`.
void RegisterLedgerCommands(CLI::App& app, Action* action);
// Registers `bench issue`, the HTTPS load generator.
void RegisterBenchCommand(CLI::App& app, Action* action);

// Prints "error: <message>" to stderr and returns exit code 1.
int Fail(const absl::Status& status);

}  // namespace tw::cli
