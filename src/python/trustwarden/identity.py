"""AgentIdentity: an agent instance's own SPIFFE identity, and the calls it makes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime
import functools
import inspect
import json
import math
import threading
import weakref
from dataclasses import dataclass
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, TypeVar, Union,
                    TYPE_CHECKING)

from . import _native
from .errors import InvalidArgument
from .spiffe import SpiffeId, X509Svid

if TYPE_CHECKING:
    import ssl

    from .spiffe import TrustDomain

__all__ = ["AgentIdentity", "CallRequest", "CallResult", "revoke"]

Bytes = Union[bytes, bytearray, memoryview, str]
F = TypeVar("F", bound=Callable[..., Any])

# Live identities by instance id, so that a connector is handed the Python object.
_live: "weakref.WeakValueDictionary[str, AgentIdentity]" = weakref.WeakValueDictionary()
# Per thread: what each call() in progress got from its Python connector (a stack, since a
# connector may make calls of its own), and the tool invocations in progress.
_local = threading.local()
_TOOL_SCHEME = "tool"
# The longest revocation-stream silence a caller may tolerate.
_MAX_STALENESS = 86400.0

_executor_lock = threading.Lock()
_executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
# The threads that run acall()/acreate(): enough for many concurrent calls of one identity
# to share one ledger batch (group commit).
_ASYNC_THREADS = 64


def _async_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=_ASYNC_THREADS, thread_name_prefix="trustwarden")
        return _executor


async def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) on the SDK's threads, in the caller's context, without blocking
    the event loop."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_async_executor(), call)


async def _in_own_thread(fn: Callable[[], Any]) -> Any:
    """fn() on a thread of its own, in the caller's context: for an async tool, whose thread
    waits for the tool's coroutine, which may itself need the SDK's threads."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: Optional[BaseException]) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        try:
            result, error = context.run(fn), None
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, e
        loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="trustwarden-tool", daemon=True).start()
    return await done


def _staleness(value: float) -> float:
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= _MAX_STALENESS):
        raise InvalidArgument(f"max_staleness must be more than 0 and at most "
                              f"{_MAX_STALENESS:.0f} seconds, not {value!r}",
                              code="invalid_argument")
    return seconds


def _federated(value: Optional[Mapping[str, str]]) -> Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidArgument("federated_revocations must map trust domain names to the "
                              f"URLs of their servers, not {value!r}", code="invalid_argument")
    return dict(value)


def _scheme(resource: str) -> str:
    return resource.split(":", 1)[0].lower() if ":" in resource else ""


def _as_bytes(value: Any) -> bytes:
    """What is recorded (as a digest) for a payload, an input or a connector's result:
    bytes as they are, str as UTF-8, None as nothing, anything else as its canonical JSON."""
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr).encode()


def _text(value: Optional[str]) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class CallRequest:
    """What a connector is asked to do, once the call is allowed and recorded."""

    resource: str  #: the resource's URI; its scheme chose the connector
    action: str  #: the scope exercised, "action:object"
    payload: bytes
    server_spiffe_id: str  #: the SPIFFE ID the resource's server must present, if named


@dataclass(frozen=True)
class CallResult:
    """An allowed, performed call."""

    event_id: str  #: the ledger event that recorded the decision to allow it
    response: Any  #: what the connector returned (bytes from the built-in http(s) connector)


Connector = Callable[["AgentIdentity", CallRequest], Any]


def _connector(fn: Connector) -> Callable[[str, str, str, bytes, str], bytes]:
    """The native side of a Python connector: hands fn the live AgentIdentity, keeps what
    it returned for call() and gives the SDK its bytes (for the outcome's digest)."""

    def run(instance_id: str, resource: str, action: str, payload: bytes,
            server_spiffe_id: str) -> bytes:
        result = fn(_live.get(instance_id), CallRequest(resource, action, payload,
                                                        server_spiffe_id))
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError("a connector must return its result, not an awaitable: "
                            "connectors run on the SDK's threads (use an async tool instead)")
        responses = getattr(_local, "responses", None)
        if responses:
            responses[-1] = (result,)
        return _as_bytes(result)

    return run


def _run_tool(agent: "AgentIdentity", request: CallRequest) -> Any:
    """The tool invocation the call of `request` was made for, run once."""
    tools = getattr(_local, "tools", None)
    if not tools or tools[-1][0] != request.resource or tools[-1][1] is None:
        raise InvalidArgument(f"{request.resource}: tool: resources are called by @agent.tool",
                              code="invalid_argument")
    run = tools[-1][1]
    tools[-1][1] = None
    return run()


class AgentIdentity:
    """An agent instance's own identity: a short-lived X.509-SVID whose key never leaves
    this process, renewed in the background, used for scope-checked calls that are recorded
    in the server's signed ledger, and revoked when the agent is done.

    Create one with ``AgentIdentity.create(name=..., scope=[...], ttl="30m",
    trust_level="high")`` (or ``await AgentIdentity.acreate(...)``), act with
    ``agent.call(resource, action, payload)`` (or ``await agent.acall(...)``), and end it
    with ``agent.close()`` or a ``with`` block, which revoke it and its children. An identity
    that is garbage-collected is revoked too, unless it was closed or ``detach()``-ed.

    Thread-safe: any number of threads and tasks may call one identity at once.
    """

    __slots__ = ("_native", "__weakref__")

    def __init__(self, native: Any) -> None:
        """Not for applications: use create(), acreate() or spawn()."""
        self._native = native
        _live[native.instance_id] = self

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, scope: Iterable[str] = (), ttl: str = "30m",
               trust_level: Optional[str] = None, *, server: Optional[str] = None,
               token: Optional[str] = None, bundle: Optional[str] = None,
               spool: Optional[str] = None, max_staleness: float = 5.0,
               federated_revocations: Optional[Mapping[str, str]] = None) -> "AgentIdentity":
        """Creates an agent instance's identity.

        name: "org/team/agent", or a bare "agent" under $TRUSTWARDEN_ORG/$TRUSTWARDEN_TEAM
            ("default" when unset).
        scope: the scopes to grant, "action:object"; the server refuses any the policy does
            not let the principal grant.
        ttl: lifetime, e.g. "30m" (capped by policy).
        trust_level: "low" (the default), "medium", "high" or "critical".
        server, token, bundle, spool: the server URL, the principal token, the trust bundle
            file and the spool directory; default $TRUSTWARDEN_SERVER (else
            https://127.0.0.1:8443), $TRUSTWARDEN_TOKEN, $TRUSTWARDEN_BUNDLE (else
            ./trustwarden-data/bundle.json) and $TRUSTWARDEN_SPOOL (else ./trustwarden-spool).
        max_staleness: seconds of revocation-stream silence after which calls fail closed.
        federated_revocations: {trust domain: its TrustWarden server URL} of federated
            domains whose revocation streams this identity's peer checks follow (fail
            closed past max_staleness, per domain).

        The key pair is generated in this process; the server signs its CSR. Raises Denied
        when the policy refuses, Unavailable when the server cannot be reached,
        InvalidArgument for a malformed request.
        """
        return cls(_native.Identity.create(
            str(name), _scopes(scope), _text(ttl), _text(trust_level), _text(server),
            _text(token), _text(bundle), _text(spool), _staleness(max_staleness),
            _federated(federated_revocations)))

    @classmethod
    async def acreate(cls, name: str, scope: Iterable[str] = (), ttl: str = "30m",
                      trust_level: Optional[str] = None, **connection: Any) -> "AgentIdentity":
        """create() without blocking the event loop."""
        return await _in_thread(cls.create, name, scope, ttl, trust_level, **connection)

    def spawn(self, name: str, scope: Iterable[str] = (), ttl: str = "30m",
              trust_level: Optional[str] = None) -> "AgentIdentity":
        """A child identity delegated by this one (over mTLS with this identity's SVID):
        its scopes must be covered by this one's, and its lifetime is cut to what this one
        has left. A bare name goes under this identity's org and team."""
        return AgentIdentity(self._native.spawn(str(name), _scopes(scope), _text(ttl),
                                                _text(trust_level)))

    async def aspawn(self, name: str, scope: Iterable[str] = (), ttl: str = "30m",
                     trust_level: Optional[str] = None) -> "AgentIdentity":
        """spawn() without blocking the event loop."""
        return await _in_thread(self.spawn, name, scope, ttl, trust_level)

    # -- what it is -------------------------------------------------------------------------

    @property
    def spiffe_id(self) -> SpiffeId:
        """spiffe://TD/ORG/TEAM/AGENT/INSTANCE."""
        return SpiffeId(self._native.spiffe_id)

    @property
    def instance_id(self) -> str:
        return self._native.instance_id

    @property
    def scopes(self) -> List[str]:
        """The scopes its current certificate grants."""
        return list(self._native.scopes)

    @property
    def trust_level(self) -> str:
        return self._native.trust_level

    @property
    def expires_at(self) -> datetime.datetime:
        """When the current certificate expires (renewal replaces it before then)."""
        return datetime.datetime.fromtimestamp(self._native.expires_at_ms / 1000,
                                               datetime.timezone.utc)

    @property
    def revoked(self) -> bool:
        """Revoked as far as this process knows: closed, refused by the server, or named
        on the revocation stream."""
        return self._native.revoked

    @property
    def svid_pem(self) -> str:
        """The current certificate chain, PEM, leaf first."""
        return self._native.svid_pem

    @property
    def bundle_pem(self) -> str:
        """The trust bundle's X.509 authorities, PEM: what peers are verified against."""
        return self._native.bundle_pem

    @property
    def x509_svid(self) -> X509Svid:
        """The current X.509-SVID (without its private key)."""
        return X509Svid._from_pem(self._native.spiffe_id, self._native.svid_pem,
                                  self.expires_at)

    def jwt(self, audience: str) -> str:
        """A JWT-SVID for `audience`, reused until a minute before it expires."""
        return self._native.jwt(str(audience))

    # -- acting -----------------------------------------------------------------------------

    def call(self, resource: str, action: str, payload: Bytes = b"",
             input: Any = None, min_trust_level: Optional[str] = None, *,
             server_spiffe_id: Optional[str] = None) -> CallResult:
        """Checks, records and performs `action` on `resource` (a URI):

        - raises Revoked or Expired when this identity is revoked or expired, and Denied when
          the revocation stream is stale, its scopes do not cover `action`, or its trust
          level is below `min_trust_level` or a require_trust_level() rule; refusals by
          staleness, scope or trust level are recorded as signed "deny" events;
        - records a signed "allow" event (with the digests of `input`, e.g. the prompt that
          led to the call, and of `payload`) before acting: with the server, or durably in
          the spool while it is unreachable; raises Unavailable if neither is possible;
        - hands the call to the connector of the resource's URI scheme and records the
          outcome; an exception the connector raises is recorded and re-raised unchanged.

        "tool:" resources are reserved for tool(); calling one directly raises
        InvalidArgument and records nothing.
        """
        if _scheme(str(resource)) == _TOOL_SCHEME and not getattr(_local, "in_tool", False):
            raise InvalidArgument(f"{resource}: tool: resources are called by @agent.tool",
                                  code="invalid_argument")
        _local.in_tool = False
        responses = _local.__dict__.setdefault("responses", [])
        responses.append(None)
        try:
            event_id, raw = self._native.call(
                str(resource), str(action), _as_bytes(payload), _as_bytes(input),
                _text(min_trust_level), _text(server_spiffe_id))
            returned = responses[-1]
        finally:
            responses.pop()
        return CallResult(event_id, returned[0] if returned is not None else raw)

    async def acall(self, resource: str, action: str, payload: Bytes = b"",
                    input: Any = None, min_trust_level: Optional[str] = None, *,
                    server_spiffe_id: Optional[str] = None) -> CallResult:
        """call() without blocking the event loop (its connector runs on the SDK's threads)."""
        return await _in_thread(self.call, resource, action, payload, input, min_trust_level,
                                server_spiffe_id=server_spiffe_id)

    def tool(self, scope: str, *, name: Optional[str] = None) -> Callable[[F], F]:
        """Decorates a function as a tool of this agent: every invocation is a call of
        resource "tool:NAME" (NAME: `name` or the function's name) with action `scope`,
        scope-checked and recorded with the digest of its arguments (canonical JSON) as the
        input, then runs the function. The result keeps the function's name, docstring,
        signature and type hints, so agent frameworks take it as the plain function; an
        ``async def`` stays a coroutine function."""

        def decorate(fn: F) -> F:
            resource = "tool:" + (name or fn.__name__)
            signature = inspect.signature(fn)

            def arguments(args: tuple, kwargs: Dict[str, Any]) -> str:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                return json.dumps(bound.arguments, sort_keys=True, separators=(",", ":"),
                                  default=repr)

            if inspect.iscoroutinefunction(fn):
                @functools.wraps(fn)
                async def async_tool(*args: Any, **kwargs: Any) -> Any:
                    recorded = arguments(args, kwargs)
                    loop = asyncio.get_running_loop()

                    def run() -> Any:
                        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs),
                                                                loop).result()

                    return await _in_own_thread(
                        lambda: self._call_tool(resource, scope, run, recorded))

                async_tool.__signature__ = signature  # type: ignore[attr-defined]
                return async_tool  # type: ignore[return-value]

            @functools.wraps(fn)
            def tool(*args: Any, **kwargs: Any) -> Any:
                return self._call_tool(resource, scope, lambda: fn(*args, **kwargs),
                                       arguments(args, kwargs))

            tool.__signature__ = signature  # type: ignore[attr-defined]
            return tool  # type: ignore[return-value]

        return decorate

    def _call_tool(self, resource: str, scope: str, run: Callable[[], Any],
                   recorded: str) -> Any:
        tools = _local.__dict__.setdefault("tools", [])
        tools.append([resource, run])
        _local.in_tool = True
        try:
            return self.call(resource, scope, input=recorded).response
        finally:
            _local.in_tool = False
            tools.pop()

    def ssl_context(self, server_side: bool = False,
                    peer: Union[None, str, "TrustDomain", Iterable[str]] = None, *,
                    scope: Optional[str] = None,
                    min_trust_level: Optional[str] = None) -> "ssl.SSLContext":
        """A standard ``ssl.SSLContext`` for mTLS as this identity: it presents the current
        SVID (following renewals) and accepts a peer only when its X.509-SVID verifies
        against this identity's bundle, is not revoked, and is `peer`: a SPIFFE ID, several,
        or a TrustDomain (default: any SVID of this identity's trust domain), holding
        `scope` and `min_trust_level` when given. Host names are not checked: SPIFFE
        authenticates by ID. Works with http.client, urllib, asyncio streams and
        socketserver; the peer's ID is the ``peer_spiffe_id`` attribute of the SSL socket
        (asyncio: ``writer.get_extra_info("ssl_object").peer_spiffe_id``)."""
        from .tls import spiffe_context
        return spiffe_context(self, server_side, peer, scope, min_trust_level)

    # -- registration (process-wide) --------------------------------------------------------

    @staticmethod
    def register_connector(scheme: str, fn: Connector) -> None:
        """Registers `fn(agent, request)` for resources whose URI has `scheme`
        (e.g. "postgres"); it runs only once the call is allowed and recorded, and what it
        returns is the call's response. It runs on the calling thread (acall: the SDK's),
        so it is a plain function, not a coroutine. "http" and "https" are built in (see
        trust_origin); "tool" is reserved for tool()."""
        if not callable(fn) or inspect.iscoroutinefunction(fn):
            raise InvalidArgument("a connector is a plain callable(agent, request)",
                                  code="invalid_argument")
        if str(scheme).lower() == _TOOL_SCHEME:
            raise InvalidArgument("the tool: scheme is reserved for @agent.tool",
                                  code="invalid_argument")
        _native.register_connector(str(scheme), _connector(fn))

    @staticmethod
    def trust_origin(origin: str, server_spiffe_id: str) -> None:
        """The built-in https connector sends to `origin` ("https://host:port") only when its
        server presents `server_spiffe_id`."""
        _native.trust_origin(str(origin), str(server_spiffe_id))

    @staticmethod
    def allow_plain_http(origin: str) -> None:
        """The built-in http connector may send bearer tokens to `origin` in the clear."""
        _native.allow_plain_http(str(origin))

    @staticmethod
    def require_trust_level(scope: str, min_trust_level: str) -> None:
        """Every action overlapping `scope` (e.g. "delete:*") needs at least
        `min_trust_level` in this process."""
        _native.require_trust_level(str(scope), str(min_trust_level))

    # -- ending -----------------------------------------------------------------------------

    def close(self) -> None:
        """Revokes this instance and its children on the server (the ledger records it),
        after shipping its spool; idempotent."""
        self._native.close()

    async def aclose(self) -> None:
        """close() without blocking the event loop."""
        await _in_thread(self.close)

    def detach(self) -> None:
        """Hands the identity over: it is no longer revoked when garbage-collected."""
        self._native.detach()

    def __enter__(self) -> "AgentIdentity":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    async def __aenter__(self) -> "AgentIdentity":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AgentIdentity({self._native.spiffe_id!r})"


def _scopes(scope: Iterable[str]) -> List[str]:
    return [scope] if isinstance(scope, str) else [str(s) for s in scope]


def revoke(instance: Union[None, str, AgentIdentity] = None, *, agent: Optional[str] = None,
           subtree: Union[None, str, AgentIdentity] = None, principal: Optional[str] = None,
           reason: str = "", server: Optional[str] = None, token: Optional[str] = None,
           bundle: Optional[str] = None) -> int:
    """Revokes exactly one target with an admin token (default $TRUSTWARDEN_TOKEN): an
    `instance` (id or AgentIdentity), every instance of an `agent` name, a `subtree` (an
    instance and its descendants) or everything a `principal` created. Returns the
    revocation's sequence number; enforcement points learn of it from the revocation stream
    within milliseconds."""

    def instance_of(x: Union[None, str, AgentIdentity]) -> str:
        return x.instance_id if isinstance(x, AgentIdentity) else _text(x)

    return _native.revoke(instance_of(instance), _text(agent), instance_of(subtree),
                          _text(principal), _text(reason), _text(server), _text(token),
                          _text(bundle))


_native.register_connector(_TOOL_SCHEME, _connector(_run_tool))
