// The incident of the README, told with the public TrustWarden SDK alone: a payments agent
// reads today's transactions, is refused a deletion outside its scopes, is revoked by the
// operator and is blocked from then on. examples/incident.cc and `trustwarden demo` both
// tell it from here. Not thread-safe: it registers the process-wide "ledger" connector.
#pragma once

#include <trustwarden/trustwarden.h>

#include <ostream>
#include <string>

namespace incident {

// How the story went, and where the audit trail recorded it.
struct Outcome {
  bool as_expected = true;   // every step behaved as the story says
  std::string read_event;    // ledger event of the allowed read
  std::string denied_event;  // ledger event of the refused deletion; empty if not recorded
};

// Tells the story's steps 1 to 8 on `out` against `connection`, whose token must be an
// admin token (the operator revokes). A step that does not behave as the story says is
// reported and clears `as_expected`; a failure that ends the story is thrown by the SDK as
// trustwarden::Error.
Outcome Tell(const trustwarden::Connection& connection, std::ostream& out);

// Reports on `out` that a step did not behave as the story says; clears `as_expected`.
void Unexpected(const std::string& what, Outcome& outcome, std::ostream& out);

}  // namespace incident
