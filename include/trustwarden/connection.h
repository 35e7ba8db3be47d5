// How the SDK reaches a TrustWarden server, and the operator's revocation call.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace trustwarden {

// Where the server is and how to reach it. Empty strings come from TRUSTWARDEN_SERVER,
// TRUSTWARDEN_TOKEN, TRUSTWARDEN_BUNDLE and TRUSTWARDEN_SPOOL.
struct Connection {
  std::string server;     // https://HOST:PORT; default https://127.0.0.1:8443
  std::string token;      // principal or admin token, for identities without a parent
  std::string bundle;     // trust bundle file, SPIFFE JSON (needed to verify JWT-SVIDs)
                          // or PEM; default ./trustwarden-data/bundle.json
  std::string spool_dir;  // where ledger events wait while the server is unreachable;
                          // default ./trustwarden-spool
  // Calls and verifications fail closed when the revocation stream has been silent longer.
  std::chrono::milliseconds max_staleness{5000};
  // Revocation streams of federated trust domains to follow: trust domain name -> that
  // domain's TrustWarden server (https://HOST:PORT), authenticated by the domain's bundle
  // as our server federates it. A peer of such a domain is refused once its own domain
  // revokes it, and while that stream is silent past max_staleness (fail closed).
  std::map<std::string, std::string> federated_revocations;
};

// What to revoke: exactly one of the four targets.
struct RevokeRequest {
  std::string instance;   // one instance id
  std::string agent;      // every instance of org/team/agent
  std::string subtree;    // an instance and all its descendants
  std::string principal;  // everything a principal created
  std::string reason;
};

// Revokes with the connection's admin token; returns the revocation's sequence number.
// Enforcement points learn of it from the revocation stream.
int64_t revoke(const RevokeRequest& request, const Connection& connection = {});

}  // namespace trustwarden
