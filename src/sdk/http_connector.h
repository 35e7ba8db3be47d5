// The built-in connector for http: and https: resources, and the process-wide rules on
// which server each origin must be. Thread-safe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "trustwarden/agent_identity.h"

namespace trustwarden::internal {

// POSTs the payload (GET when empty) with "Authorization: Bearer" and a JWT-SVID whose
// audience is the resource's origin. Over https (mTLS with the agent's SVID) the server
// must present the SPIFFE ID named for the call (CallRequest::server_spiffe_id) or for its
// origin (TrustOrigin); with none named the call fails before anything is sent. Plain http
// carries the bearer token only to an origin passed to AllowPlainHttp. Connects within 5 s
// and reads the response within 30 s. Throws Error (it is a Connector) on a refusal, a
// transport failure or a non-2xx status; returns the response body.
std::string HttpConnector(AgentIdentity& agent, const CallRequest& request);

// `origin` ("https://payments.internal:8443") must present `spiffe_id`. InvalidArgument
// for a malformed origin or SPIFFE ID.
absl::Status TrustOrigin(const std::string& origin, const std::string& spiffe_id);
// Bearer tokens may go to `origin` ("http://localhost:8080") over plain http.
// InvalidArgument for a malformed origin.
absl::Status AllowPlainHttp(const std::string& origin);

}  // namespace trustwarden::internal
