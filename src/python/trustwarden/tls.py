"""mTLS between SPIFFE workloads with the standard ``ssl`` module.

``AgentIdentity.ssl_context()`` returns a ``SpiffeSSLContext``: OpenSSL verifies the peer's
chain against the identity's bundle during the handshake, and the SPIFFE checks (one URI
SAN, not a CA, not revoked, the expected ID, scope and trust level) run as the handshake
completes, before a byte of application data is exchanged; a refused peer fails the
handshake with ``ssl.SSLCertVerificationError``. Reading or writing first completes and
checks the handshake when the application has not (``do_handshake_on_connect=False``,
``wrap_bio``), and a refusal is final: every later read or write raises it again. Under TLS 1.3 a client finishes its side of
the handshake before the server has judged its certificate, so a client the server refuses
sees a closed connection at its first read.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import TYPE_CHECKING, Any, Iterable, List, Optional, Union

from .errors import InvalidArgument
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


class _Authorized:
    """The SPIFFE check of one connection: done once its handshake completes; reads and
    writes before that complete the handshake first."""

    peer_spiffe_id: Optional[SpiffeId] = None
    _refusal: Optional[ssl.SSLCertVerificationError] = None

    def _authorize(self) -> None:
        if self._refusal is not None:
            raise self._refusal
        if self.peer_spiffe_id is None:
            self._refusal = self.context._refusal_of(self)  # type: ignore[attr-defined]
            if self._refusal is not None:
                raise self._refusal

    def _ready(self) -> None:
        if self.peer_spiffe_id is None or self._refusal is not None:
            self.do_handshake()  # type: ignore[attr-defined]

    # SSLSocket's and SSLObject's own, checked first (recv, recv_into and sendall go
    # through them or send).
    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        self._ready()
        return super().read(len, buffer)  # type: ignore[misc]

    def write(self, data: Any) -> int:
        self._ready()
        return super().write(data)  # type: ignore[misc]


class _SpiffeSocket(_Authorized, ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        if self._refusal is None:
            super().do_handshake(block)
        self._authorize()

    def send(self, data: Any, flags: int = 0) -> int:
        self._ready()
        return super().send(data, flags)


class _SpiffeObject(_Authorized, ssl.SSLObject):
    def do_handshake(self) -> None:
        if self._refusal is None:
            super().do_handshake()
        self._authorize()


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
        self._trusted_generation = -1
        self.check_hostname = False  # SPIFFE authenticates by ID, not host name
        self.verify_mode = ssl.CERT_REQUIRED
        self.minimum_version = ssl.TLSVersion.TLSv1_2
        # Every connection is authenticated afresh: no session resumption, and no
        # renegotiation to a certificate nobody checked.
        self.options |= ssl.OP_NO_TICKET | ssl.OP_NO_RENEGOTIATION
        if server_side:
            self.num_tickets = 0
        self._present_current_svid()

    def _present_current_svid(self) -> None:
        """Loads the identity's SVID and key when a renewal replaced them, from an anonymous
        in-memory file the SDK writes (the key never reaches the file system or Python), and
        the authorities of a trust domain newly trusted (a CA rotation, a federation).

        OpenSSL pools those authorities for its chain check; the SDK's peer check that
        follows binds each peer to its own trust domain's bundle and drops a domain no
        longer trusted, which OpenSSL's store cannot forget."""
        with self._lock:
            generation = self._agent._native.trusted_generation
            if generation != self._trusted_generation:
                self.load_verify_locations(cadata=self._agent._native.trusted_pem)
                self._trusted_generation = generation
            if self._agent.svid_pem == self._chain:
                return
            fd, chain = self._agent._native.credential_file()
            try:
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

    # A connection copies the context's certificate and key when its SSL object is made:
    # never in the middle of a reload.
    def _wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return super()._wrap_socket(*args, **kwargs)  # type: ignore[misc]

    def _wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return super()._wrap_bio(*args, **kwargs)  # type: ignore[misc]

    def _refusal_of(self, connection: _Authorized) -> Optional[ssl.SSLCertVerificationError]:
        """None when the peer passes (its SPIFFE ID is then on the connection), else why."""
        try:
            decision = self._checker.check(_peer_chain(connection))
        except Exception as e:  # noqa: BLE001 - any failure of the check refuses the peer
            return ssl.SSLCertVerificationError(f"the peer could not be checked: {e}")
        if not decision["allowed"]:
            return ssl.SSLCertVerificationError(f"the peer is refused: {decision['reason']}")
        connection.peer_spiffe_id = SpiffeId(decision["spiffe_id"])
        return None


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
        if not spiffe_ids:
            raise InvalidArgument("peer: an empty list of SPIFFE IDs would allow nobody; "
                                  "None means any SVID of the trust domain",
                                  code="invalid_argument")
    checker = agent._native.peer_checker(spiffe_ids, trust_domain, scope or "",
                                         min_trust_level or "")
    return SpiffeSSLContext(agent, bool(server_side), checker)
