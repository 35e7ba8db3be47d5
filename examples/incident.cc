// The incident of the README, told with the TrustWarden SDK alone (incident_story.h): a
// payments agent reads today's transactions, is refused a deletion outside its scopes, is
// revoked by the operator and is blocked from then on. Each step says what happened; the
// exit status is 0 only when every step behaved as the story says. The server, an admin
// token and the trust bundle come from TRUSTWARDEN_SERVER, TRUSTWARDEN_TOKEN and
// TRUSTWARDEN_BUNDLE.
#include <trustwarden/trustwarden.h>

#include <exception>
#include <iostream>

#include "incident_story.h"

int main() {
  try {
    const incident::Outcome outcome = incident::Tell(trustwarden::Connection{}, std::cout);
    std::cout << (outcome.as_expected ? "The story went as expected.\n"
                                      : "The story did NOT go as expected.\n");
    return outcome.as_expected ? 0 : 1;
  } catch (const trustwarden::Error& e) {
    std::cerr << "error: " << e.code() << ": " << e.what() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
  }
  return 1;
}
