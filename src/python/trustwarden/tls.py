"""mTLS between SPIFFE workloads with the standard ``ssl`` module.

``AgentIdentity.ssl_context()`` returns a ``SpiffeSSLContext``: OpenSSL verifies the peer's
chain against the identity's bundle during the handshake, and the SPIFFE checks (one URI
SAN, not a CA, not revoked, the expected ID, scope and trust level) run as the handshake
completes, before a byte of application data is exchanged; a refused peer fails the
handshake with ``ssl.SSLCertVerificationError``. Under TLS 1.3 a client finishes its side of
the handshake before the server has judged its certificate, so a client the server refuses
sees a closed connection at its first read.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import TYPE_CHECKING, Any, Iterable, List, Optional, Union

from .spiffe import SpiffeId, TrustDomain

if TYPE_CHECKING:
    from .identity import AgentIdentity

__all__ = ["SpiffeSSLContext"]


def _peer_chain(ssl_object: Any) -> List[bytes]:
    """The peer's certificates as sent (DER, leaf first), or its leaf alone."""
    sslobj = getattr(ssl_object, "_sslobj", None)
    unverified = getattr(sslobj, "get_unverified_chain", None)  # CPython 3.10+
    if unverified is not None:
        chain = unverified()
        if chain:
            return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


class _SpiffeSocket(ssl.SSLSocket):
    peer_spiffe_id: Optional[SpiffeId] = None

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        self.context._authorize(self)  # type: ignore[attr-defined]


class _SpiffeObject(ssl.SSLObject):
    peer_spiffe_id: Optional[SpiffeId] = None

    def do_handshake(self) -> None:
        super().do_handshake()
        self.context._authorize(self)  # type: ignore[attr-defined]


class SpiffeSSLContext(ssl.SSLContext):
    """An ``ssl.SSLContext`` presenting an AgentIdentity's SVID and accepting only peers
    that pass its SPIFFE checks. Made by ``AgentIdentity.ssl_context()``."""

    sslsocket_class = _SpiffeSocket
    sslobject_class = _SpiffeObject

    def __new__(cls, agent: "AgentIdentity", server_side: bool, checker: Any) -> "SpiffeSSLContext":
        protocol = ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT
        return super().__new__(cls, protocol)

    def __init__(self, agent: "AgentIdentity", server_side: bool, checker: Any) -> None:
        self._agent = agent
        self._checker = checker
        self._lock = threading.Lock()
        self._chain = ""
        self.check_hostname = False  # SPIFFE authenticates by ID, not host name
        self.verify_mode = ssl.CERT_REQUIRED
        self.minimum_version = ssl.TLSVersion.TLSv1_2
        # Every connection is authenticated afresh: no session resumption.
        self.options |= ssl.OP_NO_TICKET
        if server_side:
            self.num_tickets = 0
        self.load_verify_locations(cadata=agent.bundle_pem)
        self._present_current_svid()

    def _present_current_svid(self) -> None:
        """Loads the identity's SVID and key when a renewal replaced them. The key goes
        through an anonymous in-memory file, never the file system."""
        with self._lock:
            if self._agent.svid_pem == self._chain:
                return
            chain, key = self._agent._native.credential()
            fd = os.memfd_create("trustwarden-svid", os.MFD_CLOEXEC)
            try:
                os.write(fd, chain.encode() + key)
                self.load_cert_chain(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            self._chain = chain

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        self._present_current_svid()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # type: ignore[override]
        self._present_current_svid()
        return super().wrap_bio(*args, **kwargs)

    def _authorize(self, connection: Union[_SpiffeSocket, _SpiffeObject]) -> None:
        decision = self._checker.check(_peer_chain(connection))
        if not decision["allowed"]:
            raise ssl.SSLCertVerificationError(
                f"the peer is refused: {decision['reason']}")
        connection.peer_spiffe_id = SpiffeId(decision["spiffe_id"])


def spiffe_context(agent: "AgentIdentity", server_side: bool,
                   peer: Union[None, str, TrustDomain, Iterable[str]],
                   scope: Optional[str], min_trust_level: Optional[str]) -> SpiffeSSLContext:
    spiffe_ids: List[str] = []
    trust_domain = ""
    if isinstance(peer, TrustDomain):
        trust_domain = peer
    elif isinstance(peer, str):
        spiffe_ids = [SpiffeId(peer)]
    elif peer is not None:
        spiffe_ids = [SpiffeId(p) for p in peer]
    checker = agent._native.peer_checker(spiffe_ids, trust_domain, scope or "",
                                         min_trust_level or "")
    return SpiffeSSLContext(agent, bool(server_side), checker)
