#!/usr/bin/env python3
"""Federated trust domains as the SDK sees them: two `trustwarden server` processes,
traffic.city and energy.city, each with a bundle endpoint (https_spiffe) and federating the
other; energy.city's policy grants traffic.city's `city/signals/*` agents `reduce:load`.

Covered: a foreign peer verified by its own domain's bundle (X.509 and JWT-SVIDs) with the
scopes our policy grants it and none of its certificate's attributes; grants following a
policy change; removing a federation reaching the SDK (and adding it back); mTLS between
agents of both domains; a federated domain's revocation stream followed (a revoked foreign
peer refused, a silent foreign stream failing closed for that domain only); misconfigured
`federated_revocations` refused; the smart-city demo (`make demo-federation`).

Run (as ctest does):
  cd /work/main && PYTHONPATH=build/python TW_BIN=build/bin/trustwarden \\
      python3 tests/harness/run_suite.py --min-tests 1 tests/python/federation_test.py
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import trustwarden_harness as harness  # noqa: E402
from trustwarden_harness import TW_BIN, Server, cli_env, describe, tw, write_file  # noqa: E402

from trustwarden import (AgentIdentity, InvalidArgument, TrustWardenError,  # noqa: E402
                         Verifier)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTLE = 10.0  # seconds for a change on a server to reach the SDK (heartbeats are 1 s apart)

GRANT = """
[[foreign]]
trust_domain = "traffic.city"
names = ["city/signals/*"]
scopes = ["reduce:load"]
"""


def setUpModule():
    harness.require()


def eventually(predicate, timeout=SETTLE):
    """The first truthy value of predicate() within timeout, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@contextlib.contextmanager
def paused(server):
    """The server's process stopped (SIGSTOP): its connections stay open and silent."""
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


class FederatedDomainsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tw-federated-sdk-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.traffic = Server(os.path.join(cls.tmp, "traffic"), trust_domain="traffic.city",
                             extra_args=["--bundle-endpoint", "127.0.0.1:0"])
        cls.energy = Server(os.path.join(cls.tmp, "energy"), trust_domain="energy.city",
                            extra_args=["--bundle-endpoint", "127.0.0.1:0"])
        for s in (cls.traffic, cls.energy):
            cls.addClassCleanup(s.stop)
            s.start()
        cls.federate(cls.traffic, cls.energy)
        cls.federate(cls.energy, cls.traffic)
        # The server's first policy (the admin creates any agent), and the grant beside it.
        shown = cls.cli(cls.energy, "policy", "show", "--json").stdout
        cls.admin_policy = json.loads(shown)["source"]
        cls.apply_policy(cls.energy, cls.admin_policy + GRANT)

    @classmethod
    def cli(cls, server, *argv):
        r = tw(*argv, env=cli_env(server, token=server.admin_token()))
        if r.returncode != 0:
            raise AssertionError(describe(r))
        return r

    @classmethod
    def endpoint(cls, server):
        text = harness.read_text(server.stdout_path(server.runs))
        line = next(l for l in text.splitlines() if l.startswith("bundle endpoint on "))
        return line.split()[3]

    @classmethod
    def federate(cls, server, other):
        cls.cli(server, "federation", "add", "--trust-domain", other.trust_domain,
                "--endpoint", cls.endpoint(other), "--profile", "https_spiffe",
                "--endpoint-spiffe-id", f"spiffe://{other.trust_domain}/trustwarden/server",
                "--bundle", other.bundle_json)

    @classmethod
    def apply_policy(cls, server, text):
        path = write_file(os.path.join(cls.tmp, f"policy-{time.monotonic_ns()}.toml"), text)
        cls.cli(server, "policy", "apply", path)

    def connection(self, server, **extra):
        spool = tempfile.mkdtemp(prefix="spool-", dir=self.tmp)
        return dict(server=server.url, token=server.admin_token(), bundle=server.bundle_json,
                    spool=spool, **extra)

    def agent(self, server, name, scope, **extra):
        a = AgentIdentity.create(name, scope, ttl="30m", **self.connection(server, **extra))
        self.addCleanup(a.close)
        return a

    def verifier(self, **extra):
        return Verifier(server=self.energy.url, bundle=self.energy.bundle_json, **extra)

    def test_a_foreign_peer_holds_the_scopes_our_policy_grants_it_and_nothing_of_its_own(self):
        signals = self.agent(self.traffic, "city/signals/controller", ["request:load"])
        meter = self.agent(self.traffic, "city/parking/meter", ["reduce:load"])
        v = self.verifier()
        d = v.verify_x509(signals.svid_pem, scope="reduce:load")
        self.assertTrue(d, d.reason)
        self.assertEqual(d.spiffe_id, signals.spiffe_id)
        self.assertEqual(d.scopes, ("reduce:load",))  # the grant's, not request:load
        self.assertFalse(d.trust_level)  # a foreign certificate's level is not ours to read
        # Its own certificate's scope does not count here.
        d = v.verify_x509(signals.svid_pem, scope="request:load")
        self.assertFalse(d)
        self.assertIn("not granted", d.reason)
        d = v.verify_x509(meter.svid_pem, scope="reduce:load")
        self.assertFalse(d)
        self.assertIn("our policy grants it nothing", d.reason)
        self.assertEqual(d.scopes, ())
        # Nor is a trust level: a requirement of one refuses a foreign peer.
        d = v.verify_x509(signals.svid_pem, scope="reduce:load", min_trust_level="low")
        self.assertFalse(d)
        # Our own agents keep their certificates' scopes.
        own = self.agent(self.energy, "grid/dispatch/balancer", ["reduce:load"])
        self.assertTrue(v.verify_x509(own.svid_pem, scope="reduce:load"))

    def test_a_foreign_jwt_svid_is_verified_by_its_own_domains_keys(self):
        signals = self.agent(self.traffic, "city/signals/jwt", ["reduce:load", "read:x"])
        v = self.verifier(audience="https://grid.energy.city")
        token = signals.jwt("https://grid.energy.city")
        d = v.verify_jwt(token, scope="reduce:load")
        self.assertTrue(d, d.reason)
        self.assertEqual(d.scopes, ("reduce:load",))  # not the token's scope claim
        self.assertFalse(v.verify_jwt(token, scope="read:x"))
        # One bit flipped in the signature: refused.
        head, payload, sig = token.split(".")
        flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
        self.assertFalse(v.verify_jwt(".".join([head, payload, flipped]), scope="reduce:load"))

    def forged(self, spiffe_id):
        """A leaf for `spiffe_id` signed by energy.city's CA key (openssl's CLI), PEM."""
        with open(os.path.join(self.forged_dir(spiffe_id), "leaf.pem"), encoding="utf-8") as f:
            return f.read()

    def forged_dir(self, spiffe_id):
        """A directory holding that leaf (leaf.pem) and its key (key.pem)."""
        d = tempfile.mkdtemp(prefix="forged-", dir=self.tmp)
        ext = write_file(os.path.join(d, "ext.cnf"),
                         "basicConstraints=critical,CA:FALSE\n"
                         "keyUsage=critical,digitalSignature\n"
                         "extendedKeyUsage=serverAuth,clientAuth\n"
                         f"subjectAltName=critical,URI:{spiffe_id}\n")
        for argv in (["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", os.path.join(d, "key.pem"), "-subj", "/O=Forged",
                      "-out", os.path.join(d, "leaf.csr")],
                     ["x509", "-req", "-in", os.path.join(d, "leaf.csr"), "-days", "1",
                      "-CA", os.path.join(self.energy.data_dir, "ca.pem"),
                      "-CAkey", os.path.join(self.energy.data_dir, "ca.key.pem"),
                      "-extfile", ext, "-out", os.path.join(d, "leaf.pem")]):
            r = subprocess.run(["openssl", *argv], capture_output=True, text=True, check=False)
            self.assertEqual(r.returncode, 0, r.stderr)
        return d

    def test_a_peer_is_verified_by_its_own_domains_bundle_only(self):
        """energy.city's CA signs a leaf naming a traffic.city agent: with both bundles
        loaded, it is refused (SPIFFE.md, C XF-2); the same forgery naming an energy.city
        agent verifies, so it is the binding that refuses it."""
        name = "city/signals/forged/inst-aaaaaaaaaaaaaaaa"
        v = self.verifier()
        d = v.verify_x509(self.forged(f"spiffe://traffic.city/{name}"), scope="reduce:load")
        self.assertFalse(d)
        self.assertTrue(d.reason)
        control = v.verify_x509(self.forged(f"spiffe://energy.city/{name}"))
        self.assertTrue(control, control.reason)

    def test_a_federated_peer_our_policy_grants_nothing_is_refused_unless_named(self):
        """Federating a domain does not open anything to it: with no requirement at all, a
        peer no grant covers is refused; naming it (or its domain) in the requirement is the
        resource's own explicit choice."""
        meter = self.agent(self.traffic, "city/parking/unnamed", ["reduce:load"])
        signals = self.agent(self.traffic, "city/signals/unnamed", ["request:load"])
        v = self.verifier()
        d = v.verify_x509(meter.svid_pem)
        self.assertFalse(d)
        self.assertIn("our policy grants it nothing", d.reason)
        self.assertTrue(v.verify_x509(signals.svid_pem))  # granted something
        self.assertTrue(v.verify_x509(meter.svid_pem, spiffe_ids=[meter.spiffe_id]))
        self.assertTrue(v.verify_x509(meter.svid_pem, trust_domain="traffic.city"))
        # The same through a TLS context with no requirement.
        balancer = self.agent(self.energy, "grid/dispatch/unnamed", ["read:x"])
        listener = harness.TlsServer(balancer.ssl_context(server_side=True))
        self.addCleanup(listener.close)
        for agent, allowed in ((meter, False), (signals, True)):
            harness.tls_exchange(agent.ssl_context(peer=balancer.spiffe_id), listener.port)
            status, detail = listener.result()
            self.assertEqual(status == "ok", allowed, detail)

    def test_a_federated_peer_needs_our_own_stream_fresh(self):
        """The federated bundles and grants come through our own server's stream: while it
        is silent past the bound, a federated peer is refused too (fail closed)."""
        signals = self.agent(self.traffic, "city/signals/ours-silent", ["request:load"])
        v = self.verifier(max_staleness=1.0)
        self.assertTrue(v.verify_x509(signals.svid_pem, scope="reduce:load"))
        with paused(self.energy):
            d = eventually(lambda: not v.verify_x509(signals.svid_pem, scope="reduce:load"),
                           timeout=5.0)
            self.assertTrue(d, "a federated peer passed while our stream was silent")
            self.assertIn("fail closed", v.verify_x509(signals.svid_pem).reason)
        self.assertTrue(eventually(lambda: v.verify_x509(signals.svid_pem, scope="reduce:load")))

    def test_a_forged_peer_is_refused_by_the_tls_contexts_too(self):
        """The XF-2 forgery (a traffic.city ID signed by energy.city's CA) presented by a
        plain Python ssl client to an energy agent's ssl_context(): refused; the control
        naming an energy.city agent is accepted."""
        balancer = self.agent(self.energy, "grid/dispatch/forged", ["reduce:load"])
        listener = harness.TlsServer(balancer.ssl_context(server_side=True))
        self.addCleanup(listener.close)
        name = "city/signals/forged/inst-bbbbbbbbbbbbbbbb"
        for td, allowed in (("traffic.city", False), ("energy.city", True)):
            d = self.forged_dir(f"spiffe://{td}/{name}")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.load_verify_locations(self.energy.bundle_pem)
            ctx.load_cert_chain(os.path.join(d, "leaf.pem"), os.path.join(d, "key.pem"))
            harness.tls_exchange(ctx, listener.port)
            status, detail = listener.result()
            self.assertEqual(status == "ok", allowed, f"{td}: {detail}")

    def test_mtls_between_agents_of_both_domains(self):
        signals = self.agent(self.traffic, "city/signals/mtls", ["request:load"])
        meter = self.agent(self.traffic, "city/parking/mtls", ["reduce:load"])
        balancer = self.agent(self.energy, "grid/dispatch/mtls", ["reduce:load"])
        context = balancer.ssl_context(server_side=True, scope="reduce:load")
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        seen = []

        def serve():
            for _ in range(2):
                raw, _ = listener.accept()
                try:
                    with context.wrap_socket(raw, server_side=True) as tls:
                        seen.append(str(tls.peer_spiffe_id))
                        tls.sendall(b"ok\n")
                except (ssl.SSLError, OSError) as e:
                    seen.append(f"refused: {e}")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()

        def ask(agent):
            with socket.create_connection(("127.0.0.1", listener.getsockname()[1]), 10) as raw:
                with agent.ssl_context(peer=balancer.spiffe_id).wrap_socket(raw) as tls:
                    self.assertEqual(str(tls.peer_spiffe_id), str(balancer.spiffe_id))
                    return tls.recv(16)

        self.assertEqual(ask(signals), b"ok\n")
        with self.assertRaises((ssl.SSLError, OSError)):
            if not ask(meter):
                raise ConnectionResetError("closed without answering")
        thread.join(10)
        self.assertEqual(seen[0], str(signals.spiffe_id))
        self.assertIn("our policy grants it nothing", seen[1])

    def test_grants_follow_the_policy(self):
        signals = self.agent(self.traffic, "city/signals/policy", ["request:load"])
        v = self.verifier()
        self.assertTrue(eventually(lambda: v.verify_x509(signals.svid_pem, scope="reduce:load")))
        try:
            self.apply_policy(self.energy, self.admin_policy)
            d = eventually(lambda: not v.verify_x509(signals.svid_pem, scope="reduce:load"))
            self.assertTrue(d, "the withdrawn grant still held")
        finally:
            self.apply_policy(self.energy, self.admin_policy + GRANT)
        self.assertTrue(eventually(lambda: v.verify_x509(signals.svid_pem, scope="reduce:load")))

    def test_a_grant_for_our_own_trust_domain_is_refused(self):
        path = write_file(os.path.join(self.tmp, "own.toml"), self.admin_policy + """
[[foreign]]
trust_domain = "energy.city"
scopes = ["reduce:load"]
""")
        r = tw("policy", "apply", path, env=cli_env(self.energy, token=self.energy.admin_token()))
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("our own trust domain", r.stderr + r.stdout)

    def test_removing_the_federation_untrusts_the_domain_in_the_sdk(self):
        signals = self.agent(self.traffic, "city/signals/removal", ["request:load"])
        v = self.verifier()
        self.assertTrue(eventually(lambda: v.verify_x509(signals.svid_pem, scope="reduce:load")))
        try:
            self.cli(self.energy, "federation", "remove", "traffic.city")
            d = eventually(lambda: not v.verify_x509(signals.svid_pem, scope="reduce:load"))
            self.assertTrue(d, "traffic.city was still trusted after the removal")
            self.assertIn("traffic.city", v.verify_x509(signals.svid_pem).reason)
        finally:
            self.federate(self.energy, self.traffic)
        self.assertTrue(eventually(lambda: v.verify_x509(signals.svid_pem, scope="reduce:load")))

    def test_a_revocation_in_the_foreign_domain_is_followed(self):
        signals = self.agent(self.traffic, "city/signals/revoked", ["request:load"])
        following = self.verifier(federated_revocations={"traffic.city": self.traffic.url},
                                  max_staleness=2.0)
        blind = self.verifier()
        self.assertTrue(following.verify_x509(signals.svid_pem, scope="reduce:load"))
        self.cli(self.traffic, "revoke", "--instance", signals.instance_id, "--reason", "test")
        d = eventually(lambda: not following.verify_x509(signals.svid_pem, scope="reduce:load"),
                       timeout=2.0)
        self.assertTrue(d, "the revocation in traffic.city did not reach the verifier")
        self.assertIn("is revoked", following.verify_x509(signals.svid_pem).reason)
        # A verifier that does not follow traffic.city's stream knows only the certificate.
        self.assertTrue(blind.verify_x509(signals.svid_pem, scope="reduce:load"))

    def test_a_silent_foreign_stream_fails_closed_for_that_domain_only(self):
        signals = self.agent(self.traffic, "city/signals/silent", ["request:load"])
        own = self.agent(self.energy, "grid/dispatch/silent", ["reduce:load"])
        v = self.verifier(federated_revocations={"traffic.city": self.traffic.url},
                          max_staleness=1.0)
        self.assertTrue(v.verify_x509(signals.svid_pem, scope="reduce:load"))
        with paused(self.traffic):
            d = eventually(lambda: not v.verify_x509(signals.svid_pem, scope="reduce:load"),
                           timeout=5.0)
            self.assertTrue(d, "a silent traffic.city stream did not fail closed")
            self.assertIn("fail closed", v.verify_x509(signals.svid_pem).reason)
            self.assertTrue(v.verify_x509(own.svid_pem, scope="reduce:load"))
        self.assertTrue(eventually(lambda: v.verify_x509(signals.svid_pem, scope="reduce:load")))

    def test_federated_revocations_must_name_a_federated_domain(self):
        with self.assertRaises(TrustWardenError) as e:
            self.verifier(federated_revocations={"water.city": self.traffic.url})
        self.assertIn("does not federate with water.city", str(e.exception))
        with self.assertRaises(TrustWardenError) as e:
            self.verifier(federated_revocations={"energy.city": self.energy.url})
        self.assertIn("our own trust domain", str(e.exception))
        with self.assertRaises(InvalidArgument):
            self.verifier(federated_revocations=["traffic.city"])

    def test_the_smart_city_demo_runs_as_make_demo_federation_does(self):
        build = os.path.dirname(os.path.dirname(os.path.abspath(TW_BIN)))
        r = subprocess.run([os.path.join(ROOT, "scripts", "demo_federation"), build],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=180, check=False)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("The story went as expected.", r.stdout)
        rows = [l for l in r.stdout.splitlines() if " observation " in l]
        # The signal agent served, the meter refused; then, once the revocation reached the
        # verifier (a request may get through while it travels), the signal agent refused.
        decisions = [("allow" in l, "deny" in l) for l in rows]
        self.assertGreaterEqual(len(decisions), 3, r.stdout)
        self.assertEqual(decisions[:2], [(True, False), (False, True)], r.stdout)
        self.assertEqual(decisions[-1], (False, True), r.stdout)
        self.assertIn("is revoked", rows[-1], r.stdout)


if __name__ == "__main__":
    unittest.main()
