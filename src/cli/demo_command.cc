// `trustwarden demo`: the incident of the README (examples/incident_story.h, told through
// the public SDK) against a running server (an admin token is needed to revoke and to read
// the audit trail), ending with the audit trace of the refused action. The SDK throws; this
// adapter catches.
#include <exception>
#include <iostream>
#include <memory>
#include <string>

#include "cli/api_client.h"
#include "cli/command.h"
#include "examples/incident_story.h"
#include "trustwarden/trustwarden.h"

namespace tw::cli {
namespace {

// The story, then the audit trace of the refused deletion; false when a step did not
// behave as the story says.
bool Story(const ClientFlags& flags) {
  incident::Outcome outcome = incident::Tell(
      {.server = flags.server, .token = flags.token, .bundle = flags.bundle}, std::cout);
  if (!outcome.denied_event.empty()) {
    std::cout << "\n$ trustwarden audit trace " << outcome.denied_event << "\n" << std::flush;
    if (AuditTrace(flags, outcome.denied_event, /*as_json=*/false) != 0) {
      incident::Unexpected("the audit trace of the refused deletion failed", outcome, std::cout);
    }
  }
  return outcome.as_expected;
}

int Demo(const ClientFlags& flags) {
  bool as_expected = false;
  try {
    as_expected = Story(flags);
  } catch (const trustwarden::Error& e) {
    std::cerr << "error: " << e.code() << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  std::cout << (as_expected ? "\nThe story went as expected.\n"
                            : "\nThe story did NOT go as expected.\n");
  return as_expected ? 0 : 1;
}

}  // namespace

void RegisterDemoCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* cmd = app.add_subcommand(
      "demo",
      "The incident story against a running server (admin token): an agent is allowed a "
      "read, denied a deletion, revoked and blocked; then the audit trace of the denial");
  AddClientFlags(cmd, flags.get());
  cmd->callback([action, flags] { *action = [flags] { return Demo(*flags); }; });
}

}  // namespace tw::cli
