"""Verification for resource owners: is the caller a live SVID of our trust bundle, with the
scope and trust level this resource requires?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, List, Mapping, Optional, Tuple, Union

from . import _native
from .errors import InvalidArgument
from .identity import _federated, _staleness
from .spiffe import SpiffeId

if TYPE_CHECKING:
    from .identity import AgentIdentity

__all__ = ["Decision", "Verifier"]


@dataclass(frozen=True)
class Decision:
    """The verdict on one caller; true when allowed."""

    allowed: bool
    reason: str = ""  #: why it was refused; empty when allowed
    spiffe_id: Optional[SpiffeId] = None  #: the caller, when its SVID verified
    instance_id: str = ""
    trust_level: str = ""
    scopes: Tuple[str, ...] = field(default=())
    event_id: str = ""  #: the recorded observation, when the verifier records

    def __bool__(self) -> bool:
        return self.allowed

    @classmethod
    def _of(cls, d: dict) -> "Decision":
        return cls(d["allowed"], d["reason"], SpiffeId(d["spiffe_id"]) if d["spiffe_id"] else None,
                   d["instance_id"], d["trust_level"], tuple(d["scopes"]), d["event_id"])


class Verifier:
    """Verifies X.509-SVIDs and JWT-SVIDs locally, against the trust bundle and the server's
    revocation stream (never a server call per verification); thread-safe.

    server, bundle: default $TRUSTWARDEN_SERVER and $TRUSTWARDEN_BUNDLE (a SPIFFE bundle
        JSON is needed for JWT-SVIDs).
    audience: the audience JWT-SVIDs must name.
    recorder: when given, every decision is recorded as an "observation" event signed by
        this identity (the resource's own).
    max_staleness: seconds of revocation-stream silence after which everything is refused.
    federated_revocations: {trust domain: its TrustWarden server URL} of federated domains
        whose revocation streams are followed too (their peers refused once revoked there,
        and while that stream is silent past max_staleness).

    A peer of a federated trust domain is verified with that domain's bundle alone (our
    server distributes it), and holds here only the scopes our policy's ``[[foreign]]``
    grants give it: its certificate's own TrustWarden attributes are never trusted.

    Each check may require: ``spiffe_ids`` (the caller is one of them), ``trust_domain``,
    ``scope`` (granted by the caller's SVID), ``min_trust_level``; ``resource`` is recorded
    with the decision.
    """

    def __init__(self, server: Optional[str] = None, bundle: Optional[str] = None,
                 audience: Optional[str] = None, recorder: Optional["AgentIdentity"] = None,
                 max_staleness: float = 5.0,
                 federated_revocations: Optional[Mapping[str, str]] = None) -> None:
        self._recorder = recorder
        self._native = _native.Verifier(server or "", bundle or "", audience or "",
                                        recorder._native if recorder is not None else None,
                                        _staleness(max_staleness),
                                        _federated(federated_revocations))

    def verify_x509(self, chain_pem: Union[str, bytes], *,
                    spiffe_ids: Union[None, str, Iterable[str]] = None,
                    trust_domain: Optional[str] = None, scope: Optional[str] = None,
                    min_trust_level: Optional[str] = None,
                    resource: Optional[str] = None) -> Decision:
        """The decision on an X.509-SVID chain, PEM, leaf first (e.g. an mTLS peer's)."""
        if isinstance(chain_pem, bytes):
            chain_pem = chain_pem.decode("ascii", "replace")
        return Decision._of(self._native.verify_x509(
            chain_pem, _ids(spiffe_ids), trust_domain or "", scope or "", min_trust_level or "",
            resource or ""))

    def verify_jwt(self, token: str, *, spiffe_ids: Union[None, str, Iterable[str]] = None,
                   trust_domain: Optional[str] = None, scope: Optional[str] = None,
                   min_trust_level: Optional[str] = None,
                   resource: Optional[str] = None) -> Decision:
        """The decision on a JWT-SVID, e.g. from "Authorization: Bearer <token>"."""
        return Decision._of(self._native.verify_jwt(
            str(token), _ids(spiffe_ids), trust_domain or "", scope or "", min_trust_level or "",
            resource or ""))


def _ids(ids: Union[None, str, Iterable[str]]) -> List[str]:
    if ids is None:
        return []
    listed = [str(ids)] if isinstance(ids, str) else [str(i) for i in ids]
    if not listed:
        raise InvalidArgument("spiffe_ids: an empty list would allow nobody; None allows any",
                              code="invalid_argument")
    return listed
