// trustwarden: one binary, subcommands per API.md. The composition root.
#include <cstdio>

#include "absl/synchronization/mutex.h"
#include "cli/command.h"
#include "cli/usage.h"

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every Mutex would keep a lock-order graph behind
  // one global lock. Lock order is checked by clang's thread-safety analysis and by the test
  // binaries, which keep the detection on; the binary does not pay for it on every request.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"TrustWarden: identities, scopes and audit for AI agents (SPIFFE)", "trustwarden"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "trustwarden " TW_VERSION);
  tw::cli::Action action;
  tw::cli::RegisterOfflineCommands(app, &action);
  tw::cli::RegisterServerCommand(app, &action);
  tw::cli::RegisterClientCommands(app, &action);
  tw::cli::RegisterLedgerCommands(app, &action);
  tw::cli::RegisterBenchCommand(app, &action);
  tw::cli::RegisterDemoCommand(app, &action);
  tw::cli::RegisterStatusCommand(app, &action);
  tw::cli::RegisterHsmCommand(app, &action);
  tw::cli::RegisterBootstrapCommand(app, &action);
  tw::cli::RegisterCompletionCommands(app, &action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "error: %s\n", tw::cli::UsageMessage(app, e).c_str());
    return tw::cli::kExitUsage;
  }
  return action ? action() : tw::cli::kExitOk;
}
