// The built-in connector for http: and https: resources.
#pragma once

#include <string>

#include "trustwarden/agent_identity.h"

namespace trustwarden::internal {

// POSTs the payload (GET when empty) to the resource with "Authorization: Bearer" and a
// JWT-SVID whose audience is the resource's origin; https is mTLS with the agent's SVID,
// and the server must present an SVID of the agent's bundle. Throws Error on a transport
// failure or a non-2xx status; returns the response body.
std::string HttpConnector(AgentIdentity& agent, const CallRequest& request);

}  // namespace trustwarden::internal
