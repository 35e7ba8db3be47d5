"""CA rotation on a running server, as SPIRE does it but explicit: `ca prepare` publishes a new
authority before it signs, `ca activate` switches signing, SVIDs of the old authority keep
verifying until `ca retire` (refused while they may live) or `ca revoke-authority` (at once).
A stream of issuances and mTLS verifications runs through prepare and activate and must see
no failure."""

import base64
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from trustwarden_harness import (OPENSSL, Server, cli_env, describe, pem_blocks,  # noqa: E402
                                 read_bytes, read_text, run, tw)


class RotationCase(unittest.TestCase):
    """A server of its own per test (start_server), and the CLI and agents against it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tw-rotation-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.n = itertools.count(1)  # names of files and agents, from any thread

    def start_server(self, **kw):
        self.server = Server(os.path.join(self.tmp, "server"), **kw)
        self.addCleanup(self.server.stop)
        self.server.start()

    def env(self):
        return cli_env(self.server, token=self.server.admin_token())

    def cli(self, *argv, code=0):
        r = tw(*argv, env=self.env())
        self.assertEqual(r.returncode, code, describe(r))
        return r

    def doc(self, *argv):
        return json.loads(self.cli(*argv, "--json").stdout)

    def agent(self, name=None):
        n = next(self.n)
        out = os.path.join(self.tmp, f"agent-{n}")
        created = self.doc("agent", "create", "--name", name or f"acme/fin/a{n}",
                           "--scope", "read:x", "--out", out)
        created["dir"] = out
        return created

    def as_agent(self, agent):
        return self.server.client(cert=os.path.join(agent["dir"], "svid.pem"),
                                  key=os.path.join(agent["dir"], "key.pem"))

    def bundle_now(self):
        """The bundle the server publishes, saved to a new file."""
        r = self.server.client().get("/v1/bundle")
        self.assertEqual(r.status, 200, r)
        path = os.path.join(self.tmp, f"bundle-{next(self.n)}.json")
        with open(path, "w") as f:
            f.write(r.text)
        return path, r.json

    def svid_verifies(self, agent, bundle):
        r = tw("svid", "verify", "--bundle", bundle, os.path.join(agent["dir"], "svid.pem"))
        return r.returncode == 0


class UpstreamRotationTest(RotationCase):
    """The server's CA an intermediate of a root kept elsewhere: the successor's request goes
    to the root (`ca sign-intermediate`), and `ca activate --chain` takes the answer."""

    TD = "upstream.example"

    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.tmp, "root")
        self.assertEqual(tw("ca", "init", "--trust-domain", self.TD, "--out", self.root)
                         .returncode, 0)
        key = "file:" + os.path.join(self.tmp, "ca.key.pem")
        chain = self.sign(self.request(key))
        self.start_server(trust_domain=self.TD,
                          extra_args=["--ca-key", key, "--upstream-chain", chain])

    def request(self, key):
        csr = os.path.join(self.tmp, f"request-{next(self.n)}.csr")
        r = tw("ca", "request-intermediate", "--key", key, "--out", csr)
        self.assertEqual(r.returncode, 0, describe(r))
        return csr

    def sign(self, csr):
        chain = os.path.join(self.tmp, f"chain-{next(self.n)}.pem")
        r = tw("ca", "sign-intermediate", "--ca", self.root, "--csr", csr, "--out", chain)
        self.assertEqual(r.returncode, 0, describe(r))
        return chain

    def verified_by_root(self, agent):
        svid = os.path.join(agent["dir"], "svid.pem")
        return run([OPENSSL, "verify", "-CAfile", os.path.join(self.root, "bundle.pem"),
                    "-untrusted", svid, svid]).returncode == 0

    def test_the_successor_is_signed_by_the_root_then_activated_with_its_chain(self):
        before = self.agent()
        bundle_before = self.bundle_now()[1]
        csr = os.path.join(self.tmp, "next.csr")
        prepared = self.doc("ca", "prepare", "--csr-out", csr)
        self.assertEqual(read_text(csr), prepared["csr_pem"])
        self.assertIn("BEGIN CERTIFICATE REQUEST", prepared["csr_pem"])
        self.assertIsNone(prepared["not_after"])
        bundle = self.bundle_now()[1]
        self.assertEqual(bundle["spiffe_sequence"], bundle_before["spiffe_sequence"] + 1)
        x509 = [k["x5c"] for k in bundle["keys"] if k["use"] == "x509-svid"]
        self.assertEqual(x509, [k["x5c"] for k in bundle_before["keys"]
                                if k["use"] == "x509-svid"], "the root alone, unchanged")
        r = self.cli("ca", "activate", "--force", code=1)
        self.assertIn("awaits the upstream root's signature", r.stderr)
        # A chain for the first key is not the successor's.
        stale = self.sign(self.request("file:" + os.path.join(self.tmp, "ca.key.pem")))
        r = self.cli("ca", "activate", "--force", "--chain", stale, code=1)
        self.assertIn("not for this CA key", r.stderr)

        chain = self.sign(csr)
        activated = self.doc("ca", "activate", "--force", "--chain", chain)
        self.assertEqual(activated["id"], prepared["id"])
        self.assertIsNone(activated["csr_pem"])
        after = self.agent()
        self.assertTrue(self.verified_by_root(after))
        self.assertTrue(self.verified_by_root(before), "SVIDs of the first keep verifying")
        # Signed under the new intermediate, not the first one.
        first = pem_blocks(read_bytes(os.path.join(before["dir"], "svid.pem")))[1]
        second = pem_blocks(read_bytes(os.path.join(after["dir"], "svid.pem")))[1]
        self.assertNotEqual(first, second)
        self.assertEqual(second, pem_blocks(read_bytes(chain))[0])
        states = [a["state"] for a in self.doc("ca", "status")["authorities"]]
        self.assertEqual(states, ["old", "active"])


class RotationTest(RotationCase):

    def setUp(self):
        super().setUp()
        self.start_server()

    def test_prepare_activate_retire_revoke_with_traffic_throughout(self):
        first = self.agent()
        r = self.as_agent(first).post("/v1/jwt-svids", {"audience": ["db"]})
        self.assertEqual(r.status, 200, r)
        old_jwt = r.json["token"]
        status = self.doc("ca", "status")
        self.assertEqual([(a["id"], a["state"]) for a in status["authorities"]], [(1, "active")])
        start_sequence = status["bundle_sequence"]

        # Traffic: new identities, each then proven to the server over mTLS.
        failures, done, stop = [], [0], threading.Event()

        def traffic():
            while not stop.is_set():
                try:
                    a = self.agent()
                    r = self.as_agent(a).post("/v1/jwt-svids", {"audience": ["db"]})
                    if r.status != 200:
                        failures.append(f"{a['spiffe_id']}: JWT mint answered {r}")
                    done[0] += 1
                except (AssertionError, OSError) as e:  # a create that failed
                    failures.append(repr(e))
        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            time.sleep(0.5)
            prepared = self.doc("ca", "prepare")
            self.assertEqual((prepared["id"], prepared["state"]), (2, "prepared"))
            bundle, published = self.bundle_now()
            self.assertEqual(published["spiffe_sequence"], start_sequence + 1)
            self.assertEqual(len([k for k in published["keys"] if k["use"] == "x509-svid"]), 2)
            self.assertEqual(len([k for k in published["keys"] if k["use"] == "jwt-svid"]), 2)
            self.assertTrue(self.svid_verifies(first, bundle))
            time.sleep(0.5)
            # Too soon for verifiers that refresh every refresh hint; --force goes ahead.
            r = self.cli("ca", "activate", code=1)
            self.assertIn("verifiers refresh the bundle every 300s", r.stderr)
            activated = self.doc("ca", "activate", "--force")
            self.assertEqual((activated["id"], activated["state"]), (2, "active"))
            time.sleep(0.5)
        finally:
            stop.set()
            worker.join()
        self.assertEqual(failures, [])
        self.assertGreater(done[0], 3)

        # After activation: new SVIDs chain to the new authority, old ones still verify.
        second = self.agent()
        bundle, published = self.bundle_now()
        self.assertEqual(published["spiffe_sequence"], start_sequence + 2)
        first_issuer = run([OPENSSL, "x509", "-noout", "-issuer", "-in",
                            os.path.join(first["dir"], "svid.pem")]).stdout
        second_issuer = run([OPENSSL, "x509", "-noout", "-issuer", "-in",
                             os.path.join(second["dir"], "svid.pem")]).stdout
        self.assertNotEqual(first_issuer, second_issuer)
        for a in (first, second):
            self.assertTrue(self.svid_verifies(a, bundle), a["spiffe_id"])
            self.assertEqual(self.as_agent(a).post("/v1/jwt-svids", {"audience": ["db"]}).status,
                             200)
        r = tw("jwt", "verify", "--bundle", bundle, "--audience", "db", old_jwt)
        self.assertEqual(r.returncode, 0, describe(r))

        # The offline tools on the server's data directory sign with the active authority.
        key = os.path.join(self.tmp, "offline.key.pem")
        public = os.path.join(self.tmp, "offline.pub.pem")
        for argv in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", key], ["pkey", "-in", key, "-pubout", "-out", public]):
            r = run([OPENSSL, *argv])
            self.assertEqual(r.returncode, 0, describe(r))
        offline = os.path.join(self.tmp, "offline.pem")
        spiffe_id = "spiffe://" + second["spiffe_id"].split("/")[2] + "/offline/tool"
        r = tw("svid", "issue", "--ca", self.server.data_dir, "--spiffe-id", spiffe_id,
               "--public-key", public, "--ttl", "5m", "--out", offline)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(run([OPENSSL, "x509", "-noout", "-issuer", "-in", offline]).stdout,
                         second_issuer)
        r = tw("svid", "verify", "--bundle", bundle, offline)
        self.assertEqual(r.returncode, 0, describe(r))
        # No longer than ca retire counts on (an SVID 24 h, a JWT-SVID 1 h).
        r = tw("svid", "issue", "--ca", self.server.data_dir, "--spiffe-id", spiffe_id,
               "--public-key", public, "--ttl", "25h", "--out", offline)
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("at most 24h", r.stderr)
        r = tw("jwt", "mint", "--ca", self.server.data_dir, "--spiffe-id", spiffe_id,
               "--audience", "db", "--ttl", "2h")
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("at most 1h", r.stderr)
        r = tw("jwt", "mint", "--ca", self.server.data_dir, "--spiffe-id", spiffe_id,
               "--audience", "db")
        self.assertEqual(r.returncode, 0, describe(r))
        minted = r.stdout.strip()
        header = json.loads(base64.urlsafe_b64decode(minted.split(".")[0] + "=="))
        active = [a for a in self.doc("ca", "status")["authorities"] if a["id"] == 2]
        self.assertEqual(header["kid"], active[0]["jwt_key_id"])
        r = tw("jwt", "verify", "--bundle", bundle, "--audience", "db", minted)
        self.assertEqual(r.returncode, 0, describe(r))
        r = tw("svid", "verify", "--bundle", self.server.bundle_pem,
               os.path.join(second["dir"], "svid.pem"))
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(len(pem_blocks(read_bytes(self.server.bundle_pem))), 2)

        # Retiring the old authority waits for what it signed to expire.
        r = self.cli("ca", "retire", "1", code=1)
        self.assertIn("may have signed SVIDs valid until", r.stderr)
        r = self.cli("ca", "retire", code=1)  # every old one that may: none yet
        self.assertIn("may have signed SVIDs valid until", r.stderr)
        self.cli("ca", "revoke-authority", "2", code=1)  # the active one

        # A compromised old authority leaves at once: its SVIDs are refused everywhere.
        self.cli("ca", "revoke-authority", "1")
        bundle, published = self.bundle_now()
        self.assertEqual(published["spiffe_sequence"], start_sequence + 3)
        self.assertFalse(self.svid_verifies(first, bundle))
        self.assertTrue(self.svid_verifies(second, bundle))
        refused = self.as_agent(first).post("/v1/jwt-svids", {"audience": ["db"]})
        self.assertIn(refused.status, (401, 403), refused)
        states = {a["id"]: a["state"] for a in self.doc("ca", "status")["authorities"]}
        self.assertEqual(states, {1: "revoked", 2: "active"})

        # Every change is in the ledger, and the ledger verifies against every authority ever.
        events = self.doc("audit", "query", "--type", "authority")["events"]
        self.assertEqual([(e["event"]["resource"], e["event"]["reason"]) for e in events],
                         [("authority:2", "prepared"), ("authority:2", "active"),
                          ("authority:1", "revoked")])
        time.sleep(1.2)
        r = self.cli("ledger", "verify")
        self.assertIn("ledger intact", r.stdout)

        # A restart keeps the rotation.
        self.server.stop()
        self.server.start()
        states = {a["id"]: a["state"] for a in self.doc("ca", "status")["authorities"]}
        self.assertEqual(states, {1: "revoked", 2: "active"})
        third = self.agent()
        self.assertEqual(run([OPENSSL, "x509", "-noout", "-issuer", "-in",
                              os.path.join(third["dir"], "svid.pem")]).stdout, second_issuer)
        self.assertTrue(self.svid_verifies(second, self.server.bundle_json))

    def test_activate_needs_a_prepared_authority_and_prepare_only_one(self):
        r = self.cli("ca", "activate", code=1)
        self.assertIn("ca prepare first", r.stderr)
        self.cli("ca", "prepare")
        lines = self.cli("ca", "status").stdout.splitlines()
        self.assertEqual(lines[0].split(),
                         ["ID", "STATE", "SERIAL", "NOT_AFTER", "SIGNS_UNTIL", "JWT_KEY_ID"])
        self.assertEqual([line.split()[1] for line in lines[1:3]], ["active", "prepared"])
        self.assertRegex(lines[3], r"^bundle sequence \d+$")
        r = self.cli("ca", "prepare", code=1)
        self.assertIn("prepared already", r.stderr)
        r = self.cli("ca", "retire", "9", code=1)
        self.assertIn("no authority 9", r.stderr)
        # The data directory names the new keys, files beside the first ones.
        self.assertTrue(os.path.exists(os.path.join(self.server.data_dir, "ca-2.key.pem")))
        history = json.loads(read_text(os.path.join(self.server.data_dir, "bundle-history.json")))
        self.assertEqual(len([k for k in history["keys"] if k["use"] == "x509-svid"]), 2)

    def test_ca_routes_need_the_admin_token(self):
        for method, path in (("GET", "/v1/ca"), ("POST", "/v1/ca/prepare"),
                             ("POST", "/v1/ca/activate")):
            r = self.server.client().request(method, path, {} if method == "POST" else None)
            self.assertEqual(r.status, 401, f"{method} {path}: {r}")
        r = self.server.client(token=self.server.admin_token()).post("/v1/ca/retire", {"id": "x"})
        self.assertEqual(r.status, 400, r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
