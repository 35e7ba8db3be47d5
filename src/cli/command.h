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
// Registers `bootstrap`, first trust in a server by its CA fingerprint.
void RegisterBootstrapCommand(CLI::App& app, Action* action);
// Registers `hsm init`, the server's keys made inside a PKCS#11 token.
void RegisterHsmCommand(CLI::App& app, Action* action);
// Registers `status`, the set-up check.
void RegisterStatusCommand(CLI::App& app, Action* action);
// Registers `completion bash|zsh` and `man`, generated from the command tree of `app`
// (register them last, so they see every command).
void RegisterCompletionCommands(CLI::App& app, Action* action);
// Registers `demo`, the incident story told through the SDK against a running server.
void RegisterDemoCommand(CLI::App& app, Action* action);

struct ClientFlags;  // cli/api_client.h
// `audit trace`: fetches the trace of ledger event `event_id` with the flags' (admin or
// auditor) token, checks its inclusion proof here, and prints it (one JSON document with
// `as_json`). Returns the exit code: 1 when the server refused or the proof did not verify.
int AuditTrace(const ClientFlags& flags, const std::string& event_id, bool as_json);

// Prints "error: <message>" to stderr and returns its exit code (cli/usage.h: 1, or 3 when
// the server is unreachable).
int Fail(const absl::Status& status);

}  // namespace tw::cli
