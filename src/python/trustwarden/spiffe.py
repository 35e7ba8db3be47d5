"""SPIFFE names, as py-spiffe calls them: ``SpiffeId``, ``TrustDomain`` and ``X509Svid``."""

from __future__ import annotations

import base64
import datetime
import re
from typing import Tuple

from . import _native

__all__ = ["SpiffeId", "TrustDomain", "X509Svid"]

_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.S)


class TrustDomain(str):
    """A trust domain name, e.g. ``TrustDomain("trustwarden")``; also accepts
    ``"spiffe://trustwarden"``. A ``str``; raises InvalidArgument when malformed."""

    __slots__ = ()

    def __new__(cls, name: str) -> "TrustDomain":
        return super().__new__(cls, _native.parse_trust_domain(str(name)))

    @classmethod
    def parse(cls, name: str) -> "TrustDomain":
        """TrustDomain(name), as py-spiffe spells it."""
        return cls(name)

    @property
    def name(self) -> str:
        return str(self)

    def id(self) -> "SpiffeId":
        """The trust domain's own SPIFFE ID, ``spiffe://NAME``."""
        return SpiffeId("spiffe://" + self)


class SpiffeId(str):
    """A SPIFFE ID, e.g. ``SpiffeId("spiffe://trustwarden/acme/payments/api")``, validated as
    the SPIFFE ID standard requires. A ``str``; raises InvalidArgument when malformed."""

    __slots__ = ()

    def __new__(cls, value: str) -> "SpiffeId":
        _native.parse_spiffe_id(str(value))
        return super().__new__(cls, value)

    @classmethod
    def parse(cls, value: str) -> "SpiffeId":
        """SpiffeId(value), as py-spiffe spells it."""
        return cls(value)

    @property
    def trust_domain(self) -> TrustDomain:
        return TrustDomain(_native.parse_spiffe_id(self)[0])

    @property
    def path(self) -> str:
        """The path, "" or starting with "/"."""
        return _native.parse_spiffe_id(self)[1]


class X509Svid:
    """An X.509-SVID: the SPIFFE ID, the certificate chain (DER, leaf first) and its expiry.
    The private key is not exposed; it stays with its AgentIdentity."""

    __slots__ = ("spiffe_id", "cert_chain", "expires_at")

    def __init__(self, spiffe_id: SpiffeId, cert_chain: Tuple[bytes, ...],
                 expires_at: datetime.datetime) -> None:
        self.spiffe_id = spiffe_id
        self.cert_chain = cert_chain
        self.expires_at = expires_at

    @classmethod
    def _from_pem(cls, spiffe_id: str, chain_pem: str,
                  expires_at: datetime.datetime) -> "X509Svid":
        ders = tuple(base64.b64decode(b) for b in _PEM_CERTIFICATE.findall(chain_pem))
        return cls(SpiffeId(spiffe_id), ders, expires_at)

    @property
    def leaf(self) -> bytes:
        """The leaf certificate, DER."""
        return self.cert_chain[0]

    @property
    def cert_chain_pem(self) -> str:
        """The chain as PEM, leaf first."""
        out = []
        for der in self.cert_chain:
            b64 = base64.b64encode(der).decode()
            lines = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
            out.append(f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n")
        return "".join(out)

    def __repr__(self) -> str:
        return f"X509Svid({self.spiffe_id!r}, expires_at={self.expires_at.isoformat()})"
