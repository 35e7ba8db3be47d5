// The SSL_CTX behind server_tls_context() and client_tls_context(), for the SDK's own
// connections too (the https connector). Not installed; thread-safe.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "trustwarden/agent_identity.h"
#include "trustwarden/verifier.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace trustwarden::internal {

struct SslCtxFree {
  void operator()(ssl_ctx_st* ctx) const;
};
using SslCtxPtr = std::unique_ptr<ssl_ctx_st, SslCtxFree>;

// A context that presents `self`'s current SVID and accepts a peer only by the SPIFFE
// rules of trustwarden/tls.h; a server context requires a client certificate. `self` must
// outlive it. Internal when OpenSSL fails.
absl::StatusOr<SslCtxPtr> NewTlsContext(const AgentIdentity& self, const Requirement& peer,
                                        bool server);

}  // namespace trustwarden::internal
