"""The exceptions of the TrustWarden SDK.

Every one is a ``TrustWardenError`` whose ``code`` is the canonical status name the server
or the SDK gave ("permission_denied", "unavailable", "invalid_argument", ...)::

    TrustWardenError
    ├── Denied            a refused call or request (.reason, .event_id)
    │   ├── Revoked       the identity is revoked (by an operator, by close(), with an ancestor)
    │   └── Expired       the identity's certificate has expired
    ├── Unavailable       the server could not be reached, or nothing could be recorded
    └── InvalidArgument   a malformed request (also a ValueError)
"""

from __future__ import annotations

__all__ = ["TrustWardenError", "Denied", "Revoked", "Expired", "Unavailable", "InvalidArgument"]


class TrustWardenError(Exception):
    """A failed TrustWarden operation; ``code`` names the canonical status."""

    def __init__(self, message: str, *, code: str = "unknown", reason: str | None = None,
                 event_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = message if reason is None else reason
        self.event_id = event_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, code={self.code!r})"


class Denied(TrustWardenError):
    """A refused call or request. ``reason`` says why; ``event_id`` is the ledger event that
    recorded the refusal (empty when it could not be recorded, e.g. for a revoked identity,
    which can no longer write)."""


class Revoked(Denied):
    """Refused because the identity is revoked."""


class Expired(Denied):
    """Refused because the identity's certificate has expired."""


class Unavailable(TrustWardenError):
    """The server could not be reached in time, or a call could be recorded neither with the
    server nor in the spool; worth retrying later."""


class InvalidArgument(TrustWardenError, ValueError):
    """A malformed request: not a scope, not a URI, not a SPIFFE ID, a bad TTL, ..."""
