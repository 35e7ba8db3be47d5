#!/usr/bin/env python3
"""End-to-end tests of the TrustWarden Python SDK (package `trustwarden`, src/python) against
real `trustwarden server` processes, written against the package's docstrings, API.md's
"Python" section and the README's account of the C++ SDK.

Covered: create() and its properties (explicit arguments and the TRUSTWARDEN_* environment,
bare names under $TRUSTWARDEN_ORG/$TRUSTWARDEN_TEAM or default/default); call() with Python
connectors (the response is the connector's own object; allow/outcome events and their
digests in the ledger, the allow event stored before the connector runs, nested calls);
refusals recorded as deny events with the exception's event_id; spawn() narrowing; revocation
(trustwarden.revoke, close(), `with` blocks, cascades) reaching identities within the
staleness bound; the exception classes and codes; a connector's own exception re-raised
unchanged and recorded as an "error" outcome; threads, asyncio (acall/acreate/aspawn/aclose,
the event loop kept free, contextvars); the @agent.tool wrapper (metadata, signature, type
hints, recorded arguments, refusals, async tools); ssl_context() with ssl sockets,
http.client, urllib, socketserver and asyncio streams (peer IDs, wrong IDs, scope and trust
level requirements, certificate-less, revoked and foreign-trust-domain peers); Verifier (JWT
and X.509, audience, scope, revocation, recorder observations); renewal (same instance, calls
signed by the new certificate, ssl_context presenting it); the built-in http(s) connector
(nothing sent to an origin nobody vouched for, mTLS + JWT-SVID to a trusted one); revocation
on garbage collection unless detach()-ed; fail-closed on a silent revocation stream (calls
and Verifier) and Expired when renewal cannot happen; the spool surviving SIGKILL of a
process while the server is down; help() and the package surface.

Connector registration, trust_origin() and require_trust_level() are process-wide, so every
test registers its own URI scheme (new_scheme()) and uses origins and scopes of its own.

Run (as ctest does):
  cd /work/main && PYTHONPATH=build/python TW_BIN=build/bin/trustwarden \
      python3 tests/harness/run_suite.py --min-tests 1 tests/python/sdk_test.py
Only the standard library and `trustwarden` are used (no pyca/cryptography, no pytest).
"""

import asyncio
import contextlib
import contextvars
import decimal
import gc
import hashlib
import http.client
import http.server
import inspect
import io
import json
import os
import pydoc
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import typing
import unittest
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import trustwarden_harness as harness  # noqa: E402
from trustwarden_harness import (ADMIN_ENTRY, TW_BIN, Server, TlsServer, pem_blocks,  # noqa: E402
                                 pem_to_der, tls_exchange)

import trustwarden  # noqa: E402
from trustwarden import (AgentIdentity, CallRequest, CallResult, Decision, Denied,  # noqa: E402
                         Expired, InvalidArgument, Revoked, SpiffeId, SpiffeSSLContext,
                         TrustDomain, TrustWardenError, Unavailable, Verifier, X509Svid)

STALENESS_BOUND = 5.0   # seconds: the SDK's default max_staleness, the bound for revocation
LEDGER_WAIT = 15.0      # seconds to wait for something to reach the ledger


def setUpModule():
    harness.require()
    # Every test names its connection explicitly (or sets the variables it tests).
    for k in [k for k in os.environ if k.startswith("TRUSTWARDEN_")]:
        del os.environ[k]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def sha256_hex(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


def digest(data):
    """The ledger's digest notation."""
    return "sha256:" + sha256_hex(data)


def canonical_json(value):
    """What the SDK records for a non-bytes, non-str value: its canonical JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def poll(fn, timeout, what, interval=0.01):
    """fn()'s first truthy value within timeout seconds; AssertionError naming `what` after."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def first_refusal(call, exc_type, timeout, what):
    """The first exc_type that call() raises within timeout seconds (polled every 50 ms)."""
    refusal = {}

    def refused():
        try:
            call()
        except exc_type as e:
            refusal["e"] = e
            return True
        return False

    poll(refused, timeout, what, interval=0.05)
    return refusal["e"]


def run_bounded(fn, timeout, what):
    """fn() on a helper thread, failing (instead of hanging the suite) after timeout."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised below, on the test's thread
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError(f"{what} did not finish within {timeout}s (deadlock?)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@contextlib.contextmanager
def environ(**values):
    """Sets (str) or unsets (None) environment variables, restoring them afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_scheme_seq = 0


def new_scheme(prefix="res"):
    """A URI scheme no other test registered a connector for (registration is process-wide)."""
    global _scheme_seq
    _scheme_seq += 1
    return f"{prefix}{_scheme_seq}"


def register(fn, prefix="res"):
    scheme = new_scheme(prefix)
    AgentIdentity.register_connector(scheme, fn)
    return scheme


def echo_connector(agent, request):
    return {"resource": request.resource, "action": request.action,
            "payload": request.payload.decode(), "instance": agent.instance_id}


ECHO = "echo"
AgentIdentity.register_connector(ECHO, echo_connector)


class SdkCase(unittest.TestCase):
    """One server per class, on a temporary directory; `create()` makes identities against
    it (closed at class end)."""
    TRUST_DOMAIN = None
    POLICY = None
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=f"tw-py-{cls.__name__}-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.server = Server(os.path.join(cls.tmp, "server"), trust_domain=cls.TRUST_DOMAIN)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.token = cls.server.admin_token()
        cls.spool = os.path.join(cls.tmp, "spool")
        cls._identities = []
        cls.addClassCleanup(cls._close_identities)
        if cls.POLICY is not None:
            r = cls.server.client(token=cls.token).post("/v1/policies", {"source": cls.POLICY})
            if r.status != 201:
                raise AssertionError(f"applying the policy failed: {r}")

    @classmethod
    def _close_identities(cls):
        for identity in reversed(cls._identities):
            try:
                identity.close()
            except TrustWardenError:
                pass
        cls._identities = []

    @classmethod
    def connection(cls, server=None):
        server = server or cls.server
        return dict(server=server.url, token=server.admin_token(), bundle=server.bundle_json,
                    spool=cls.spool)

    @classmethod
    def create(cls, name, scope=("read:transactions", "write:ledger"), ttl="30m",
               trust_level="high", server=None, **kw):
        conn = cls.connection(server)
        conn.update(kw)
        identity = AgentIdentity.create(name, scope, ttl, trust_level, **conn)
        cls._identities.append(identity)
        return identity

    @property
    def admin(self):
        return self.server.client(token=self.token)

    def audit(self, **query):
        query.setdefault("limit", 10000)
        r = self.admin.get("/v1/audit/events?" + urllib.parse.urlencode(query))
        self.assertEqual(r.status, 200, r)
        return [e["event"] for e in r.json["events"]]

    def trace(self, event_id):
        r = self.admin.get(f"/v1/audit/trace/{event_id}")
        self.assertEqual(r.status, 200, f"event {event_id} is not in the ledger: {r}")
        return r.json

    def wait_in_ledger(self, event_id, timeout=LEDGER_WAIT):
        def found():
            r = self.admin.get(f"/v1/audit/trace/{event_id}")
            return r.json if r.status == 200 else None
        return poll(found, timeout, f"event {event_id} in the ledger", interval=0.05)

    def outcome_of(self, identity, event_id, timeout=LEDGER_WAIT):
        """The outcome event whose ref is event_id."""
        def find():
            for e in self.audit(instance=identity.instance_id, type="outcome"):
                if e.get("ref") == event_id:
                    return e
            return None
        return poll(find, timeout, f"the outcome of {event_id}", interval=0.05)

    def revocation_entries(self):
        r = self.server.client().get("/v1/revocations?after=0&limit=1000")
        self.assertEqual(r.status, 200, r)
        return r.json["entries"]

    def assert_revoked_soon(self, identity):
        poll(lambda: identity.revoked, STALENESS_BOUND, f"{identity!r}.revoked")


# ---------------------------------------------------------------------------------------------
# 1. create() and call()
# ---------------------------------------------------------------------------------------------
class CreateTest(SdkCase):

    def check_properties(self, a, org, team, agent, scopes, trust_level, ttl_minutes):
        sid = a.spiffe_id
        self.assertIsInstance(sid, SpiffeId)
        self.assertIsInstance(sid, str)
        self.assertIsInstance(sid.trust_domain, TrustDomain)
        self.assertEqual(sid.trust_domain, "trustwarden")
        self.assertEqual(sid.trust_domain.name, "trustwarden")
        self.assertTrue(sid.path.startswith(f"/{org}/{team}/{agent}/"), sid)
        self.assertEqual(sid.path.count("/"), 4, sid)
        self.assertEqual(str(sid), "spiffe://trustwarden" + sid.path)
        self.assertIsInstance(a.instance_id, str)
        self.assertTrue(a.instance_id)
        self.assertEqual(sid.path.rsplit("/", 1)[1], a.instance_id)
        self.assertEqual(sorted(a.scopes), sorted(scopes))
        self.assertIsInstance(a.scopes, list)
        self.assertEqual(a.trust_level, trust_level)
        self.assertIs(a.revoked, False)

        exp = a.expires_at
        self.assertIsNotNone(exp.tzinfo, "expires_at must be timezone-aware")
        self.assertEqual(exp.utcoffset().total_seconds(), 0)
        left = (exp - harness.utcnow()).total_seconds()
        self.assertGreater(left, ttl_minutes * 60 - 120, exp)
        self.assertLessEqual(left, ttl_minutes * 60 + 5, exp)

        chain = pem_blocks(a.svid_pem)
        self.assertGreaterEqual(len(chain), 1, a.svid_pem)
        authorities = pem_blocks(a.bundle_pem)
        self.assertGreaterEqual(len(authorities), 1, a.bundle_pem)
        server_authorities = {pem_to_der(b) for b in pem_blocks(harness.read_text(
            self.server.bundle_pem))}
        self.assertTrue(server_authorities & {pem_to_der(b) for b in authorities},
                        "bundle_pem holds none of the server's authorities")

        svid = a.x509_svid
        self.assertIsInstance(svid, X509Svid)
        self.assertEqual(svid.spiffe_id, sid)
        self.assertIsInstance(svid.spiffe_id, SpiffeId)
        self.assertEqual(svid.leaf, pem_to_der(chain[0]))
        self.assertEqual(list(svid.cert_chain), [pem_to_der(b) for b in chain])
        self.assertEqual([pem_to_der(b) for b in pem_blocks(svid.cert_chain_pem)],
                         [pem_to_der(b) for b in chain])
        self.assertEqual(svid.expires_at, exp)

        # What the server recorded agrees.
        r = self.admin.get(f"/v1/identities/{a.instance_id}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["spiffe_id"], sid)
        self.assertEqual(r.json["name"], f"{org}/{team}/{agent}")
        self.assertEqual(r.json["trust_level"], trust_level)
        self.assertEqual(sorted(r.json["scope"]), sorted(scopes))
        self.assertLessEqual(abs((harness.parse_time(r.json["not_after"]) - exp)
                                 .total_seconds()), 1.0)
        self.assertIs(r.json["revoked"], False)

    def test_headline_create_under_org_and_team_from_environment(self):
        with environ(TRUSTWARDEN_ORG="acme-corp", TRUSTWARDEN_TEAM="finance-team"):
            a = AgentIdentity.create(name="payment-processor",
                                     scope=["read:transactions", "write:ledger"],
                                     ttl="30m", trust_level="high", **self.connection())
        self._identities.append(a)
        self.check_properties(a, "acme-corp", "finance-team", "payment-processor",
                              ["read:transactions", "write:ledger"], "high", 30)
        self.assertEqual(repr(a), f"AgentIdentity({str(a.spiffe_id)!r})")

    def test_bare_name_without_org_and_team_is_default_default(self):
        with environ(TRUSTWARDEN_ORG=None, TRUSTWARDEN_TEAM=None):
            a = AgentIdentity.create(name="payment-processor", scope=["read:transactions"],
                                     ttl="30m", trust_level="high", **self.connection())
        self._identities.append(a)
        self.check_properties(a, "default", "default", "payment-processor",
                              ["read:transactions"], "high", 30)

    def test_full_name_ignores_org_and_team(self):
        with environ(TRUSTWARDEN_ORG="acme-corp", TRUSTWARDEN_TEAM="finance-team"):
            a = self.create("globex/ops/watcher", ["read:metrics"], ttl="10m", trust_level="low")
        self.check_properties(a, "globex", "ops", "watcher", ["read:metrics"], "low", 10)

    def test_scope_may_be_one_string(self):
        a = self.create("acme/fin/single", "read:transactions", trust_level="low")
        self.assertEqual(a.scopes, ["read:transactions"])

    def test_trust_level_defaults_to_low(self):
        a = AgentIdentity.create("acme/fin/defaults", ["read:transactions"],
                                 **self.connection())
        self._identities.append(a)
        self.assertEqual(a.trust_level, "low")
        self.check_properties(a, "acme", "fin", "defaults", ["read:transactions"], "low", 30)

    def test_headline_code_with_connection_from_environment(self):
        """The module docstring's example, verbatim but for the connector, with the server,
        token, bundle and spool given only by TRUSTWARDEN_*."""
        seen = []

        def postgres(agent, request):
            seen.append((agent, request))
            return {"inserted": 1}

        AgentIdentity.register_connector("postgres", postgres)
        payload = b"INSERT INTO ledger VALUES (42)"
        with environ(TRUSTWARDEN_SERVER=self.server.url, TRUSTWARDEN_TOKEN=self.token,
                     TRUSTWARDEN_BUNDLE=self.server.bundle_json,
                     TRUSTWARDEN_SPOOL=os.path.join(self.tmp, "env-spool"),
                     TRUSTWARDEN_ORG="acme-corp", TRUSTWARDEN_TEAM="finance-team"):
            with AgentIdentity.create(name="payment-processor",
                                      scope=["read:transactions", "write:ledger"],
                                      ttl="30m", trust_level="high") as agent:
                result = agent.call("postgres://prod", "write:ledger", payload)
                self.assertTrue(agent.spiffe_id.path.startswith(
                    "/acme-corp/finance-team/payment-processor/"), agent.spiffe_id)
            self.assertTrue(agent.revoked, "leaving the with block must revoke the identity")
        self.assertEqual(result.response, {"inserted": 1})
        self.assertEqual(len(seen), 1)
        self.assertIs(seen[0][0], agent)
        self.assertEqual(seen[0][1].payload, payload)
        ev = self.trace(result.event_id)["event"]
        self.assertEqual((ev["type"], ev["decision"], ev["resource"], ev["action"]),
                         ("action", "allow", "postgres://prod", "write:ledger"))
        self.assertEqual(ev["payload_digest"], digest(payload))


class CallTest(SdkCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.agent = cls.create("acme-corp/finance-team/payment-processor",
                               ["read:transactions", "write:ledger"], trust_level="high")

    def test_call_returns_the_connectors_object_and_records_allow_and_outcome(self):
        seen = []
        returned = {"rows": [{"id": 1, "amount": "12.50"}], "ok": True, "n": 1}

        def ledger_db(agent, request):
            seen.append((agent, request))
            return returned

        scheme = register(ledger_db, "ledgerdb")
        prompt = "user: pay invoice 42 to ACME"
        payload = b"INSERT INTO ledger VALUES (42, 12.50)"
        resource = f"{scheme}://prod/ledger"
        result = self.agent.call(resource, "write:ledger", payload, input=prompt)

        self.assertIsInstance(result, CallResult)
        self.assertIs(result.response, returned, "the response must be the connector's object")
        self.assertRegex(result.event_id, r"^evt-[0-9a-f]{16,64}$")
        self.assertEqual(len(seen), 1)
        agent, request = seen[0]
        self.assertIs(agent, self.agent, "the connector gets the caller's AgentIdentity")
        self.assertIsInstance(request, CallRequest)
        self.assertEqual(request.resource, resource)
        self.assertEqual(request.action, "write:ledger")
        self.assertEqual(request.payload, payload)
        self.assertIsInstance(request.payload, bytes)

        t = self.trace(result.event_id)
        ev = t["event"]
        self.assertEqual(ev["type"], "action")
        self.assertEqual(ev["decision"], "allow")
        self.assertEqual(ev["instance"], self.agent.spiffe_id)
        self.assertEqual(ev["resource"], resource)
        self.assertEqual(ev["action"], "write:ledger")
        self.assertEqual(ev["input_digest"], digest(prompt))
        self.assertEqual(t["input_digest"], digest(prompt))
        self.assertEqual(ev["payload_digest"], digest(payload))
        self.assertEqual(t["decision"], "allow")
        self.assertTrue(t["inclusion"]["verified"], t["inclusion"])

        outcome = self.outcome_of(self.agent, result.event_id)
        self.assertEqual(outcome["outcome"], "ok")
        self.assertEqual(outcome["instance"], self.agent.spiffe_id)
        self.assertEqual(outcome["payload_digest"], digest(canonical_json(returned)))

        # The same instance, queried by its SPIFFE ID, holds both.
        ids = {e["id"] for e in self.audit(instance=str(self.agent.spiffe_id))}
        self.assertIn(result.event_id, ids)
        self.assertIn(outcome["id"], ids)

    def test_allow_event_is_in_the_ledger_before_the_connector_runs(self):
        client = self.server.client(token=self.token)
        found = []

        def check_ledger(agent, request):
            r = client.get("/v1/audit/events?" + urllib.parse.urlencode(
                {"instance": agent.instance_id, "resource": request.resource,
                 "type": "action", "limit": 100}))
            found.extend(e["event"] for e in r.json["events"])
            return "checked"

        scheme = register(check_ledger, "before")
        result = self.agent.call(f"{scheme}://db/x", "read:transactions")
        self.assertEqual(result.response, "checked")
        self.assertEqual([e["id"] for e in found], [result.event_id],
                         "the allow event must be stored before the connector runs")
        self.assertEqual(found[0]["decision"], "allow")

    def test_inputs_payloads_and_responses_of_every_kind(self):
        responses = iter([b"\x00\xffraw", None, "text", [1, "two", {"three": 3}], 7])

        def kinds(agent, request):
            return next(responses)

        scheme = register(kinds, "kinds")
        r = f"{scheme}://x/y"
        structured_input = {"prompt": "pay", "turn": 3, "tools": ["ledger"]}
        cases = [
            (b"\x00\x01bytes", None, b"\x00\x01bytes", None, b"\x00\xffraw"),
            ("text payload \u00e9", "prompt \u00e9", "text payload \u00e9".encode(),
             "prompt \u00e9".encode(), None),
            (bytearray(b"ba"), structured_input, b"ba", canonical_json(structured_input).encode(),
             "text"),
            (memoryview(b"mv"), b"raw-input", b"mv", b"raw-input",
             [1, "two", {"three": 3}]),
            (b"", None, b"", None, 7),
        ]
        for payload, inp, payload_bytes, input_bytes, expected in cases:
            with self.subTest(payload=payload, input=inp):
                result = self.agent.call(r, "read:transactions", payload, input=inp)
                self.assertEqual(result.response, expected)
                self.assertIs(type(result.response), type(expected))
                ev = self.trace(result.event_id)["event"]
                if payload_bytes:
                    self.assertEqual(ev.get("payload_digest"), digest(payload_bytes))
                if input_bytes is not None:
                    self.assertEqual(ev.get("input_digest"), digest(input_bytes))
                else:
                    self.assertNotIn("input_digest", ev)

    def test_a_connector_may_call_again(self):
        inner = register(lambda agent, request: ["inner-value", request.payload.decode()],
                         "inner")

        def outer(agent, request):
            r = agent.call(f"{inner}://db/x", "read:transactions", b"nested")
            return {"outer": True, "inner": r.response, "inner_event": r.event_id}

        scheme = register(outer, "outer")
        result = run_bounded(lambda: self.agent.call(f"{scheme}://svc/y", "write:ledger"),
                             30, "a call whose connector calls again")
        self.assertEqual(result.response["outer"], True)
        self.assertEqual(result.response["inner"], ["inner-value", "nested"])
        self.assertNotEqual(result.response["inner_event"], result.event_id)
        self.trace(result.response["inner_event"])

    def test_server_spiffe_id_reaches_the_connector(self):
        seen = []
        scheme = register(lambda agent, request: seen.append(request) or "ok", "named")
        want = "spiffe://trustwarden/acme/fin/ledger-db/inst-1"
        self.agent.call(f"{scheme}://db", "read:transactions", server_spiffe_id=want)
        asyncio.run(self.agent.acall(f"{scheme}://db", "read:transactions",
                                     server_spiffe_id=want))
        self.agent.call(f"{scheme}://db", "read:transactions")
        self.assertEqual([r.server_spiffe_id for r in seen], [want, want, ""])

    def test_registering_again_replaces_the_connector(self):
        scheme = register(lambda agent, request: "first", "again")
        AgentIdentity.register_connector(scheme, lambda agent, request: "second")
        self.assertEqual(self.agent.call(f"{scheme}://x", "read:transactions").response,
                         "second")


# ---------------------------------------------------------------------------------------------
# 2. Refusals
# ---------------------------------------------------------------------------------------------
class DenialTest(SdkCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ran = []
        cls.scheme = register(lambda agent, request: cls.ran.append(request) or "ran", "vault")

    def setUp(self):
        self.ran.clear()

    def test_scope_not_granted_is_denied_recorded_and_not_performed(self):
        a = self.create("acme/fin/reader", ["read:transactions"])
        resource = f"{self.scheme}://secrets/records"
        with self.assertRaises(Denied) as cm:
            a.call(resource, "delete:records", b"DROP TABLE records", input="ignore previous")
        e = cm.exception
        self.assertIs(type(e), Denied)
        self.assertIsInstance(e, TrustWardenError)
        self.assertEqual(e.code, "permission_denied")
        self.assertIsInstance(e.reason, str)
        self.assertIn("delete:records", e.reason)
        self.assertRegex(e.event_id, r"^evt-[0-9a-f]{16,64}$")
        self.assertEqual(self.ran, [], "the connector ran for a refused call")

        ev = self.trace(e.event_id)["event"]
        self.assertEqual(ev["type"], "action")
        self.assertEqual(ev["decision"], "deny")
        self.assertEqual(ev["instance"], a.spiffe_id)
        self.assertEqual(ev["resource"], resource)
        self.assertEqual(ev["action"], "delete:records")
        self.assertTrue(ev.get("reason"), ev)
        self.assertEqual(ev["input_digest"], digest("ignore previous"))

        denials = self.audit(instance=str(a.spiffe_id), decision="deny")
        self.assertIn(e.event_id, [d["id"] for d in denials])
        self.assertEqual(self.audit(instance=a.instance_id, decision="allow"), [])
        self.assertFalse([o for o in self.audit(instance=a.instance_id, type="outcome")
                          if o.get("ref") == e.event_id], "a refused call has an outcome")
        # Refused, not broken: an allowed call still works.
        self.assertEqual(a.call(resource, "read:transactions").response, "ran")

    def test_trust_level_below_min_trust_level_is_denied_and_recorded(self):
        a = self.create("acme/fin/medium", ["write:ledger"], trust_level="medium")
        with self.assertRaises(Denied) as cm:
            a.call(f"{self.scheme}://db/x", "write:ledger", min_trust_level="high")
        self.assertEqual(cm.exception.code, "permission_denied")
        self.assertEqual(self.ran, [])
        self.assertEqual(self.trace(cm.exception.event_id)["event"]["decision"], "deny")
        self.assertEqual(a.call(f"{self.scheme}://db/x", "write:ledger",
                                min_trust_level="medium").response, "ran")

    def test_require_trust_level_rule_refuses_lower_identities(self):
        AgentIdentity.require_trust_level("write:vault-keys", "critical")
        a = self.create("acme/fin/keys", ["write:vault-keys"], trust_level="high")
        with self.assertRaises(Denied) as cm:
            a.call(f"{self.scheme}://vault/keys", "write:vault-keys")
        self.assertEqual(self.ran, [])
        self.assertEqual(self.trace(cm.exception.event_id)["event"]["decision"], "deny")


# ---------------------------------------------------------------------------------------------
# 3. spawn()
# ---------------------------------------------------------------------------------------------
class SpawnTest(SdkCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.parent = cls.create("acme/fin/orchestrator", ["read:transactions", "write:ledger"],
                                ttl="30m", trust_level="high")

    def spawn(self, *args, **kw):
        child = self.parent.spawn(*args, **kw)
        self._identities.append(child)
        return child

    def test_child_with_narrower_scope_works_under_the_parents_org_and_team(self):
        seen = []
        scheme = register(lambda agent, request: seen.append(agent) or "child-ok", "child")
        child = self.spawn("reconciler", ["read:transactions"], ttl="10m", trust_level="medium")
        self.assertTrue(child.spiffe_id.path.startswith("/acme/fin/reconciler/"),
                        child.spiffe_id)
        self.assertNotEqual(child.instance_id, self.parent.instance_id)
        self.assertEqual(child.scopes, ["read:transactions"])
        self.assertEqual(child.trust_level, "medium")
        self.assertLessEqual(child.expires_at, self.parent.expires_at)
        left = (child.expires_at - harness.utcnow()).total_seconds()
        self.assertLessEqual(left, 10 * 60 + 5)
        self.assertGreater(left, 10 * 60 - 120)

        result = child.call(f"{scheme}://db/tx", "read:transactions")
        self.assertEqual(result.response, "child-ok")
        self.assertIs(seen[0], child)
        t = self.trace(result.event_id)
        self.assertEqual(t["event"]["instance"], child.spiffe_id)
        self.assertEqual(t["event"].get("parent"), self.parent.spiffe_id)
        self.assertIn(self.parent.spiffe_id, [c["spiffe_id"] for c in t["chain"]])

        record = self.admin.get(f"/v1/identities/{child.instance_id}").json
        self.assertEqual(record["parent"], self.parent.spiffe_id)

        # The child's own scopes bound it, not the parent's.
        with self.assertRaises(Denied):
            child.call(f"{scheme}://db/tx", "write:ledger")

    def test_child_cannot_ask_for_a_scope_its_parent_lacks(self):
        with self.assertRaises(Denied) as cm:
            self.spawn("escalator", ["delete:records"])
        self.assertEqual(cm.exception.code, "permission_denied")
        with self.assertRaises(Denied):
            self.spawn("escalator", ["read:transactions", "write:*"])

    def test_child_cannot_exceed_the_parents_trust_level(self):
        medium = self.spawn("middle", ["read:transactions"], trust_level="medium")
        with self.assertRaises(Denied):
            child = medium.spawn("upstart", ["read:transactions"], trust_level="high")
            self._identities.append(child)

    def test_child_lifetime_is_cut_to_the_parents(self):
        child = self.spawn("long-lived", ["read:transactions"], ttl="2h")
        self.assertLessEqual(child.expires_at, self.parent.expires_at)

    def test_full_child_name_and_grandchild(self):
        child = self.spawn("acme/fin/auditor", ["read:transactions", "write:ledger"])
        grandchild = child.spawn("sampler", ["read:transactions"], ttl="5m")
        self._identities.append(grandchild)
        self.assertTrue(grandchild.spiffe_id.path.startswith("/acme/fin/sampler/"))
        self.assertLessEqual(grandchild.expires_at, child.expires_at)
        result = grandchild.call(f"{ECHO}://x", "read:transactions")
        chain = [c["spiffe_id"] for c in self.trace(result.event_id)["chain"]]
        self.assertIn(child.spiffe_id, chain)
        self.assertIn(self.parent.spiffe_id, chain)


# ---------------------------------------------------------------------------------------------
# 4. Revocation
# ---------------------------------------------------------------------------------------------
class RevocationTest(SdkCase):

    def revoke(self, **kw):
        return trustwarden.revoke(server=self.server.url, token=self.token,
                                  bundle=self.server.bundle_json, **kw)

    def test_revoke_instance_reaches_the_identity_and_no_other(self):
        ran = []
        scheme = register(lambda agent, request: ran.append(agent) or "ok", "rev")
        a = self.create("acme/fin/victim", ["read:transactions"])
        b = self.create("acme/fin/bystander", ["read:transactions"])
        a.call(f"{scheme}://x", "read:transactions")
        ran.clear()

        before = self.server.client().get("/v1/revocations?after=0").json["sequence"]
        seq = self.revoke(instance=a, reason="prompt injection")
        self.assertIs(type(seq), int)
        self.assertGreater(seq, before)
        self.assert_revoked_soon(a)
        self.assertFalse(b.revoked)

        with self.assertRaises(Revoked) as cm:
            a.call(f"{scheme}://x", "read:transactions")
        self.assertIsInstance(cm.exception, Denied)
        self.assertIsInstance(cm.exception, TrustWardenError)
        self.assertTrue(cm.exception.code)
        self.assertEqual(cm.exception.event_id, "",
                         "a revoked identity cannot record, so its refusal has no event id")
        self.assertEqual(ran, [], "a revoked identity's connector ran")

        self.assertEqual(b.call(f"{scheme}://x", "read:transactions").response, "ok")
        entry = [e for e in self.revocation_entries() if e["sequence"] == seq]
        self.assertEqual(len(entry), 1)
        self.assertEqual(entry[0]["instances"], [a.instance_id])
        self.assertEqual(entry[0]["reason"], "prompt injection")

    def test_revoke_by_instance_id_and_by_agent_name(self):
        a = self.create("acme/fin/by-id", ["read:transactions"])
        seq1 = self.revoke(instance=a.instance_id, reason="by id")
        self.assert_revoked_soon(a)
        b1 = self.create("acme/fin/batch-job", ["read:transactions"])
        b2 = self.create("acme/fin/batch-job", ["read:transactions"])
        other = self.create("acme/fin/batch-job-2", ["read:transactions"])
        seq2 = self.revoke(agent="acme/fin/batch-job", reason="by name")
        self.assertGreater(seq2, seq1)
        self.assert_revoked_soon(b1)
        self.assert_revoked_soon(b2)
        self.assertFalse(other.revoked)
        for x in (a, b1, b2):
            with self.assertRaises(Revoked):
                x.call(f"{ECHO}://x", "read:transactions")
        other.call(f"{ECHO}://x", "read:transactions")

    def test_subtree_revocation_reaches_children(self):
        parent = self.create("acme/fin/root-agent", ["read:transactions"])
        child = parent.spawn("leaf-agent", ["read:transactions"])
        self._identities.append(child)
        self.revoke(subtree=parent, reason="subtree")
        self.assert_revoked_soon(parent)
        self.assert_revoked_soon(child)
        with self.assertRaises(Revoked):
            child.call(f"{ECHO}://x", "read:transactions")
        with self.assertRaises(Denied):  # a revoked parent cannot delegate
            self._identities.append(parent.spawn("late", ["read:transactions"]))

    def test_with_block_revokes_on_exit_with_its_children(self):
        with self.create("acme/fin/scoped", ["read:transactions"]) as a:
            self.assertFalse(a.revoked)
            a.call(f"{ECHO}://x", "read:transactions")
            child = a.spawn("scoped-child", ["read:transactions"])
            self._identities.append(child)
        self.assertTrue(a.revoked)
        with self.assertRaises(Revoked):
            a.call(f"{ECHO}://x", "read:transactions")
        self.assert_revoked_soon(child)
        with self.assertRaises(Revoked):
            child.call(f"{ECHO}://x", "read:transactions")
        revoked = {i for e in self.revocation_entries() for i in e["instances"]}
        self.assertIn(a.instance_id, revoked)
        self.assertIn(child.instance_id, revoked)
        self.assertIs(self.admin.get(f"/v1/identities/{a.instance_id}").json["revoked"], True)
        a.close()  # idempotent
        a.close()

    def test_with_block_revokes_when_the_body_raises(self):
        class Boom(Exception):
            pass

        with self.assertRaises(Boom):
            with self.create("acme/fin/raiser", ["read:transactions"]) as a:
                raise Boom()
        self.assertTrue(a.revoked)
        revoked = {i for e in self.revocation_entries() for i in e["instances"]}
        self.assertIn(a.instance_id, revoked)

    def test_close_after_an_operator_revoked_is_quiet(self):
        a = self.create("acme/fin/quiet", ["read:transactions"])
        self.revoke(instance=a, reason="operator first")
        self.assert_revoked_soon(a)
        a.close()
        a.close()
        self.assertTrue(a.revoked)

    def test_revoke_needs_exactly_one_target(self):
        a = self.create("acme/fin/untouched", ["read:transactions"])
        before = self.server.client().get("/v1/revocations?after=0").json["sequence"]
        for kw in ({}, {"instance": a, "agent": "acme/fin/untouched"},
                   {"instance": a, "subtree": a}):
            with self.subTest(targets=sorted(kw)):
                with self.assertRaises(InvalidArgument):
                    self.revoke(reason="ambiguous", **kw)
        self.assertEqual(self.server.client().get("/v1/revocations?after=0").json["sequence"],
                         before, "a refused revoke() revoked something")
        self.assertFalse(a.revoked)

    def test_garbage_collection_revokes_unless_detached(self):
        conn = self.connection()
        kept = AgentIdentity.create("acme/fin/detached", ["read:transactions"], **conn)
        kept_id = kept.instance_id
        kept.detach()
        del kept
        dropped = AgentIdentity.create("acme/fin/dropped", ["read:transactions"], **conn)
        dropped_id = dropped.instance_id
        del dropped
        gc.collect()

        def revoked_ids():
            ids = {i for e in self.revocation_entries() for i in e["instances"]}
            return ids if dropped_id in ids else None
        ids = poll(revoked_ids, STALENESS_BOUND, "the collected identity's revocation")
        self.assertNotIn(kept_id, ids, "a detached identity was revoked when collected")
        self.assertIs(self.admin.get(f"/v1/identities/{kept_id}").json["revoked"], False)

    def test_revoke_with_a_bad_token_is_refused(self):
        a = self.create("acme/fin/safe", ["read:transactions"])
        with self.assertRaises(TrustWardenError) as cm:
            trustwarden.revoke(instance=a, server=self.server.url, token="tw_nobody_nothing",
                               bundle=self.server.bundle_json)
        self.assertIn(cm.exception.code, ("unauthenticated", "permission_denied"))
        self.assertFalse(a.revoked)


# ---------------------------------------------------------------------------------------------
# 5. Exceptions and codes
# ---------------------------------------------------------------------------------------------
class ErrorsTest(SdkCase):
    POLICY = ADMIN_ENTRY  # admin may grant read:*, write:*, delete:* only, up to high

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.agent = cls.create("acme/fin/errors", ["read:transactions"])

    def assert_nothing_recorded(self, fn):
        before = len(self.audit(instance=self.agent.instance_id))
        fn()
        self.assertEqual(len(self.audit(instance=self.agent.instance_id)), before,
                         "a malformed call was recorded")

    def assert_invalid(self, fn):
        with self.assertRaises(InvalidArgument) as cm:
            fn()
        self.assertIsInstance(cm.exception, ValueError)
        self.assertIsInstance(cm.exception, TrustWardenError)
        self.assertEqual(cm.exception.code, "invalid_argument")
        self.assertTrue(str(cm.exception))
        return cm.exception

    def test_exception_hierarchy(self):
        self.assertTrue(issubclass(Denied, TrustWardenError))
        self.assertTrue(issubclass(Revoked, Denied))
        self.assertTrue(issubclass(Expired, Denied))
        self.assertTrue(issubclass(Unavailable, TrustWardenError))
        self.assertTrue(issubclass(InvalidArgument, TrustWardenError))
        self.assertTrue(issubclass(InvalidArgument, ValueError))
        self.assertFalse(issubclass(Unavailable, Denied))

    def test_bad_scope_strings(self):
        self.assert_invalid(lambda: self.create("acme/fin/x", ["not a scope"]))
        self.assert_invalid(lambda: self.create("acme/fin/x", ["readtransactions"]))
        self.assert_nothing_recorded(lambda: [
            self.assert_invalid(lambda: self.agent.call(f"{ECHO}://x", "readtransactions")),
            self.assert_invalid(lambda: self.agent.call(f"{ECHO}://x", "")),
            self.assert_invalid(lambda: self.agent.call(f"{ECHO}://x", "read:")),
        ])

    def test_resource_not_a_uri(self):
        self.assert_nothing_recorded(lambda: [
            self.assert_invalid(lambda: self.agent.call("not a uri", "read:transactions")),
            self.assert_invalid(lambda: self.agent.call("", "read:transactions")),
        ])

    def test_no_connector_for_the_scheme(self):
        def call():
            with self.assertRaises(TrustWardenError) as cm:
                self.agent.call("nosuchscheme://db/x", "read:transactions")
            self.assertNotIsInstance(cm.exception, Denied, "a missing connector is no refusal")
            self.assertTrue(cm.exception.code)
            self.assertNotEqual(cm.exception.code, "unknown")
            self.assertIn("nosuchscheme", str(cm.exception))
        self.assert_nothing_recorded(call)

    def test_server_unreachable_at_create(self):
        with self.assertRaises(Unavailable) as cm:
            AgentIdentity.create("acme/fin/offline", ["read:transactions"],
                                 server=f"https://127.0.0.1:{closed_port()}", token=self.token,
                                 bundle=self.server.bundle_json, spool=self.spool)
        self.assertIn(cm.exception.code, ("unavailable", "deadline_exceeded"))

    def test_bad_token(self):
        for token in ("tw_bogus_bogus", "not-even-a-token"):
            with self.subTest(token=token):
                with self.assertRaises(TrustWardenError) as cm:
                    AgentIdentity.create("acme/fin/x", ["read:transactions"],
                                         server=self.server.url, token=token,
                                         bundle=self.server.bundle_json, spool=self.spool)
                self.assertIn(cm.exception.code, ("unauthenticated", "permission_denied"))
                self.assertNotIn(self.token, str(cm.exception))

    def test_missing_token_and_missing_bundle(self):
        with self.assertRaises(TrustWardenError) as cm:
            AgentIdentity.create("acme/fin/x", ["read:transactions"], server=self.server.url,
                                 bundle=self.server.bundle_json, spool=self.spool)
        self.assertNotEqual(cm.exception.code, "unknown")
        with self.assertRaises(TrustWardenError) as cm:
            AgentIdentity.create("acme/fin/x", ["read:transactions"], server=self.server.url,
                                 token=self.token, bundle=os.path.join(self.tmp, "nope.json"),
                                 spool=self.spool)
        self.assertNotEqual(cm.exception.code, "unknown")

    def test_bad_ttl_trust_level_and_name(self):
        self.assert_invalid(lambda: self.create("acme/fin/x", ttl="forever"))
        self.assert_invalid(lambda: self.create("acme/fin/x", trust_level="supreme"))
        self.assert_invalid(lambda: self.create("bad name!"))
        self.assert_invalid(lambda: self.create("Acme/Fin/Upper"))

    def test_policy_refusals_are_denied(self):
        with self.assertRaises(Denied) as cm:
            self.create("acme/fin/x", ["read:transactions"], trust_level="critical")
        self.assertEqual(cm.exception.code, "permission_denied")
        # A scope beyond what the policy lets admin grant (read:*, write:*, delete:* here).
        with self.assertRaises(Denied) as cm:
            self.create("acme/fin/capped", ["read:transactions", "exec:shell"])
        self.assertEqual(cm.exception.code, "permission_denied")
        self.assertIn("exec:shell", cm.exception.reason)

    def test_spiffe_names(self):
        sid = SpiffeId("spiffe://example.org/acme/payments/api")
        self.assertEqual(sid.trust_domain, "example.org")
        self.assertEqual(sid.path, "/acme/payments/api")
        self.assertEqual(SpiffeId("spiffe://example.org").path, "")
        self.assertEqual(TrustDomain("spiffe://example.org"), "example.org")
        self.assertEqual(TrustDomain("example.org").id(), "spiffe://example.org")
        for bad in ("http://example.org/x", "spiffe://", "spiffe://Example.org/x",
                    "spiffe://example.org/a//b", "spiffe://example.org/x/"):
            with self.subTest(bad=bad):
                self.assert_invalid(lambda: SpiffeId(bad))
        self.assert_invalid(lambda: TrustDomain("bad domain"))

    def test_error_repr_and_attributes(self):
        with self.assertRaises(Denied) as cm:
            self.agent.call(f"{ECHO}://x", "write:ledger")
        e = cm.exception
        self.assertIn("Denied(", repr(e))
        self.assertIn("permission_denied", repr(e))
        self.assertEqual(e.reason, str(e))
        self.assertTrue(e.event_id)
        e = TrustWardenError("boom", code="internal")
        self.assertEqual((e.code, e.reason, e.event_id), ("internal", "boom", ""))


# ---------------------------------------------------------------------------------------------
# 6. A connector's own exception
# ---------------------------------------------------------------------------------------------
class LedgerWriteError(RuntimeError):
    """A resource's own failure, with state of its own."""

    def __init__(self, message, table):
        super().__init__(message)
        self.table = table


def failing_ledger_connector(agent, request):
    raise LedgerWriteError(f"disk quota exceeded writing {request.payload.decode()}",
                           table="transactions")


class ConnectorExceptionTest(SdkCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.agent = cls.create("acme/fin/writer", ["read:transactions", "write:ledger"])

    def test_the_connectors_exception_is_reraised_unchanged_and_recorded(self):
        raised = []

        def connector(agent, request):
            try:
                failing_ledger_connector(agent, request)
            except LedgerWriteError as e:
                raised.append(e)
                raise

        scheme = register(connector, "failing")
        resource = f"{scheme}://prod/ledger"
        try:  # not assertRaises, which strips the traceback
            self.agent.call(resource, "write:ledger", b"row 7", input="prompt 7")
        except LedgerWriteError as caught:
            e, tb = caught, caught.__traceback__
        else:
            self.fail("the connector's exception did not reach the caller")
        self.assertIs(type(e), LedgerWriteError)
        self.assertIs(e, raised[0], "the very exception object must reach the caller")
        self.assertEqual(str(e), "disk quota exceeded writing row 7")
        self.assertEqual(e.table, "transactions")
        self.assertNotIsInstance(e, TrustWardenError)
        frames = [f.name for f in traceback.extract_tb(tb)]
        self.assertIn("failing_ledger_connector", frames,
                      f"the traceback lost the connector's frames: {frames}")
        self.assertIn(sys._getframe().f_code.co_name, frames)

        # The ledger: the allow event, then an outcome naming the failure.
        allows = [ev for ev in self.audit(instance=self.agent.instance_id, type="action",
                                          resource=resource)]
        self.assertEqual(len(allows), 1, allows)
        self.assertEqual(allows[0]["decision"], "allow")
        outcome = self.outcome_of(self.agent, allows[0]["id"])
        self.assertTrue(outcome["outcome"].startswith("error"), outcome)
        text = outcome.get("reason", "") + outcome["outcome"]
        self.assertIn("LedgerWriteError", text)
        self.assertIn("disk quota exceeded writing row 7", text)

        # The identity is fine afterwards.
        self.assertEqual(self.agent.call(f"{ECHO}://x", "read:transactions").response["payload"],
                         "")

    def test_builtin_exception_types_pass_through(self):
        for exc in (KeyError("missing-key"), ValueError("not a TrustWarden error"),
                    ConnectionResetError(104, "reset by peer")):
            with self.subTest(exc=exc):
                def connector(agent, request, exc=exc):
                    raise exc
                scheme = register(connector, "builtin")
                with self.assertRaises(type(exc)) as cm:
                    self.agent.call(f"{scheme}://x", "read:transactions")
                self.assertIs(cm.exception, exc)
                self.assertNotIsInstance(cm.exception, InvalidArgument)

    def test_the_connectors_odd_result_is_the_response(self):
        class Row:
            pass

        row = Row()
        scheme = register(lambda agent, request: row, "odd")
        self.assertIs(self.agent.call(f"{scheme}://x", "read:transactions").response, row)


# ---------------------------------------------------------------------------------------------
# 7. Concurrency: threads and asyncio
# ---------------------------------------------------------------------------------------------
request_id = contextvars.ContextVar("request_id", default="unset")


class ConcurrencyTest(SdkCase):

    def test_threads_share_one_identity(self):
        a = self.create("acme/fin/threaded", ["read:transactions"])
        other = self.create("acme/fin/threaded-other", ["read:transactions"])
        threads, per_thread = 16, 8
        barrier = threading.Barrier(threads)
        results, errors = [], []
        lock = threading.Lock()

        def worker(i):
            try:
                barrier.wait(10)
                for j in range(per_thread):
                    payload = f"t{i}-c{j}"
                    r = a.call(f"{ECHO}://db/x", "read:transactions", payload.encode())
                    if r.response["payload"] != payload:
                        raise AssertionError(f"call {payload} got {r.response!r}")
                    if r.response["instance"] != a.instance_id:
                        raise AssertionError(f"the connector got another identity: {r!r}")
                    o = other.call(f"{ECHO}://db/y", "read:transactions", payload.encode())
                    if o.response != {"resource": f"{ECHO}://db/y", "action": "read:transactions",
                                      "payload": payload, "instance": other.instance_id}:
                        raise AssertionError(f"the other identity's call got {o.response!r}")
                    with lock:
                        results.append(r.event_id)
            except BaseException as e:
                with lock:
                    errors.append(f"thread {i}: {e!r}")

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in pool), "threads still calling")
        self.assertEqual(errors, [])
        self.assertEqual(len(results), threads * per_thread)
        self.assertEqual(len(set(results)), threads * per_thread, "event ids repeat")

        def all_recorded():
            got = {e["id"] for e in self.audit(instance=a.instance_id, type="action",
                                               decision="allow")}
            return set(results) <= got
        poll(all_recorded, LEDGER_WAIT, "every threaded call's allow event", interval=0.1)

    def test_asyncio_gather_of_100_calls_keeps_the_loop_free(self):
        a = self.create("acme/fin/async", ["read:transactions"])
        state = {"in_flight": 0, "max_in_flight": 0, "contexts": set()}
        lock = threading.Lock()

        def slow(agent, request):
            with lock:
                state["in_flight"] += 1
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
                state["contexts"].add(request_id.get())
            try:
                time.sleep(0.05)
            finally:
                with lock:
                    state["in_flight"] -= 1
            return {"n": request.payload.decode()}

        scheme = register(slow, "slow")
        calls = 100

        async def main():
            loop_thread = threading.get_ident()
            request_id.set("req-from-the-loop")
            seen_in_flight = []
            stop = asyncio.Event()

            async def ticker():
                while not stop.is_set():
                    seen_in_flight.append(state["in_flight"])
                    await asyncio.sleep(0.005)

            tick = asyncio.create_task(ticker())
            started = time.monotonic()
            results = await asyncio.gather(*(
                a.acall(f"{scheme}://db/x", "read:transactions", str(i).encode())
                for i in range(calls)))
            elapsed = time.monotonic() - started
            stop.set()
            await tick
            self.assertEqual(threading.get_ident(), loop_thread)
            return results, elapsed, seen_in_flight

        results, elapsed, seen_in_flight = asyncio.run(asyncio.wait_for(main(), 60))
        self.assertEqual([r.response["n"] for r in results], [str(i) for i in range(calls)])
        self.assertEqual(len({r.event_id for r in results}), calls)
        self.assertTrue(any(n > 0 for n in seen_in_flight),
                        "the event loop never ran while a connector was in flight: acall "
                        "blocks the loop")
        self.assertGreater(state["max_in_flight"], 1, "acall calls never overlapped")
        self.assertLess(elapsed, calls * 0.05 / 2,
                        f"{calls} acalls of a 50 ms connector took {elapsed:.2f}s")
        self.assertEqual(state["contexts"], {"req-from-the-loop"},
                         "acall's connector must run in the caller's context")

    def test_acreate_aspawn_acall_aclose(self):
        async def main():
            a = await AgentIdentity.acreate("acme/fin/async-born",
                                            ["read:transactions", "write:ledger"], "30m",
                                            "high", **self.connection())
            self._identities.append(a)
            self.assertIsInstance(a, AgentIdentity)
            self.assertTrue(a.spiffe_id.path.startswith("/acme/fin/async-born/"))
            self.assertEqual(a.trust_level, "high")
            r = await a.acall(f"{ECHO}://db/x", "write:ledger", b"async", input="why")
            self.assertEqual(r.response["payload"], "async")
            with self.assertRaises(Denied):
                await a.acall(f"{ECHO}://db/x", "delete:records")
            child = await a.aspawn("async-child", ["read:transactions"])
            self._identities.append(child)
            self.assertEqual(child.scopes, ["read:transactions"])
            async with a:
                pass
            self.assertTrue(a.revoked)
            return r, child

        r, child = asyncio.run(asyncio.wait_for(main(), 60))
        self.assertEqual(self.trace(r.event_id)["event"]["input_digest"], digest("why"))
        self.assert_revoked_soon(child)

    def test_acreate_errors_are_the_same_exceptions(self):
        async def main():
            with self.assertRaises(Unavailable):
                await AgentIdentity.acreate(
                    "acme/fin/x", ["read:transactions"],
                    server=f"https://127.0.0.1:{closed_port()}", token=self.token,
                    bundle=self.server.bundle_json, spool=self.spool)
            with self.assertRaises(InvalidArgument):
                await AgentIdentity.acreate("acme/fin/x", ["bad"], **self.connection())
        asyncio.run(asyncio.wait_for(main(), 30))


# ---------------------------------------------------------------------------------------------
# 8. @agent.tool
# ---------------------------------------------------------------------------------------------
FUTURE_SOURCE = '''
from __future__ import annotations
import decimal
from typing import Optional


class Account:
    name = "acc"


class Receipt(dict):
    pass


def settle(amount: decimal.Decimal, account: Account, note: Optional[str] = None,
           *, dry_run: bool = False) -> Receipt:
    """Settles `account` for `amount`."""
    return Receipt(amount=str(amount))
'''


class ToolTest(SdkCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.agent = cls.create("acme/fin/tool-user", ["read:transactions", "write:ledger"])

    def tool_actions(self, tool_name, **query):
        return self.audit(instance=self.agent.instance_id, type="action",
                          resource=f"tool:{tool_name}", **query)

    def test_tool_keeps_the_functions_metadata(self):
        def transfer(amount: int, currency: str = "EUR", *, memo: Optional[str] = None
                     ) -> Dict[str, Any]:
            """Moves `amount` to the ledger."""
            return {}

        wrapped = self.agent.tool("write:ledger")(transfer)
        self.assertEqual(wrapped.__name__, "transfer")
        self.assertEqual(wrapped.__qualname__, transfer.__qualname__)
        self.assertEqual(wrapped.__doc__, "Moves `amount` to the ledger.")
        self.assertEqual(wrapped.__module__, __name__)
        self.assertIs(inspect.unwrap(wrapped), transfer)
        sig = inspect.signature(wrapped)
        self.assertEqual(sig, inspect.signature(transfer))
        self.assertEqual(list(sig.parameters), ["amount", "currency", "memo"])
        self.assertEqual(sig.parameters["currency"].default, "EUR")
        self.assertEqual(sig.parameters["memo"].kind, inspect.Parameter.KEYWORD_ONLY)
        self.assertEqual(sig.parameters["amount"].annotation, int)
        self.assertEqual(sig.return_annotation, Dict[str, Any])
        self.assertEqual(typing.get_type_hints(wrapped),
                         {"amount": int, "currency": str, "memo": Optional[str],
                          "return": Dict[str, Any]})
        self.assertFalse(inspect.iscoroutinefunction(wrapped))
        self.assertTrue(callable(wrapped))

    def test_tool_with_string_annotations(self):
        ns = {"__name__": "future_tools"}
        exec(compile(FUTURE_SOURCE, "<future_tools>", "exec"), ns)
        settle = ns["settle"]
        wrapped = self.agent.tool("write:ledger")(settle)
        self.assertEqual(wrapped.__annotations__, settle.__annotations__)
        self.assertEqual(wrapped.__annotations__["account"], "Account")
        self.assertEqual(inspect.signature(wrapped), inspect.signature(settle))
        hints = typing.get_type_hints(wrapped)
        self.assertEqual(hints, typing.get_type_hints(settle))
        self.assertIs(hints["amount"], decimal.Decimal)
        self.assertIs(hints["account"], ns["Account"])
        self.assertIs(hints["return"], ns["Receipt"])
        self.assertEqual(hints["note"], Optional[str])
        self.assertEqual(wrapped.__module__, "future_tools")
        self.assertEqual(wrapped.__doc__, "Settles `account` for `amount`.")

    def test_invoking_a_tool_records_its_arguments(self):
        ran = []

        @self.agent.tool("write:ledger")
        def post_entry(amount: int, currency: str = "EUR", *, memo: Optional[str] = None):
            """Posts an entry."""
            ran.append((amount, currency, memo))
            return {"posted": amount, "currency": currency, "memo": memo}

        out = post_entry(25, memo="invoice 42")
        self.assertEqual(out, {"posted": 25, "currency": "EUR", "memo": "invoice 42"})
        out2 = post_entry(amount=25, memo="invoice 42")
        self.assertEqual(out2, out)
        self.assertEqual(ran, [(25, "EUR", "invoice 42")] * 2)

        expected = digest(canonical_json({"amount": 25, "currency": "EUR",
                                          "memo": "invoice 42"}))
        actions = poll(lambda: (lambda evs: evs if len(evs) >= 2 else None)(
            self.tool_actions("post_entry")), LEDGER_WAIT, "the tool's events")
        self.assertEqual(len(actions), 2, actions)
        for ev in actions:
            self.assertEqual(ev["decision"], "allow")
            self.assertEqual(ev["action"], "write:ledger")
            self.assertEqual(ev["input_digest"], expected,
                             "the input must be the canonical JSON of the bound arguments")
            outcome = self.outcome_of(self.agent, ev["id"])
            self.assertEqual(outcome["outcome"], "ok")
            self.assertEqual(outcome["payload_digest"], digest(canonical_json(out)))

    def test_tool_name_override(self):
        @self.agent.tool("read:transactions", name="ledger_lookup")
        def lookup(key):
            return f"value of {key}"

        self.assertEqual(lookup.__name__, "lookup")
        self.assertEqual(lookup("k1"), "value of k1")
        [ev] = self.tool_actions("ledger_lookup")
        self.assertEqual(ev["input_digest"], digest(canonical_json({"key": "k1"})))
        self.assertEqual(self.tool_actions("lookup"), [])

    def test_tool_whose_scope_is_not_granted_does_not_run(self):
        ran = []

        @self.agent.tool("delete:records")
        def purge(table: str) -> int:
            ran.append(table)
            return 0

        with self.assertRaises(Denied) as cm:
            purge("transactions")
        self.assertEqual(ran, [], "a refused tool's body ran")
        self.assertEqual(cm.exception.code, "permission_denied")
        ev = self.trace(cm.exception.event_id)["event"]
        self.assertEqual((ev["resource"], ev["action"], ev["decision"]),
                         ("tool:purge", "delete:records", "deny"))
        self.assertEqual(ev["input_digest"], digest(canonical_json({"table": "transactions"})))

    def test_tool_errors(self):
        ran = []

        @self.agent.tool("write:ledger")
        def strict(amount: int) -> int:
            ran.append(amount)
            if amount < 0:
                raise LedgerWriteError("negative amount", table="ledger")
            return amount

        with self.assertRaises(TypeError):
            strict()
        with self.assertRaises(TypeError):
            strict(1, 2)
        self.assertEqual(ran, [])
        self.assertEqual(self.tool_actions("strict"), [], "a bad invocation was recorded")
        with self.assertRaises(LedgerWriteError) as cm:
            strict(-5)
        self.assertEqual(str(cm.exception), "negative amount")
        [ev] = self.tool_actions("strict")
        outcome = self.outcome_of(self.agent, ev["id"])
        self.assertIn("negative amount", outcome.get("reason", "") + outcome["outcome"])

    def test_async_tool(self):
        ran = []

        @self.agent.tool("read:transactions")
        async def fetch_balance(account: str, limit: int = 3) -> List[str]:
            """Fetches balances."""
            ran.append((threading.get_ident(), asyncio.get_running_loop(), request_id.get()))
            await asyncio.sleep(0.01)
            return [account] * limit

        @self.agent.tool("delete:records")
        async def purge_async(table: str) -> None:
            ran.append("purge")

        self.assertTrue(inspect.iscoroutinefunction(fetch_balance))
        self.assertTrue(asyncio.iscoroutinefunction(fetch_balance))
        self.assertEqual(fetch_balance.__name__, "fetch_balance")
        self.assertEqual(fetch_balance.__doc__, "Fetches balances.")
        self.assertEqual(list(inspect.signature(fetch_balance).parameters), ["account", "limit"])
        self.assertEqual(typing.get_type_hints(fetch_balance),
                         {"account": str, "limit": int, "return": List[str]})

        async def main():
            request_id.set("tool-ctx")
            loop = asyncio.get_running_loop()
            one = await fetch_balance("acc-1", limit=2)
            many = await asyncio.gather(*(fetch_balance(f"acc-{i}", 1) for i in range(10)))
            with self.assertRaises(Denied):
                await purge_async("ledger")
            return loop, threading.get_ident(), one, many

        loop, loop_thread, one, many = asyncio.run(asyncio.wait_for(main(), 60))
        self.assertEqual(one, ["acc-1", "acc-1"])
        self.assertEqual(many, [[f"acc-{i}"] for i in range(10)])
        self.assertNotIn("purge", ran, "a refused async tool's body ran")
        self.assertEqual(len(ran), 11)
        for thread, body_loop, ctx in ran:
            self.assertIs(body_loop, loop, "an async tool runs on the caller's event loop")
            self.assertEqual(thread, loop_thread)
            self.assertEqual(ctx, "tool-ctx")
        actions = self.tool_actions("fetch_balance")
        self.assertEqual(len(actions), 11)
        self.assertIn(digest(canonical_json({"account": "acc-1", "limit": 2})),
                      [e["input_digest"] for e in actions])


# ---------------------------------------------------------------------------------------------
# 9. ssl_context()
# ---------------------------------------------------------------------------------------------
class SslContextTest(SdkCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a = cls.create("acme/fin/ledger-api", ["read:transactions", "write:ledger"],
                           trust_level="high")
        cls.b = cls.create("acme/fin/ledger-client", ["read:transactions"], trust_level="medium")
        cls.server_ctx = cls.a.ssl_context(server_side=True)
        cls.tls = TlsServer(cls.server_ctx)
        cls.addClassCleanup(cls.tls.close)
        # A second trust domain.
        cls.other = Server(os.path.join(cls.tmp, "other"), trust_domain="other")
        cls.addClassCleanup(cls.other.stop)
        cls.other.start()
        cls.x = cls.create("acme/fin/foreigner", ["read:transactions"], server=cls.other,
                           spool=os.path.join(cls.tmp, "other-spool"))

    def serve(self, ctx):
        server = TlsServer(ctx)
        self.addCleanup(server.close)
        return server

    def drain(self):
        while not self.tls.results.empty():
            self.tls.results.get_nowait()

    def setUp(self):
        self.drain()

    def test_contexts_are_standard_ssl_contexts(self):
        ctx = self.b.ssl_context(peer=self.a.spiffe_id)
        self.assertIsInstance(ctx, ssl.SSLContext)
        self.assertIsInstance(ctx, SpiffeSSLContext)
        self.assertEqual(ctx.verify_mode, ssl.CERT_REQUIRED)
        self.assertFalse(ctx.check_hostname)
        self.assertEqual(self.server_ctx.verify_mode, ssl.CERT_REQUIRED)

    def test_http_client_both_sides_see_each_other(self):
        ctx = self.b.ssl_context(peer=self.a.spiffe_id)
        conn = http.client.HTTPSConnection("127.0.0.1", self.tls.port, context=ctx, timeout=10)
        try:
            conn.request("GET", "/")
            self.assertIsInstance(conn.sock.peer_spiffe_id, SpiffeId)
            self.assertEqual(conn.sock.peer_spiffe_id, self.a.spiffe_id)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read().decode(), self.b.spiffe_id)
        finally:
            conn.close()
        status, peer = self.tls.result()
        self.assertEqual(status, "ok", peer)
        self.assertIsInstance(peer, SpiffeId)
        self.assertEqual(peer, self.b.spiffe_id)

    def test_urllib_and_socketserver(self):
        seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.connection.peer_spiffe_id)
                body = str(self.connection.peer_spiffe_id).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.socket = self.a.ssl_context(server_side=True).wrap_socket(httpd.socket,
                                                                        server_side=True)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        port = httpd.server_address[1]
        ctx = self.b.ssl_context(peer=[self.a.spiffe_id, "spiffe://trustwarden/x/y/z"])
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/balance", context=ctx,
                                    timeout=10) as resp:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read().decode(), self.b.spiffe_id)
        self.assertEqual(seen, [self.b.spiffe_id])
        # A client demanding another SPIFFE ID is refused by urllib too.
        wrong = self.b.ssl_context(peer="spiffe://trustwarden/acme/fin/impostor/inst-x")
        with self.assertRaises(urllib.error.URLError) as cm:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/", context=wrong, timeout=10)
        self.assertIsInstance(cm.exception.reason, ssl.SSLCertVerificationError)

    def test_asyncio_streams(self):
        async def main():
            seen = {}
            # The server side of the refused connection below is logged by asyncio; keep it.
            server_errors = []
            asyncio.get_running_loop().set_exception_handler(
                lambda loop, context: server_errors.append(context))

            async def handle(reader, writer):
                seen["server"] = writer.get_extra_info("ssl_object").peer_spiffe_id
                line = await reader.readline()
                writer.write(b"echo:" + line)
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(handle, "127.0.0.1", 0,
                                                ssl=self.a.ssl_context(server_side=True))
            port = server.sockets[0].getsockname()[1]
            async with server:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=self.b.ssl_context(peer=self.a.spiffe_id))
                client_peer = writer.get_extra_info("ssl_object").peer_spiffe_id
                writer.write(b"hello\n")
                await writer.drain()
                reply = await reader.read()
                writer.close()
                with self.assertRaises(ssl.SSLCertVerificationError):
                    await asyncio.open_connection(
                        "127.0.0.1", port,
                        ssl=self.b.ssl_context(peer="spiffe://trustwarden/acme/fin/other/i"))
            return client_peer, seen.get("server"), reply

        client_peer, server_peer, reply = asyncio.run(asyncio.wait_for(main(), 30))
        self.assertEqual(reply, b"echo:hello\n")
        self.assertEqual(client_peer, self.a.spiffe_id)
        self.assertIsInstance(client_peer, SpiffeId)
        self.assertEqual(server_peer, self.b.spiffe_id)

    def test_client_demanding_another_spiffe_id_fails(self):
        for peer in (self.b.spiffe_id, "spiffe://trustwarden/acme/fin/ledger-api/inst-fake",
                     TrustDomain("other"), [self.b.spiffe_id]):
            with self.subTest(peer=peer):
                ctx = self.b.ssl_context(peer=peer)
                conn = http.client.HTTPSConnection("127.0.0.1", self.tls.port, context=ctx,
                                                   timeout=10)
                with self.assertRaises(ssl.SSLCertVerificationError):
                    conn.request("GET", "/")
                conn.close()

    def test_peer_by_trust_domain_and_default(self):
        for peer in (None, TrustDomain("trustwarden")):
            with self.subTest(peer=peer):
                reply = tls_exchange(self.b.ssl_context(peer=peer), self.tls.port)
                self.assertIsInstance(reply, bytes, reply)
                self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply)

    def test_plain_client_without_a_certificate_is_refused(self):
        ctx = ssl.create_default_context(cadata=self.a.bundle_pem)
        ctx.check_hostname = False
        reply = tls_exchange(ctx, self.tls.port)
        self.assertFalse(isinstance(reply, bytes) and reply.startswith(b"HTTP"),
                         f"a client without a certificate got a reply: {reply!r}")
        status, err = self.tls.result()
        self.assertEqual(status, "error", f"the server accepted a certificate-less client: {err}")
        self.assertIsInstance(err, ssl.SSLError)

    def test_server_requirements_scope_and_trust_level(self):
        needs_write = self.serve(self.a.ssl_context(server_side=True, scope="write:ledger"))
        writer = self.create("acme/fin/writer", ["write:ledger"], trust_level="medium")
        reply = tls_exchange(writer.ssl_context(), needs_write.port)
        self.assertTrue(isinstance(reply, bytes) and reply.startswith(b"HTTP/1.1 200"), reply)
        self.assertEqual(needs_write.result(), ("ok", writer.spiffe_id))
        tls_exchange(self.b.ssl_context(), needs_write.port)  # b lacks write:ledger
        status, err = needs_write.result()
        self.assertEqual(status, "error", f"a peer without the scope was accepted: {err}")
        self.assertIsInstance(err, ssl.SSLCertVerificationError)

        needs_high = self.serve(self.a.ssl_context(server_side=True, min_trust_level="high"))
        tls_exchange(self.b.ssl_context(), needs_high.port)  # b is medium
        status, err = needs_high.result()
        self.assertEqual(status, "error", f"a medium peer was accepted: {err}")
        self.assertIsInstance(err, ssl.SSLCertVerificationError)

        # And a client requiring the server's scope.
        reply = tls_exchange(self.b.ssl_context(peer=self.a.spiffe_id, scope="delete:records"),
                             self.tls.port)
        self.assertIsInstance(reply, ssl.SSLCertVerificationError)

    def test_revoked_peers_are_refused(self):
        c = self.create("acme/fin/soon-revoked-client", ["read:transactions"])
        d = self.create("acme/fin/soon-revoked-server", ["read:transactions"])
        c_ctx = c.ssl_context(peer=self.a.spiffe_id)
        d_server = self.serve(d.ssl_context(server_side=True))
        b_to_d = self.b.ssl_context(peer=d.spiffe_id)
        # Before: both work.
        self.assertTrue(tls_exchange(c_ctx, self.tls.port).startswith(b"HTTP/1.1 200"))
        self.assertEqual(self.tls.result(), ("ok", c.spiffe_id))
        self.assertTrue(tls_exchange(b_to_d, d_server.port).startswith(b"HTTP/1.1 200"))
        self.assertEqual(d_server.result(), ("ok", self.b.spiffe_id))

        for target in (c, d):
            trustwarden.revoke(instance=target, reason="compromised", server=self.server.url,
                               token=self.token, bundle=self.server.bundle_json)
            self.assert_revoked_soon(target)

        # The server side refuses the revoked client...
        tls_exchange(c_ctx, self.tls.port)
        status, err = self.tls.result()
        self.assertEqual(status, "error", f"the server accepted a revoked client: {err}")
        self.assertIsInstance(err, ssl.SSLCertVerificationError)
        # ...and the client side a revoked server.
        self.assertIsInstance(tls_exchange(b_to_d, d_server.port),
                              ssl.SSLCertVerificationError)

    def test_peer_from_another_trust_domain_is_refused(self):
        self.assertEqual(self.x.spiffe_id.trust_domain, "other")
        # The foreign client trusts our authorities too, so that it completes its handshake
        # and the server's own check decides.
        x_ctx = self.x.ssl_context()
        x_ctx.load_verify_locations(cadata=self.a.bundle_pem)
        reply = tls_exchange(x_ctx, self.tls.port)
        self.assertNotIsInstance(reply, bytes)
        status, err = self.tls.result()
        self.assertEqual(status, "error", f"the server accepted a foreign SVID: {err}")
        self.assertIsInstance(err, ssl.SSLError)

        # Even an OpenSSL store that also trusts the foreign authority does not make its
        # SVIDs acceptable: the SPIFFE check is against the identity's own bundle.
        lax = self.a.ssl_context(server_side=True)
        lax.load_verify_locations(cadata=self.x.bundle_pem)
        lax_server = self.serve(lax)
        tls_exchange(x_ctx, lax_server.port)
        status, err = lax_server.result()
        self.assertEqual(status, "error",
                         f"a foreign trust domain's SVID was accepted by the SPIFFE check: {err}")
        self.assertIsInstance(err, ssl.SSLCertVerificationError)


# ---------------------------------------------------------------------------------------------
# 10. Verifier
# ---------------------------------------------------------------------------------------------
class VerifierTest(SdkCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.agent = cls.create("acme/fin/caller", ["read:transactions", "write:ledger"],
                               trust_level="high")
        cls.verifier = Verifier(server=cls.server.url, bundle=cls.server.bundle_json,
                                audience="x")

    def test_jwt_allowed_and_wrong_audience_refused(self):
        token = self.agent.jwt("x")
        self.assertEqual(token.count("."), 2)
        self.assertEqual(self.agent.jwt("x"), token, "jwt() reuses a live token")
        d = self.verifier.verify_jwt(token)
        self.assertIsInstance(d, Decision)
        self.assertTrue(d.allowed, d)
        self.assertTrue(d)
        self.assertEqual(d.reason, "")
        self.assertIsInstance(d.spiffe_id, SpiffeId)
        self.assertEqual(d.spiffe_id, self.agent.spiffe_id)
        self.assertEqual(d.instance_id, self.agent.instance_id)
        self.assertEqual(d.trust_level, "high")
        self.assertEqual(sorted(d.scopes), ["read:transactions", "write:ledger"])
        self.assertTrue(self.verifier.verify_jwt(token, scope="write:ledger",
                                                 min_trust_level="high"))

        for refused in (self.verifier.verify_jwt(self.agent.jwt("y")),
                        Verifier(server=self.server.url, bundle=self.server.bundle_json,
                                 audience="y").verify_jwt(token),
                        self.verifier.verify_jwt(token, scope="delete:records"),
                        self.verifier.verify_jwt(token, min_trust_level="critical"),
                        self.verifier.verify_jwt(token, spiffe_ids=["spiffe://trustwarden/a/b"]),
                        self.verifier.verify_jwt("not.a.jwt"),
                        self.verifier.verify_jwt(token[:-4] + ("AAAA" if not token.endswith(
                            "AAAA") else "BBBB"))):
            with self.subTest(refused=refused):
                self.assertFalse(refused.allowed)
                self.assertFalse(refused)
                self.assertTrue(refused.reason)

    def test_x509_by_scope_and_id(self):
        v = self.verifier
        self.assertTrue(v.verify_x509(self.agent.svid_pem, scope="read:transactions"))
        d = v.verify_x509(self.agent.svid_pem.encode(), spiffe_ids=self.agent.spiffe_id)
        self.assertTrue(d, d)
        self.assertEqual(d.spiffe_id, self.agent.spiffe_id)
        self.assertTrue(v.verify_x509(self.agent.svid_pem, trust_domain="trustwarden"))
        for kw in ({"scope": "delete:records"}, {"min_trust_level": "critical"},
                   {"spiffe_ids": ["spiffe://trustwarden/acme/fin/caller/inst-other"]},
                   {"trust_domain": "other"}):
            with self.subTest(**kw):
                d = v.verify_x509(self.agent.svid_pem, **kw)
                self.assertFalse(d)
                self.assertFalse(d.allowed)
                self.assertTrue(d.reason)
        self.assertFalse(v.verify_x509("-----BEGIN CERTIFICATE-----\nAAAA\n"
                                       "-----END CERTIFICATE-----\n"))
        self.assertFalse(v.verify_x509(self.agent.bundle_pem), "a CA is no SVID")

    def test_revoked_is_refused(self):
        c = self.create("acme/fin/to-revoke", ["read:transactions"])
        token, chain = c.jwt("x"), c.svid_pem
        self.assertTrue(self.verifier.verify_jwt(token))
        self.assertTrue(self.verifier.verify_x509(chain))
        trustwarden.revoke(instance=c, reason="stolen", server=self.server.url,
                           token=self.token, bundle=self.server.bundle_json)
        poll(lambda: not self.verifier.verify_jwt(token), STALENESS_BOUND,
             "the verifier refusing a revoked JWT-SVID")
        poll(lambda: not self.verifier.verify_x509(chain), STALENESS_BOUND,
             "the verifier refusing a revoked X.509-SVID")
        self.assertTrue(self.verifier.verify_jwt(self.agent.jwt("x")), "others still pass")

    def test_recorder_records_observations(self):
        resource_identity = self.create("acme/fin/ledger-service", ["read:transactions"])
        v = Verifier(server=self.server.url, bundle=self.server.bundle_json, audience="x",
                     recorder=resource_identity)
        d = v.verify_jwt(self.agent.jwt("x"), scope="write:ledger",
                         resource="https://ledger.acme/entries")
        self.assertTrue(d, d)
        self.assertTrue(d.event_id)
        refused = v.verify_jwt(self.agent.jwt("x"), scope="delete:records",
                               resource="https://ledger.acme/entries")
        self.assertFalse(refused)

        ev = self.wait_in_ledger(d.event_id)["event"]
        self.assertEqual(ev["type"], "observation")
        self.assertEqual(ev["instance"], resource_identity.spiffe_id)
        self.assertEqual(ev["caller"], self.agent.spiffe_id)
        self.assertEqual(ev["decision"], "allow")
        self.assertEqual(ev["resource"], "https://ledger.acme/entries")
        self.assertTrue(refused.event_id, "with a recorder, every decision is recorded")
        ev = self.wait_in_ledger(refused.event_id)["event"]
        self.assertEqual((ev["type"], ev["decision"], ev["caller"]),
                         ("observation", "deny", self.agent.spiffe_id))
        self.assertTrue(ev.get("reason"))
        observed = {e["id"] for e in self.audit(caller=str(self.agent.spiffe_id),
                                                type="observation")}
        self.assertIn(d.event_id, observed)

    def test_foreign_trust_domain_is_refused(self):
        other = Server(os.path.join(self.tmp, "other"), trust_domain="other")
        self.addCleanup(other.stop)
        other.start()
        x = self.create("acme/fin/foreigner", ["read:transactions"], server=other,
                        spool=os.path.join(self.tmp, "other-spool"))
        self.addCleanup(x.close)
        self.assertFalse(self.verifier.verify_x509(x.svid_pem))
        self.assertFalse(self.verifier.verify_jwt(x.jwt("x")))


# ---------------------------------------------------------------------------------------------
# Renewal, and the built-in http(s) connector
# ---------------------------------------------------------------------------------------------
def peer_leaf(ctx, port):
    """The leaf certificate (DER) the server on port presents to ctx."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            leaf = conn.getpeercert(binary_form=True)
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            while conn.recv(4096):
                pass
            return leaf
    finally:
        raw.close()


class RenewalTest(SdkCase):

    def test_renewal_keeps_the_instance_and_tls_follows_it(self):
        a = self.create("acme/fin/renewing", ["read:transactions"], ttl="6s")
        b = self.create("acme/fin/peer", ["read:transactions"])
        tls = TlsServer(a.ssl_context(server_side=True))
        self.addCleanup(tls.close)
        first_pem, first_expiry, first_id = a.svid_pem, a.expires_at, a.instance_id
        first_serial = self.admin.get(f"/v1/identities/{a.instance_id}").json["serial"]
        client_ctx = b.ssl_context(peer=a.spiffe_id)
        first_leaf = peer_leaf(client_ctx, tls.port)
        self.assertEqual(first_leaf, pem_to_der(pem_blocks(first_pem)[0]))
        self.assertEqual(tls.result(), ("ok", b.spiffe_id))

        poll(lambda: a.svid_pem != first_pem, 10, "a renewal at half-life", interval=0.05)
        self.assertEqual(a.instance_id, first_id)
        self.assertEqual(a.spiffe_id.path.rsplit("/", 1)[1], first_id)
        self.assertGreater(a.expires_at, first_expiry)
        self.assertEqual(a.x509_svid.leaf, pem_to_der(pem_blocks(a.svid_pem)[0]))
        self.assertFalse(a.revoked)
        result = a.call(f"{ECHO}://x", "read:transactions")
        ev = self.trace(result.event_id)["event"]
        self.assertNotEqual(ev["serial"], first_serial,
                            "the call was not signed with the renewed certificate")
        # The same ssl_context now presents a renewed SVID.
        leaf = peer_leaf(client_ctx, tls.port)
        self.assertNotEqual(leaf, first_leaf, "ssl_context kept presenting the old SVID")
        self.assertEqual(tls.result(), ("ok", b.spiffe_id))


class HttpConnectorTest(SdkCase):
    """The built-in http(s) connector, against Python servers using ssl_context()."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = cls.create("acme/fin/reports-api", ["read:transactions"])
        cls.caller = cls.create("acme/fin/reporter", ["read:transactions", "write:ledger"])
        cls.requests = []
        requests = cls.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self, body):
                peer = getattr(self.connection, "peer_spiffe_id", None)
                requests.append({"method": self.command, "path": self.path, "peer": peer,
                                 "headers": dict(self.headers), "body": body})
                status = 403 if self.path.startswith("/forbidden") else 200
                reply = f"{self.command} {self.path}".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self):
                self.handle_one(b"")

            def do_POST(self):
                self.handle_one(self.rfile.read(int(self.headers["Content-Length"])))

            def log_message(self, *args):
                pass

        def serve(ctx):
            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            if ctx is not None:
                httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
            threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True).start()
            cls.addClassCleanup(httpd.server_close)
            cls.addClassCleanup(httpd.shutdown)
            return httpd.server_address[1]

        # trust_origin() and allow_plain_http() are process-wide: the untrusted origins are
        # servers of their own that no test ever vouches for.
        cls.origin = f"https://127.0.0.1:{serve(cls.api.ssl_context(server_side=True))}"
        cls.untrusted_origin = \
            f"https://127.0.0.1:{serve(cls.api.ssl_context(server_side=True))}"
        cls.plain_origin = f"http://127.0.0.1:{serve(None)}"
        cls.untrusted_plain_origin = f"http://127.0.0.1:{serve(None)}"

    def setUp(self):
        self.requests.clear()

    def test_untrusted_origin_gets_nothing(self):
        with self.assertRaises(TrustWardenError) as cm:
            self.caller.call(f"{self.untrusted_origin}/daily", "read:transactions")
        self.assertNotIsInstance(cm.exception, Denied)
        self.assertEqual(self.requests, [], "a request went to an origin nobody vouched for")
        with self.assertRaises(TrustWardenError):
            self.caller.call(f"{self.untrusted_plain_origin}/daily", "read:transactions")
        self.assertEqual(self.requests, [], "a bearer token was sent over plain http")

    def test_trusted_origin_gets_a_jwt_svid_over_mtls(self):
        AgentIdentity.trust_origin(self.origin, self.api.spiffe_id)
        result = self.caller.call(f"{self.origin}/daily?day=1", "read:transactions")
        self.assertEqual(result.response, b"GET /daily?day=1")
        self.assertIsInstance(result.response, bytes)
        [req] = self.requests
        self.assertEqual(req["peer"], self.caller.spiffe_id, "not mTLS with the caller's SVID")
        self.assertEqual(req["headers"].get("X-TrustWarden-Action"), "read:transactions")
        scheme, _, token = req["headers"]["Authorization"].partition(" ")
        self.assertEqual(scheme, "Bearer")
        d = Verifier(server=self.server.url, bundle=self.server.bundle_json,
                     audience=self.origin).verify_jwt(token, scope="read:transactions")
        self.assertTrue(d, d)
        self.assertEqual(d.spiffe_id, self.caller.spiffe_id)

        self.requests.clear()
        result = self.caller.call(f"{self.origin}/entries", "write:ledger", b'{"amount": 5}')
        self.assertEqual(result.response, b"POST /entries")
        self.assertEqual(self.requests[0]["body"], b'{"amount": 5}')
        self.assertEqual(self.trace(result.event_id)["event"]["payload_digest"],
                         digest(b'{"amount": 5}'))

        self.requests.clear()
        with self.assertRaises(Denied) as cm:
            self.caller.call(f"{self.origin}/forbidden", "read:transactions")
        self.assertEqual(cm.exception.code, "permission_denied")
        [ev] = self.audit(instance=self.caller.instance_id, type="action",
                          resource=f"{self.origin}/forbidden")
        self.assertEqual(ev["decision"], "allow")
        outcome = self.outcome_of(self.caller, ev["id"])
        self.assertTrue(outcome["outcome"].startswith("error"), outcome)

    def test_a_server_with_another_spiffe_id_gets_nothing(self):
        impostor = "spiffe://trustwarden/acme/fin/impostor/inst-x"
        for origin in (self.untrusted_origin, self.origin):
            with self.assertRaises(TrustWardenError):
                self.caller.call(f"{origin}/daily", "read:transactions",
                                 server_spiffe_id=impostor)
        self.assertEqual(self.requests, [], "the request reached a server that is not the "
                                            "named SPIFFE ID")

    def test_plain_http_when_allowed(self):
        AgentIdentity.allow_plain_http(self.plain_origin)
        result = self.caller.call(f"{self.plain_origin}/status", "read:transactions")
        self.assertEqual(result.response, b"GET /status")
        self.assertTrue(self.requests[0]["headers"]["Authorization"].startswith("Bearer "))


# ---------------------------------------------------------------------------------------------
# 11. Fail closed, and the spool across SIGKILL
# ---------------------------------------------------------------------------------------------
class FailClosedTest(SdkCase):
    """Each test stops the server; setUp starts it again (on a new port)."""

    def setUp(self):
        if self.server.proc is None:
            self.server.start()

    def test_calls_fail_closed_once_the_revocation_stream_is_silent(self):
        a = self.create("acme/fin/fail-closed", ["read:transactions"], max_staleness=1.0)
        a.call(f"{ECHO}://x", "read:transactions")
        self.server.stop()
        self.addCleanup(a.detach)
        e = first_refusal(lambda: a.call(f"{ECHO}://x", "read:transactions"), Denied,
                          1.0 + STALENESS_BOUND, "a call refused on a silent revocation stream")
        self.assertIs(type(e), Denied, repr(e))
        self.assertEqual(e.code, "permission_denied")
        self.assertTrue(e.event_id, "a refusal by staleness is recorded (in the spool)")
        self.assertFalse(a.revoked)
        with self.assertRaises(Denied):
            a.call(f"{ECHO}://x", "read:transactions")

    def test_verifier_fails_closed_once_the_revocation_stream_is_silent(self):
        a = self.create("acme/fin/verified", ["read:transactions"])
        v = Verifier(server=self.server.url, bundle=self.server.bundle_json, audience="x",
                     max_staleness=1.0)
        token, chain = a.jwt("x"), a.svid_pem
        self.assertTrue(v.verify_jwt(token))
        self.assertTrue(v.verify_x509(chain))
        self.server.stop()
        self.addCleanup(a.detach)
        poll(lambda: not v.verify_x509(chain), 1.0 + STALENESS_BOUND,
             "the verifier refusing on a silent revocation stream", interval=0.05)
        self.assertFalse(v.verify_jwt(token))
        self.assertTrue(v.verify_x509(chain).reason)

    def test_an_identity_that_cannot_renew_expires(self):
        a = self.create("acme/fin/mayfly", ["read:transactions"], ttl="4s", max_staleness=60)
        a.call(f"{ECHO}://x", "read:transactions")
        self.server.stop()  # renewal (at half-life) cannot succeed
        self.addCleanup(a.detach)
        expiry = a.expires_at
        e = first_refusal(lambda: a.call(f"{ECHO}://x", "read:transactions"), Expired,
                          4 + STALENESS_BOUND, "a call refused as expired")
        self.assertGreaterEqual(harness.utcnow(), expiry)
        self.assertIsInstance(e, Denied)
        self.assertNotIsInstance(e, Revoked)
        self.assertEqual(e.event_id, "", "an expired identity cannot record its refusal")


CHILD_SCRIPT = r'''
import json, sys, time
from trustwarden import AgentIdentity

cfg = json.loads(sys.argv[1])
AgentIdentity.register_connector("spooled", lambda agent, req: {"n": req.payload.decode()})
a = AgentIdentity.create(cfg["name"], ["write:ledger"], "30m", "medium", server=cfg["server"],
                         token=cfg["token"], bundle=cfg["bundle"], spool=cfg["spool"],
                         max_staleness=60)
online = a.call("spooled://ledger", "write:ledger", b"online")
print("READY", a.instance_id, a.spiffe_id, online.event_id, flush=True)
sys.stdin.readline()  # the server is down now
i = 0
while True:
    r = a.call("spooled://ledger", "write:ledger", str(i).encode(), input="offline %d" % i)
    print("EVENT", r.event_id, flush=True)
    i += 1
    time.sleep(0.005)
'''


class SpoolKillTest(SdkCase):

    def test_spooled_calls_survive_sigkill_and_are_delivered_by_the_next_identity(self):
        spool = os.path.join(self.tmp, "shared-spool")
        cfg = dict(name="acme/fin/crashy", server=self.server.url, token=self.token,
                   bundle=self.server.bundle_json, spool=spool)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTWARDEN_")}
        child = subprocess.Popen([sys.executable, "-c", CHILD_SCRIPT, json.dumps(cfg)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env, cwd=self.tmp)
        self.addCleanup(lambda: child.poll() is None and (child.kill(), child.wait(10)))
        for pipe in (child.stdin, child.stdout, child.stderr):
            self.addCleanup(pipe.close)
        lines = queue.Queue()

        def read_stdout():
            for line in iter(child.stdout.readline, b""):
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()

        def next_line(timeout):
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = None
            if line is None:
                child.kill()
                raise AssertionError("the child stopped talking; stderr:\n"
                                     + child.stderr.read().decode(errors="replace")[-3000:])
            return line.decode()

        ready = next_line(30).split()
        self.assertEqual(ready[0], "READY", ready)
        child_instance, child_spiffe_id, online_event = ready[1], ready[2], ready[3]
        self.trace(online_event)

        self.server.stop()  # the child's calls must now be spooled
        child.stdin.write(b"go\n")
        child.stdin.flush()
        printed = []
        deadline = time.monotonic() + 30
        while len(printed) < 25:
            self.assertLess(time.monotonic(), deadline, f"only {len(printed)} spooled calls")
            line = next_line(max(0.1, deadline - time.monotonic()))
            self.assertTrue(line.startswith("EVENT "), line)
            if line.endswith("\n"):
                printed.append(line.split()[1])
        os.kill(child.pid, signal.SIGKILL)  # mid-calls
        child.wait(10)
        self.assertEqual(child.returncode, -signal.SIGKILL)
        reader.join(10)
        while True:  # complete lines printed before the kill count too
            try:
                line = lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                break
            text = line.decode()
            if text.startswith("EVENT ") and text.endswith("\n"):
                printed.append(text.split()[1])
        self.assertEqual(len(set(printed)), len(printed))
        self.assertTrue(os.listdir(spool), "the child left no spool")

        self.server.start()  # same data directory, new port: the child is gone for good
        self.assertNotEqual(self.admin.get(f"/v1/audit/trace/{printed[0]}").status, 200,
                            "delivered before anybody could have offered it")
        courier = self.create("acme/fin/courier", ["read:transactions"], spool=spool)
        self.assertTrue(courier.instance_id)

        missing = set(printed)

        def delivered():
            for event_id in list(missing):
                r = self.admin.get(f"/v1/audit/trace/{event_id}")
                if r.status == 200:
                    missing.discard(event_id)
            return not missing
        try:
            poll(delivered, 30, "the spooled events in the ledger", interval=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}: {len(missing)} of the {len(printed)} acknowledged "
                                 f"calls are missing, e.g. {sorted(missing)[:5]}") from None
        for event_id in printed[:3] + printed[-3:]:
            ev = self.trace(event_id)["event"]
            self.assertEqual(ev["instance"], child_spiffe_id)
            self.assertEqual(ev["decision"], "allow")
            self.assertEqual(ev["action"], "write:ledger")
        events = self.audit(instance=child_instance)
        allowed = [e["id"] for e in events if e.get("decision") == "allow"]
        self.assertLessEqual(set(printed), set(allowed))
        self.assertEqual([i for i in allowed if i in set(printed)], printed,
                         "the spool was delivered out of order")
        # call() returned only once its outcome was spooled too.
        outcomes = {e["ref"]: e["outcome"] for e in events if e["type"] == "outcome"}
        self.assertLessEqual(set(printed), set(outcomes), "outcomes of acknowledged calls "
                                                          "are missing")
        self.assertEqual({outcomes[i] for i in printed}, {"ok"})


# ---------------------------------------------------------------------------------------------
# 12. Documentation
# ---------------------------------------------------------------------------------------------
class DocumentationTest(unittest.TestCase):

    def test_the_names_api_md_and_the_issue_fix(self):
        """Keyword names are part of the stable surface: callers may spell every one."""
        def params(fn):
            return {n: p.default for n, p in inspect.signature(fn).parameters.items()}

        create = params(AgentIdentity.create)
        for name in ("name", "scope", "ttl", "trust_level", "server", "token", "bundle"):
            self.assertIn(name, create)
        self.assertEqual((create["ttl"], create["server"], create["token"], create["bundle"]),
                         ("30m", None, None, None))
        call = params(AgentIdentity.call)
        self.assertEqual([call[n] for n in ("payload", "input", "min_trust_level")],
                         [b"", None, None])
        self.assertEqual(list(params(AgentIdentity.register_connector)), ["scheme", "fn"])
        ssl_ctx = params(AgentIdentity.ssl_context)
        self.assertEqual((ssl_ctx["server_side"], ssl_ctx["peer"]), (False, None))
        self.assertIn("audience", params(AgentIdentity.jwt))
        for name in ("acall", "acreate", "spawn", "close", "tool"):
            self.assertTrue(callable(getattr(AgentIdentity, name)), name)
        for cls in (Denied, Revoked, Expired, Unavailable, InvalidArgument):
            self.assertTrue(issubclass(cls, TrustWardenError), cls)
        self.assertTrue(callable(trustwarden.revoke))

    def test_help_reads_well(self):
        text = pydoc.render_doc(AgentIdentity, renderer=pydoc.plaintext)
        buf = io.StringIO()
        pydoc.Helper(output=buf).help(AgentIdentity)
        helped = buf.getvalue()
        for rendered in (text, helped):
            for name in ("create", "acreate", "call", "acall", "spawn", "tool", "ssl_context",
                         "close", "register_connector", "jwt"):
                self.assertRegex(rendered, rf"\b{name}\(", f"{name} is not in help()")
            for phrase in ("Creates an agent instance's identity",
                           "Checks, records and performs",
                           "call() without blocking the event loop",
                           "A child identity delegated by this one",
                           "Decorates a function as a tool of this agent",
                           "A standard ``ssl.SSLContext`` for mTLS",
                           "Thread-safe"):
                self.assertIn(phrase, rendered)
        self.assertIn("max_staleness", text)
        params = inspect.signature(AgentIdentity.create).parameters
        for p in ("name", "scope", "ttl", "trust_level", "server", "token", "bundle", "spool",
                  "max_staleness"):
            self.assertIn(p, params)
        for obj in (AgentIdentity.call, AgentIdentity.acall, AgentIdentity.spawn,
                    AgentIdentity.tool, AgentIdentity.ssl_context, trustwarden.revoke,
                    Verifier, Verifier.verify_jwt, Verifier.verify_x509, Decision):
            self.assertTrue(inspect.getdoc(obj), f"{obj} has no docstring")
        self.assertTrue(inspect.iscoroutinefunction(AgentIdentity.acall))
        self.assertTrue(inspect.iscoroutinefunction(AgentIdentity.acreate))

    def test_package_surface(self):
        package_dir = os.path.dirname(trustwarden.__file__)
        self.assertTrue(os.path.isfile(os.path.join(package_dir, "py.typed")),
                        f"py.typed is missing from {package_dir}")
        for name in trustwarden.__all__:
            self.assertTrue(hasattr(trustwarden, name), name)
        for name in ("AgentIdentity", "CallRequest", "CallResult", "revoke", "Verifier",
                     "Decision", "SpiffeSSLContext", "SpiffeId", "TrustDomain", "X509Svid",
                     "TrustWardenError", "Denied", "Revoked", "Expired", "Unavailable",
                     "InvalidArgument"):
            self.assertIn(name, trustwarden.__all__)
        # One version for the package, the CLI and the library.
        cli = subprocess.run([TW_BIN, "--version"], capture_output=True, text=True)
        self.assertEqual(cli.stdout.strip(), f"trustwarden {trustwarden.__version__}")
        self.assertIn("AgentIdentity", pydoc.render_doc(trustwarden, renderer=pydoc.plaintext))



# ---------------------------------------------------------------------------------------------
# 13. Misuse and edge cases: TLS paths that skip do_handshake, interpreter exit with calls in
#     flight, async tools that await the SDK, tool: resources, hostile exceptions, bad limits
# ---------------------------------------------------------------------------------------------
def run_script(source, timeout=60, args=()):
    """`source` in a fresh interpreter (this one, with this sys.path), given `args`."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", source, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


class MisuseTest(SdkCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = cls.create("acme/fin/guarded-api", ["read:transactions"])
        cls.alice = cls.create("acme/fin/alice", ["read:transactions"])
        cls.mallory = cls.create("acme/fin/mallory", ["read:transactions"])

    def lazy_server(self, allowed):
        """A server accepting only `allowed`, wrapped with do_handshake_on_connect=False: the
        first recv does the handshake. Reports ("data", bytes) or ("refused", error)."""
        ctx = self.api.ssl_context(server_side=True, peer=allowed.spiffe_id)
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        results = queue.Queue()

        def serve():
            raw, _ = listener.accept()
            conn = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            try:
                results.put(("data", conn.recv(100)))
            except ssl.SSLError as e:
                try:  # a refusal is final: reading again raises it again
                    conn.recv(100)
                    results.put(("read after refusal", e))
                except ssl.SSLError:
                    results.put(("refused", e))
            finally:
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
        return listener.getsockname()[1], results

    def connect(self, who, port):
        ctx = who.ssl_context(peer=self.api.spiffe_id)
        conn = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        self.addCleanup(conn.close)
        return conn

    def test_a_lazy_server_checks_the_peer_at_its_first_read(self):
        port, results = self.lazy_server(self.alice)
        self.connect(self.mallory, port).sendall(b"hello from mallory")
        status, detail = results.get(timeout=10)
        self.assertEqual(status, "refused", detail)
        self.assertIn("refused", str(detail))
        port, results = self.lazy_server(self.alice)
        self.connect(self.alice, port).sendall(b"hello from alice")
        self.assertEqual(results.get(timeout=10), ("data", b"hello from alice"))

    def test_a_lazy_client_sends_nothing_to_the_wrong_server(self):
        ctx = self.api.ssl_context(server_side=True, peer=self.alice.spiffe_id)
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        received = queue.Queue()

        def serve():
            raw, _ = listener.accept()
            try:
                conn = ctx.wrap_socket(raw, server_side=True)
                received.put(conn.recv(100))
                conn.close()
            except (ssl.SSLError, OSError) as e:
                received.put(e)

        threading.Thread(target=serve, daemon=True).start()
        # alice expects mallory's SPIFFE ID: the server (the API) is not it.
        client = self.alice.ssl_context(peer=self.mallory.spiffe_id)
        conn = client.wrap_socket(socket.socket(), do_handshake_on_connect=False)
        self.addCleanup(conn.close)
        conn.settimeout(10)
        conn.connect(("127.0.0.1", listener.getsockname()[1]))
        with self.assertRaises(ssl.SSLCertVerificationError):
            conn.sendall(b"Authorization: Bearer secret")
        with self.assertRaises(ssl.SSLCertVerificationError):
            conn.send(b"again")
        conn.close()
        got = received.get(timeout=10)  # an EOF or an error: never the bearer token
        self.assertFalse(isinstance(got, bytes) and got, f"the server received {got!r}")

    def test_wrap_bio_reads_and_writes_only_after_the_check(self):
        server_ctx = self.api.ssl_context(server_side=True, peer=self.alice.spiffe_id)
        client_ctx = self.mallory.ssl_context(peer=self.api.spiffe_id)
        s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
        server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        client = client_ctx.wrap_bio(c_in, c_out)
        refused = None
        for _ in range(20):
            for step in (client.do_handshake, lambda: server.read(100)):
                try:
                    step()
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except ssl.SSLCertVerificationError as e:
                    refused = e
            c_in.write(s_out.read())
            s_in.write(c_out.read())
            if refused:
                break
        self.assertIsNotNone(refused, "the server read from an unchecked peer")
        self.assertIsNone(server.peer_spiffe_id)
        with self.assertRaises(ssl.SSLCertVerificationError):
            server.write(b"data for mallory")

    def test_daemon_threads_calling_at_exit_do_not_crash_the_interpreter(self):
        # At exit such threads are inside the SDK (and OpenSSL) with the GIL released, or in
        # a connector: the exit waits for the first to come back before OpenSSL is torn down.
        conn = self.connection()
        source = f"""
import sys, threading, time
from trustwarden import AgentIdentity
AgentIdentity.register_connector("busy", lambda agent, request: b"")
agent = AgentIdentity.create("acme/fin/daemon", ["read:transactions"], **{conn!r})
agent.detach()
def loop():
    while True:
        agent.call("busy://x", "read:transactions")
for _ in range(12):
    threading.Thread(target=loop, daemon=True).start()
time.sleep(float(sys.argv[1]))
print("exiting")
"""
        for pause in (0.1, 0.2, 0.3, 0.4, 0.5):
            r = run_script(source, args=[str(pause)])
            self.assertEqual(r.returncode, 0, f"{r.returncode}\n{r.stdout}\n{r.stderr[-2000:]}")
            self.assertIn("exiting", r.stdout)

    def test_async_tools_awaiting_the_sdk_do_not_exhaust_its_threads(self):
        agent = self.create("acme/fin/async-tools", ["read:transactions"])
        scheme = register(lambda a, r: b"row")

        @agent.tool("read:transactions")
        async def lookup(n: int) -> int:
            await agent.acall(f"{scheme}://db", "read:transactions")
            return n

        async def main():
            return await asyncio.wait_for(asyncio.gather(*(lookup(i) for i in range(80))), 60)

        self.assertEqual(run_bounded(lambda: asyncio.run(main()), 90, "80 async tools"),
                         list(range(80)))

    def test_tool_resources_are_only_for_tools(self):
        agent = self.create("acme/fin/tool-user", ["read:transactions", "admin:y"])
        before = len(self.audit(instance=agent.instance_id))
        with self.assertRaises(InvalidArgument):
            agent.call("tool:delete_everything", "admin:y")
        runs = []

        @agent.tool("read:transactions")
        def lookup() -> str:
            runs.append(1)
            with self.assertRaises(InvalidArgument):  # not a way to run another tool
                agent.call("tool:delete_everything", "admin:y")
            return "ok"

        self.assertEqual(lookup(), "ok")
        self.assertEqual(runs, [1])
        events = self.audit(instance=agent.instance_id)[before:]
        self.assertFalse([e for e in events if e.get("resource") == "tool:delete_everything"],
                         events)
        with self.assertRaises(InvalidArgument):
            AgentIdentity.register_connector("tool", lambda a, r: b"")

    def test_connectors_are_plain_callables(self):
        async def coroutine_connector(agent, request):
            return b""

        for bad in (coroutine_connector, "not callable", None):
            with self.assertRaises(InvalidArgument, msg=repr(bad)):
                AgentIdentity.register_connector(new_scheme(), bad)

        async def later():
            return b""

        scheme = register(lambda a, r: later())
        with self.assertRaises(TypeError):
            self.alice.call(f"{scheme}://x", "read:transactions")

    def test_exceptions_that_cannot_describe_themselves_pass_through(self):
        class Unprintable(Exception):
            def __str__(self):
                raise RuntimeError("no str for you")

        surrogate = OSError(os.fsdecode(b"/data/\xff.db"))
        for exc in (Unprintable("x"), surrogate):
            def boom(agent, request, exc=exc):
                raise exc

            scheme = register(boom)
            with self.assertRaises(type(exc)) as caught:
                self.alice.call(f"{scheme}://x", "read:transactions")
            self.assertIs(caught.exception, exc)

    def test_limits_and_requirements_are_checked_up_front(self):
        conn = self.connection()
        for bad in (float("inf"), float("nan"), 0, -1, 1e17):
            with self.assertRaises(InvalidArgument, msg=repr(bad)):
                AgentIdentity.create("acme/fin/x", ["read:transactions"], max_staleness=bad,
                                     **conn)
            with self.assertRaises(InvalidArgument, msg=repr(bad)):
                Verifier(server=conn["server"], bundle=conn["bundle"], max_staleness=bad)
        with self.assertRaises(InvalidArgument):
            self.alice.ssl_context(peer=[])
        with self.assertRaises(InvalidArgument):
            self.alice.ssl_context(scope="not a scope")
        with self.assertRaises(InvalidArgument):
            self.alice.ssl_context(min_trust_level="supreme")
        verifier = Verifier(server=conn["server"], bundle=conn["bundle"])
        with self.assertRaises(InvalidArgument):
            verifier.verify_x509(self.alice.svid_pem, spiffe_ids=[])

    def test_a_pem_bundle_says_it_holds_no_jwt_keys(self):
        v = Verifier(server=self.server.url, bundle=self.server.bundle_pem, audience="x")
        d = v.verify_jwt(self.alice.jwt("x"))
        self.assertFalse(d)
        self.assertIn("holds no JWT-SVID keys", d.reason)
        self.assertIn("bundle.json", d.reason)
        self.assertTrue(v.verify_x509(self.alice.svid_pem))  # X.509 needs only the PEM

    def test_a_closed_identity_makes_no_ssl_context(self):
        agent = AgentIdentity.create("acme/fin/closing", ["read:transactions"],
                                     **self.connection())
        agent.close()
        with self.assertRaises(Revoked):
            agent.ssl_context()



class RotationTest(SdkCase):
    """A CA rotation while an identity lives: the stream announces the new bundle, the
    identity fetches it, and still reaches the server once its certificate moved on."""

    def test_an_identity_follows_a_ca_rotation(self):
        agent = self.create("acme-corp/finance-team/rotating")
        self.assertEqual(agent.bundle_pem.count("BEGIN CERTIFICATE"), 1)
        r = self.admin.post("/v1/ca/prepare", {})
        self.assertEqual(r.status, 201, r)
        deadline = time.monotonic() + 10
        while agent.bundle_pem.count("BEGIN CERTIFICATE") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(agent.bundle_pem.count("BEGIN CERTIFICATE"), 2)
        r = self.admin.post("/v1/ca/activate", {"force": True})
        self.assertEqual(r.status, 200, r)
        # A JWT-SVID is minted over mTLS to the server, whose certificate is the new CA's.
        self.assertEqual(agent.jwt("after-rotation").count("."), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
