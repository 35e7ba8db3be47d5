"""TrustWarden: per-instance SPIFFE identities for AI agents.

    from trustwarden import AgentIdentity
    with AgentIdentity.create(name="payment-processor",
                              scope=["read:transactions", "write:ledger"],
                              ttl="30m", trust_level="high") as agent:
        result = agent.call("postgres://prod", "write:ledger", payload)

Every call is scope-checked and recorded as a signed event in the server's ledger before
it runs; revocation reaches every identity, Verifier and TLS context of the process within
milliseconds. The server, token and bundle come from TRUSTWARDEN_SERVER, TRUSTWARDEN_TOKEN
and TRUSTWARDEN_BUNDLE unless given. This package binds the C++ SDK (libtrustwarden).
"""

from .errors import (Denied, Expired, InvalidArgument, Revoked, TrustWardenError,
                     Unavailable)
from .spiffe import SpiffeId, TrustDomain, X509Svid
from .identity import AgentIdentity, CallRequest, CallResult, revoke
from .tls import SpiffeSSLContext
from .verifier import Decision, Verifier

from ._native import __version__

__all__ = [
    "AgentIdentity", "CallRequest", "CallResult", "revoke",
    "Verifier", "Decision", "SpiffeSSLContext",
    "SpiffeId", "TrustDomain", "X509Svid",
    "TrustWardenError", "Denied", "Revoked", "Expired", "Unavailable", "InvalidArgument",
]
