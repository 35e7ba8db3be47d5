// mTLS between SPIFFE workloads with OpenSSL: contexts that present an identity's current
// SVID (following its renewals) and authenticate the peer by SPIFFE rules instead of host
// names (SPIFFE.md §7 item 19).
#pragma once

#include <string>

#include "trustwarden/verifier.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX
struct ssl_st;      // OpenSSL's SSL

namespace trustwarden {

// A new SSL_CTX (the caller frees it with SSL_CTX_free) that presents `self`'s SVID and
// accepts a peer only when its X.509-SVID verifies against `self`'s bundle, is not
// revoked, and meets `peer` (any SVID of `self`'s trust domain when `peer` is empty).
// The server context requires a client certificate. `self` must outlive the context.
ssl_ctx_st* server_tls_context(const AgentIdentity& self, const Requirement& peer = {});
ssl_ctx_st* client_tls_context(const AgentIdentity& self, const Requirement& peer = {});

// The SPIFFE ID of the authenticated peer of a connection made with one of these
// contexts; empty before the handshake completes.
std::string peer_spiffe_id(const ssl_st* ssl);

}  // namespace trustwarden
