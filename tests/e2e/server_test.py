#!/usr/bin/env python3
"""End-to-end black-box tests for `trustwarden server` and the client side of the CLI.

    TW_BIN=/work/main/build/bin/trustwarden /usr/bin/python3 -m unittest -v tests/e2e/server_test.py

Each test class starts its own real server process through tests/harness (a temporary data
directory, loopback port 0, stopped by PID). Only the standard library (http.client, ssl,
socket), python3-cryptography 38, PyJWT and the `openssl` CLI are used. The contract is the HTTP
and CLI sections of /work/shared/API.md plus the server design (data directory layout, default
policy, error codes, revocation stream).

Notes for whoever reads a failure:
  * Leaves are examined with `trustwarden svid inspect --json`, `svid verify` and
    `openssl x509 -text`; tests/interop/verifiers_test.py loads them with cryptography 38, Go
    and Java.
  * Every socket operation has a timeout; a hung server fails a test, it does not hang the suite.
  * Server output is kept in the class's temporary directory and its tail is shown when the
    server fails to start.
"""

import base64
import datetime
import http.client
import json
import os
import queue
import re
import socket
import ssl
import sys
import threading
import time
import unittest
import urllib.parse

import jwt  # PyJWT
from cryptography.hazmat.primitives.asymmetric import ec, rsa

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import trustwarden_harness as harness  # noqa: E402
from trustwarden_harness import (  # noqa: E402
    ADMIN_ENTRY, DEFAULT, OPENSSL, SOCKET_TIMEOUT, Agent, Response, cli_env, der_to_pem,
    describe, file_mode, identity_body, key_pem, make_csr, new_key, norm_serial, parse_time,
    pem_blocks, pem_to_der, public_pem, read_bytes, read_text, run, svid_inspect, tw, utcnow)

TD = "e2e.example"                 # trust domain of most test servers
ATTR_OID = "1.2.840.113556.1.8000.2554.16020.10140.60418.20114.34655.4233063.3621013.1"
INSTANCE_ID_RE = re.compile(r"^inst-[a-z2-7]{16}$")
ONE_MIB = 1 << 20


def setUpModule():
    harness.require("openssl")


def metric_sum(text, name):
    """Sum of every sample of metric `name` (any labels) in Prometheus text; None if absent."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and m.group(1) == name:
            seen = True
            total += float(m.group(3))
    return total if seen else None


def corrupt_csr_signature(csr_pem):
    """Flip one bit in the last byte of the CSR: inside the ECDSA signature's `s` integer, so the
    DER still parses but the signature no longer verifies."""
    der = bytearray(pem_to_der(pem_blocks(csr_pem, "CERTIFICATE REQUEST")[0]))
    der[-1] ^= 0x01
    return der_to_pem(bytes(der), "CERTIFICATE REQUEST")


def openssl_text(path, der=False):
    argv = [OPENSSL, "x509", "-noout", "-text", "-in", path]
    if der:
        argv[2:2] = ["-inform", "DER"]
    r = run(argv)
    if r.returncode != 0:
        raise AssertionError("openssl x509 failed" + describe(r))
    return r.stdout


# ---------------------------------------------------------------------------------------------
# Server-Sent Events reader
# ---------------------------------------------------------------------------------------------
class EventStream:
    """Reads an SSE response on a background thread: events (dicts with id/event/data) and
    comment lines go to queues, so the test can wait with deadlines."""

    def __init__(self, client, path, headers=None):
        self.conn = client.connect(timeout=30)
        self.conn.request("GET", path, headers=headers or {})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("Content-Type", "")
        self.events = queue.Queue()
        self.comments = queue.Queue()
        self.error = None
        self.thread = None
        if self.status == 200:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        else:
            self.body = self.resp.read()

    def _run(self):
        current = {}
        try:
            while True:
                raw = self.resp.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line == "":
                    if current:
                        self.events.put(current)
                        current = {}
                    continue
                if line.startswith(":"):
                    self.comments.put((time.monotonic(), line))
                    continue
                field, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if field == "data" and "data" in current:
                    current["data"] += "\n" + value
                else:
                    current[field] = value
        except Exception as e:  # noqa: BLE001 - reported through .error
            self.error = e
        finally:
            self.events.put(None)

    def next_event(self, timeout):
        """The next event dict; None when the stream ended; raises AssertionError on timeout."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no SSE event within {timeout}s (reader error: "
                                 f"{self.error!r})") from None

    def close(self):
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


# ---------------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------------
class ServerTestCase(harness.ServerTestCase):
    TRUST_DOMAIN = TD

    def assert_spiffe_id(self, spiffe_id, name, td=None):
        td = td or self.server.trust_domain or "trustwarden"
        prefix = f"spiffe://{td}/{name}/"
        self.assertTrue(spiffe_id.startswith(prefix), f"{spiffe_id!r} does not start with "
                                                      f"{prefix!r}")
        self.assertRegex(spiffe_id[len(prefix):], INSTANCE_ID_RE)

    def verify_svid(self, path, expected_id):
        r = tw("svid", "verify", "--bundle", self.server.bundle_json, path)
        self.assertEqual(r.returncode, 0, "svid verify refused the SVID" + describe(r))
        self.assertEqual(r.stdout.strip().splitlines()[0], expected_id, describe(r))


# =============================================================================================
# 1. First start, files, restart
# =============================================================================================
class FirstStartTest(ServerTestCase):
    """Everything is gathered in setUpClass (start, create, stop, restart, check, stop); the tests
    read what the two runs left behind, their output included."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        srv = cls.server
        cls.dir_mode_run1 = file_mode(srv.data_dir)
        cls.agent = cls.create_agent(cls.admin, "acme-corp/finance-team/payment-processor",
                                     scope=["read:transactions"], ttl="1h")
        cls.bundle_json_run1 = read_bytes(srv.bundle_json)
        cls.bundle_pem_run1 = read_bytes(srv.bundle_pem)
        r = cls.anon.get("/v1/bundle")
        cls.api_bundle_run1 = r
        cls.run1 = srv.runs
        srv.stop()
        cls.stdout_run1 = read_text(srv.stdout_path(cls.run1))

        srv.start()
        cls.run2 = srv.runs
        client = srv.client(token=cls.admin_token)
        cls.token_file_run2 = srv.admin_token()
        cls.list_run2 = client.get("/v1/identities")
        cls.show_run2 = client.get(f"/v1/identities/{cls.agent.instance_id}")
        cls.api_bundle_run2 = srv.client().get("/v1/bundle")
        cls.bundle_json_run2 = read_bytes(srv.bundle_json)
        cls.verify_run2 = tw("svid", "verify", "--bundle", srv.bundle_json, cls.agent.svid_path)
        srv.stop()
        cls.stdout_run2 = read_text(srv.stdout_path(cls.run2))
        cls.stderr_run2 = read_text(srv.stderr_path(cls.run2))

    def test_data_dir_is_private(self):
        self.assertEqual(self.dir_mode_run1, 0o700, f"data dir mode {self.dir_mode_run1:o}")

    def test_admin_token_file(self):
        path = os.path.join(self.server.data_dir, "admin.token")
        self.assertEqual(file_mode(path), 0o600, f"admin.token mode {file_mode(path):o}")
        lines = [line for line in read_text(path).splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, f"admin.token should hold one line, has {len(lines)}")
        self.assertRegex(lines[0].strip(), r"^\S{16,}$", "admin token looks too short")

    def test_private_keys_are_0600(self):
        for name in ("ca.key.pem", "jwt.key.pem"):
            found = [os.path.join(d, name) for d, _, files in os.walk(self.server.data_dir)
                     if name in files]
            self.assertTrue(found, f"{name} not found under the data dir")
            for path in found:
                self.assertEqual(file_mode(path), 0o600, f"{path} mode {file_mode(path):o}")

    def test_bundle_files(self):
        bundle = json.loads(self.bundle_json_run1)
        uses = sorted(k.get("use") for k in bundle["keys"])
        self.assertIn("x509-svid", uses)
        self.assertIn("jwt-svid", uses)
        x5c = {base64.b64decode(c) for k in bundle["keys"] if k.get("use") == "x509-svid"
               for c in k.get("x5c", [])}
        pem = {pem_to_der(b) for b in pem_blocks(self.bundle_pem_run1)}
        self.assertTrue(pem, "bundle.pem holds no certificate")
        self.assertEqual(pem, x5c, "bundle.pem and bundle.json's x509-svid authorities differ")

    def test_api_bundle_matches_file(self):
        r = self.api_bundle_run1
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["keys"], json.loads(self.bundle_json_run1)["keys"])

    def test_admin_token_printed_once_on_first_start(self):
        self.assertEqual(self.stdout_run1.count(self.admin_token), 1,
                         f"first start stdout:\n{self.stdout_run1}")

    def test_second_start_prints_no_token(self):
        self.assertNotIn(self.admin_token, self.stdout_run2)
        self.assertNotIn(self.admin_token, self.stderr_run2)

    def test_restart_keeps_bundle(self):
        self.assertEqual(self.bundle_json_run2, self.bundle_json_run1, "bundle.json changed")
        self.assertEqual(self.api_bundle_run2.status, 200, self.api_bundle_run2)
        self.assertEqual(self.api_bundle_run2.json["keys"], self.api_bundle_run1.json["keys"])

    def test_restart_keeps_admin_token(self):
        self.assertEqual(self.token_file_run2, self.admin_token, "admin.token changed")
        self.assertEqual(self.list_run2.status, 200, self.list_run2)

    def test_restart_keeps_identities(self):
        self.assertEqual(self.show_run2.status, 200, self.show_run2)
        self.assertEqual(self.show_run2.json["spiffe_id"], self.agent.spiffe_id)
        ids = [i["instance_id"] for i in self.list_run2.json["identities"]]
        self.assertIn(self.agent.instance_id, ids)
        self.assertEqual(self.verify_run2.returncode, 0,
                         "an SVID from before the restart no longer verifies"
                         + describe(self.verify_run2))


# =============================================================================================
# 2. TLS
# =============================================================================================
class TLSTest(ServerTestCase):

    def test_certificate_matches_the_loopback_ip(self):
        # The handshake checks the name 127.0.0.1 (check_hostname); the server's certificate
        # must carry it as an IP address SAN, not as a DNS name.
        with self.server.tls_socket("127.0.0.1") as s:
            cert = s.getpeercert()
        self.assertIn(("IP Address", "127.0.0.1"), cert["subjectAltName"], cert)
        self.assertNotIn(("DNS", "127.0.0.1"), cert["subjectAltName"], cert)

    def test_verifies_with_localhost_name(self):
        with self.server.tls_socket("localhost") as s:
            self.assertIsNotNone(s.getpeercert())

    def test_wrong_hostname_rejected(self):
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.server.tls_socket("not-this-server.example").close()

    def test_untrusted_without_bundle(self):
        ctx = ssl.create_default_context()  # system roots only
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.server.tls_socket("127.0.0.1", ctx).close()

    def test_server_certificate_names(self):
        with self.server.tls_socket("127.0.0.1") as s:
            der = s.getpeercert(binary_form=True)
        path = self.write_tmp("server.der", der)
        text = openssl_text(path, der=True)
        self.assertIn(f"URI:spiffe://{TD}/trustwarden/server", text)
        self.assertIn("DNS:localhost", text)
        self.assertIn("IP Address:127.0.0.1", text)

    def test_tls12_only_client(self):
        ctx = ssl.create_default_context(cafile=self.server.bundle_pem)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.server.tls_socket("127.0.0.1", ctx) as s:
            self.assertEqual(s.version(), "TLSv1.2")
        c = self.server.client(max_version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(c.get("/healthz").status, 200)

    def test_tls13_client(self):
        ctx = ssl.create_default_context(cafile=self.server.bundle_pem)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        with self.server.tls_socket("127.0.0.1", ctx) as s:
            self.assertEqual(s.version(), "TLSv1.3")


# =============================================================================================
# 3. Identity creation (happy path)
# =============================================================================================
class IdentityTest(ServerTestCase):
    NAME = "acme-corp/finance-team/payment-processor"
    SCOPE = ["read:transactions", "write:ledger"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.t0 = utcnow()
        cls.resp, cls.key = cls.request_identity(cls.admin, cls.NAME, scope=cls.SCOPE, ttl="30m",
                                                 trust_level="medium")
        cls.agent = Agent(cls.server, cls.resp.json, cls.key, cls.agent_dir()) \
            if cls.resp.status == 201 else None

    def setUp(self):
        self.assertEqual(self.resp.status, 201, self.resp)

    def test_response_fields(self):
        doc = self.resp.json
        self.assert_spiffe_id(doc["spiffe_id"], self.NAME)
        self.assertRegex(doc["instance_id"], INSTANCE_ID_RE)
        self.assertEqual(doc["spiffe_id"].rsplit("/", 1)[1], doc["instance_id"])
        self.assertRegex(doc["serial"], r"^[0-9a-fA-F:]+$")
        self.assertIsNone(doc["parent"])
        self.assertEqual(doc["principal"], "admin")
        self.assertEqual(doc["policy_version"], 1)
        self.assertEqual(sorted(doc["scope"]), sorted(self.SCOPE))
        self.assertEqual(doc["trust_level"], "medium")
        self.assertGreaterEqual(len(pem_blocks(doc["svid_pem"])), 1)

    def test_expiry_honours_ttl(self):
        expires = parse_time(self.resp.json["expires_at"])
        expected = self.t0 + datetime.timedelta(minutes=30)
        self.assertLess(abs((expires - expected).total_seconds()), 120,
                        f"expires_at {expires} is not about 30m after {self.t0}")

    def test_response_bundle_is_server_bundle(self):
        api = self.anon.get("/v1/bundle")
        self.assertEqual(api.status, 200, api)
        self.assertEqual(self.resp.json["bundle"]["keys"], api.json["keys"])

    def test_svid_verifies_against_bundle(self):
        self.verify_svid(self.agent.svid_path, self.agent.spiffe_id)
        blocks = pem_blocks(self.resp.json["svid_pem"])
        untrusted = self.write_tmp("chain.pem", "\n".join(blocks[1:]) + "\n") \
            if len(blocks) > 1 else None
        leaf = self.write_tmp("leaf.pem", blocks[0] + "\n")
        argv = [OPENSSL, "verify", "-CAfile", self.server.bundle_pem]
        if untrusted:
            argv += ["-untrusted", untrusted]
        r = run(argv + [leaf])
        self.assertEqual(r.returncode, 0, "openssl verify refused the leaf" + describe(r))

    def test_svid_attributes(self):
        info = svid_inspect(self.agent.svid_path)
        self.assertEqual(info["spiffe_id"], self.agent.spiffe_id)
        self.assertEqual(sorted(info["scopes"]), sorted(self.SCOPE))
        self.assertEqual(info["trust_level"], "medium")
        self.assertEqual(info["principal"], "admin")
        self.assertEqual(info["policy_version"], 1)
        self.assertIsNone(info["parent"])
        self.assertEqual(norm_serial(info["serial"]), norm_serial(self.resp.json["serial"]))
        self.assertEqual(parse_time(info["not_after"]), parse_time(self.resp.json["expires_at"]))

    def test_leaf_has_noncritical_attribute_extension_and_csr_key(self):
        leaf = self.write_tmp("leaf.pem", pem_blocks(self.resp.json["svid_pem"])[0] + "\n")
        text = openssl_text(leaf)
        m = re.search(re.escape(ATTR_OID) + r":[ \t]*(critical)?", text)
        self.assertIsNotNone(m, f"attribute extension {ATTR_OID} missing:\n{text}")
        self.assertIsNone(m.group(1), "attribute extension must not be critical")
        r = run([OPENSSL, "x509", "-noout", "-pubkey", "-in", leaf])
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(r.stdout.strip(), public_pem(self.key).decode().strip(),
                         "the leaf does not certify the CSR's key")

    def test_record(self):
        rec = self.record(self.agent.instance_id)
        self.assertEqual(rec["instance_id"], self.agent.instance_id)
        self.assertEqual(rec["spiffe_id"], self.agent.spiffe_id)
        self.assertEqual(rec["name"], self.NAME)
        self.assertIsNone(rec["parent"])
        self.assertEqual(rec["principal"], "admin")
        self.assertEqual(rec["policy_version"], 1)
        self.assertEqual(norm_serial(rec["serial"]), norm_serial(self.resp.json["serial"]))
        self.assertEqual(sorted(rec["scope"]), sorted(self.SCOPE))
        self.assertEqual(rec["trust_level"], "medium")
        self.assertIs(rec["revoked"], False)
        self.assertIsNone(rec["revoked_sequence"])
        self.assertEqual(parse_time(rec["not_after"]), parse_time(self.resp.json["expires_at"]))
        self.assertLess(parse_time(rec["not_before"]), parse_time(rec["not_after"]))
        parse_time(rec["created_at"])

    def test_list_filters(self):
        other = self.create_agent(self.admin, "acme-corp/ops/other-agent")
        r = self.admin.get("/v1/identities?agent=" + urllib.parse.quote(self.NAME, safe=""))
        self.assertEqual(r.status, 200, r)
        ids = {i["instance_id"] for i in r.json["identities"]}
        self.assertIn(self.agent.instance_id, ids)
        self.assertNotIn(other.instance_id, ids)
        r = self.admin.get("/v1/identities?principal=admin&live=true")
        self.assertEqual(r.status, 200, r)
        ids = {i["instance_id"] for i in r.json["identities"]}
        self.assertLessEqual({self.agent.instance_id, other.instance_id}, ids)
        r = self.admin.get("/v1/identities?principal=nobody-at-all")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["identities"], [])

    def test_unknown_instance_not_found(self):
        self.assert_error(self.admin.get("/v1/identities/inst-aaaaaaaaaaaaaaaa"), 404)

    def test_defaults(self):
        t0 = utcnow()
        r, _ = self.request_identity(self.admin, "acme-corp/ops/defaults")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["scope"], [])
        self.assertEqual(r.json["trust_level"], "low")
        expires = parse_time(r.json["expires_at"])
        self.assertLess(abs((expires - (t0 + datetime.timedelta(hours=1))).total_seconds()), 120,
                        f"default TTL should be 1h, expires_at={expires}")

    def test_empty_subject_csr_accepted(self):
        key = new_key()
        r = self.admin.post("/v1/identities",
                            identity_body("acme-corp/ops/no-subject", csr=make_csr(key, None)))
        self.assertEqual(r.status, 201, r)

    def test_p384_key_accepted(self):
        key = new_key(ec.SECP384R1())
        r = self.admin.post("/v1/identities",
                            identity_body("acme-corp/ops/p384", csr=make_csr(key)))
        self.assertEqual(r.status, 201, r)
        agent = Agent(self.server, r.json, key, self.agent_dir())
        self.verify_svid(agent.svid_path, agent.spiffe_id)

    def test_each_creation_is_a_new_instance(self):
        a = self.create_agent(self.admin, self.NAME)
        b = self.create_agent(self.admin, self.NAME)
        self.assertNotEqual(a.instance_id, b.instance_id)
        self.assertNotEqual(a.doc["serial"], b.doc["serial"])

    def test_healthz_and_metrics(self):
        self.assertEqual(self.anon.get("/healthz").status, 200)
        r = self.anon.get("/metrics")
        self.assertEqual(r.status, 200, r)
        for name in ("trustwarden_issuances_total", "trustwarden_issuance_latency_seconds_bucket",
                     "trustwarden_revocations_total", "trustwarden_stream_subscribers",
                     "trustwarden_errors_total"):
            self.assertIn(name, r.text)
        issued = metric_sum(r.text, "trustwarden_issuances_total")
        self.assertIsNotNone(issued, "no trustwarden_issuances_total sample")
        self.assertGreaterEqual(issued, 1)


# =============================================================================================
# 4. Bad input: each a 4xx JSON error and nothing written
# =============================================================================================
class BadInputTest(ServerTestCase):
    NAME = "acme-corp/finance-team/payment-processor"

    def setUp(self):
        self.count_before = self.identity_count()

    def assert_nothing_written(self):
        self.assertEqual(self.identity_count(), self.count_before, "a refused request wrote")

    def reject(self, body, status, client=None, token=DEFAULT):
        r = (client or self.admin).post("/v1/identities", body, token=token)
        self.assert_error(r, status)
        self.assert_nothing_written()
        return r

    def test_oversized_body(self):
        body = json.dumps(identity_body(self.NAME, scope=["read:" + "x" * (ONE_MIB + 4096)]))
        r = self.admin.send_large("POST", "/v1/identities", body.encode())
        self.assert_error(r, 413)
        self.assertEqual(self.anon.get("/healthz").status, 200)
        self.assert_nothing_written()

    def test_malformed_json(self):
        self.reject(b"this is not json", 400)

    def test_truncated_json(self):
        text = json.dumps(identity_body(self.NAME))
        self.reject(text[: len(text) // 2].encode(), 400)

    def test_json_not_an_object(self):
        self.reject(b"[]", 400)

    def test_unknown_field(self):
        self.reject(identity_body(self.NAME, colour="blue"), 400)

    def test_missing_name(self):
        body = identity_body(self.NAME)
        del body["name"]
        self.reject(body, 400)

    def test_missing_csr(self):
        self.reject({"name": self.NAME}, 400)

    def test_csr_not_pem(self):
        self.reject(identity_body(self.NAME, csr="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                                 "-----END CERTIFICATE REQUEST-----\n"), 400)

    def test_csr_bad_signature(self):
        self.reject(identity_body(self.NAME, csr=corrupt_csr_signature(make_csr())), 400)

    def test_csr_rsa_1024(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        self.reject(identity_body(self.NAME, csr=make_csr(key)), 400)

    def test_csr_with_dns_san(self):
        self.reject(identity_body(self.NAME, csr=make_csr(dns=["evil.example"])), 400)

    def test_csr_requesting_ca(self):
        self.reject(identity_body(self.NAME, csr=make_csr(ca=True)), 400)

    def test_bad_names(self):
        for name in ("acme-corp/finance-team", "a/b/c/d", "acme corp/team/agent",
                     "acme-corp//agent", "acme-corp/team/agent/", "acme-corp/team/..", "",
                     "/acme-corp/team/agent", "acme-corp/team/agent%2f"):
            with self.subTest(name=name):
                self.reject(identity_body(name), 400)

    def test_bad_scopes(self):
        for scope in ([""], ["read:has space"], ["read:x\n"], [123], "read:x"):
            with self.subTest(scope=scope):
                self.reject(identity_body(self.NAME, scope=scope), 400)

    def test_bad_ttl_syntax(self):
        for ttl in ("soon", "-5m", "0s", 30):
            with self.subTest(ttl=ttl):
                self.reject(identity_body(self.NAME, ttl=ttl), 400)

    def test_bad_trust_level_syntax(self):
        self.reject(identity_body(self.NAME, trust_level="ultra"), 400)

    def test_ttl_beyond_policy(self):
        self.reject(identity_body(self.NAME, ttl="25h"), 403)

    def test_trust_level_beyond_policy(self):
        self.reject(identity_body(self.NAME, trust_level="critical"), 403)

    def test_missing_token(self):
        self.reject(identity_body(self.NAME), 401, client=self.anon, token=None)

    def test_wrong_token(self):
        wrong = "tw_" + "x" * 40
        r = self.reject(identity_body(self.NAME), 401, token=wrong)
        self.assertNotIn(wrong, r.text)

    def test_admin_routes_need_admin(self):
        for path in ("/v1/identities", "/v1/policies/current", "/v1/policies"):
            with self.subTest(path=path):
                self.assert_error(self.anon.get(path, token=None), 401)

    def test_unknown_route(self):
        self.assert_error(self.admin.get("/v1/no-such-route"), 404)


class SlowClientTest(ServerTestCase):
    """Connections that stall are closed after limits.request_timeout_seconds, and others are
    served meanwhile."""
    CONFIG = "[limits]\nrequest_timeout_seconds = 2\n"
    GRACE = 8.0   # seconds past the timeout before a still-open connection fails the test

    def test_slow_clients_disconnected(self):
        t0 = time.monotonic()
        slow_tls = self.server.tls_socket()
        self.addCleanup(slow_tls.close)
        slow_tls.sendall(b"POST /v1/identities HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 400\r\n")
        slow_tcp = socket.create_connection(("127.0.0.1", self.server.port),
                                            timeout=SOCKET_TIMEOUT)
        self.addCleanup(slow_tcp.close)
        slow_tcp.sendall(b"\x16\x03\x01")  # the start of a TLS record, then silence

        self.assertEqual(self.anon.get("/healthz").status, 200)
        r, _ = self.request_identity(self.admin, "acme-corp/ops/meanwhile")
        self.assertEqual(r.status, 201, r)
        deadline = t0 + 2 + self.GRACE
        for label, sock in (("half-sent request", slow_tls),
                            ("unfinished TLS handshake", slow_tcp)):
            closed = False
            while time.monotonic() < deadline and not closed:
                sock.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
                try:
                    if sock.recv(4096) == b"":
                        closed = True
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
                except (OSError, ssl.SSLError):
                    closed = True
            self.assertTrue(closed, f"the server kept a {label} open for "
                                    f"{time.monotonic() - t0:.0f}s")


# =============================================================================================
# 5. Policy
# =============================================================================================
CI_POLICY = """
[principals.ci-pipeline]
names = ["acme-corp/finance-team/*"]
scopes = ["read:transactions", "write:ledger.*", "delete:*"]
max_ttl = "1h"
max_trust_level = "critical"
may_delegate = true
max_depth = 2

[principals.intern]
names = ["acme-corp/sand*/bot-*"]
scopes = ["read:*"]
max_ttl = "30m"
max_trust_level = "low"
may_delegate = false
max_depth = 0

[[scope_rules]]
scope = "delete:*"
min_trust_level = "critical"
"""


class PolicyTest(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.applied = cls.apply_policy(CI_POLICY)
        cls.ci = cls.server.client(token=cls.new_principal_token("ci-pipeline"))
        cls.intern = cls.server.client(token=cls.new_principal_token("intern"))

    def current(self):
        r = self.admin.get("/v1/policies/current")
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_apply_returns_version_and_digest(self):
        self.assertEqual(self.applied["version"], 2)
        self.assertRegex(self.applied["sha256"], r"^[0-9a-f]{64}$")
        parse_time(self.applied["created_at"])

    def test_current_policy_document(self):
        cur = self.current()
        self.assertGreaterEqual(cur["version"], 2)
        self.assertEqual(cur["source"], CI_POLICY)
        self.assertEqual(cur["sha256"], self.applied["sha256"])
        self.assertIsInstance(cur["policy"], dict)
        self.assertIn("ci-pipeline", json.dumps(cur["policy"]))

    def test_name_outside_patterns_forbidden(self):
        for name in ("acme-corp/hr-team/bot", "other-corp/finance-team/bot"):
            with self.subTest(name=name):
                r, _ = self.request_identity(self.ci, name, scope=["read:transactions"])
                self.assert_error(r, 403, self.ci.token)

    def test_prefix_name_patterns(self):
        r, _ = self.request_identity(self.intern, "acme-corp/sandbox/bot-7", scope=["read:docs"],
                                     ttl="10m")
        self.assertEqual(r.status, 201, r)
        for name in ("acme-corp/sandbox/human", "acme-corp/prod/bot-7"):
            with self.subTest(name=name):
                r, _ = self.request_identity(self.intern, name, ttl="10m")
                self.assert_error(r, 403, self.intern.token)

    def test_scope_beyond_principal_forbidden(self):
        for scope in (["write:payments"], ["read:transactions", "write:ledgers"],
                      ["read:transactions.all"]):
            with self.subTest(scope=scope):
                r, _ = self.request_identity(self.ci, "acme-corp/finance-team/bot", scope=scope)
                self.assert_error(r, 403, self.ci.token)

    def test_scope_prefix_pattern_allowed(self):
        r, _ = self.request_identity(self.ci, "acme-corp/finance-team/bot",
                                     scope=["write:ledger.daily"])
        self.assertEqual(r.status, 201, r)

    def test_scope_rule_requires_trust_level(self):
        r, _ = self.request_identity(self.ci, "acme-corp/finance-team/cleaner",
                                     scope=["delete:records"], trust_level="high")
        self.assert_error(r, 403, self.ci.token)
        r, _ = self.request_identity(self.ci, "acme-corp/finance-team/cleaner",
                                     scope=["delete:records"], trust_level="critical")
        self.assertEqual(r.status, 201, r)

    def test_trust_level_above_principal_max_forbidden(self):
        r, _ = self.request_identity(self.intern, "acme-corp/sandbox/bot-1", ttl="10m",
                                     trust_level="medium")
        self.assert_error(r, 403, self.intern.token)

    def test_ttl_above_principal_max_forbidden(self):
        r, _ = self.request_identity(self.ci, "acme-corp/finance-team/bot", ttl="2h")
        self.assert_error(r, 403, self.ci.token)

    def test_accepted_request_carries_current_policy_version(self):
        version = self.current()["version"]
        self.assertGreaterEqual(version, 2)
        r, key = self.request_identity(self.ci, "acme-corp/finance-team/reconciler",
                                       scope=["read:transactions", "write:ledger.daily"],
                                       ttl="30m", trust_level="medium")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["policy_version"], version)
        self.assertEqual(r.json["principal"], "ci-pipeline")
        agent = Agent(self.server, r.json, key, self.agent_dir())
        info = svid_inspect(agent.svid_path)
        self.assertEqual(info["policy_version"], version)
        self.assertEqual(info["principal"], "ci-pipeline")
        self.assertEqual(self.record(agent.instance_id)["principal"], "ci-pipeline")

    def test_admin_without_entry_cannot_create_but_still_manages(self):
        r, _ = self.request_identity(self.admin, "acme-corp/finance-team/bot")
        self.assert_error(r, 403)
        self.assertEqual(self.admin.get("/v1/policies").status, 200)
        self.assertEqual(self.admin.get("/v1/identities").status, 200)
        self.assertEqual(
            self.admin.post("/v1/tokens", {"principal": "someone", "force": True}).status, 201)

    def test_principal_without_entry_forbidden(self):
        nobody = self.server.client(token=self.new_principal_token("nobody"))
        r, _ = self.request_identity(nobody, "acme-corp/finance-team/bot")
        self.assert_error(r, 403, nobody.token)

    def test_may_delegate_false_forbids_children(self):
        parent = self.create_agent(self.intern, "acme-corp/sandbox/bot-parent",
                                   scope=["read:docs"], ttl="20m")
        r, _ = self.request_identity(parent.client(), "acme-corp/sandbox/bot-child",
                                     scope=["read:docs"], ttl="5m")
        self.assert_error(r, 403)

    def test_non_admin_cannot_manage(self):
        self.assert_error(self.ci.post("/v1/policies", {"source": CI_POLICY}), 403, self.ci.token)
        self.assert_error(self.ci.post("/v1/tokens", {"principal": "x"}), 403, self.ci.token)
        self.assert_error(self.ci.get("/v1/identities"), 403, self.ci.token)

    def test_invalid_policy_rejected_and_nothing_changes(self):
        before = self.current()
        history = self.admin.get("/v1/policies").json["policies"]
        bad_sources = {
            "not toml": "[[[ this is not toml",
            "unknown principal key": '[principals.x]\nnames = ["a/b/c"]\ncolour = "blue"\n',
            "unknown table": "[settings]\nfoo = 1\n",
            "bad trust level": '[principals.x]\nnames = ["a/b/c"]\nmax_trust_level = "ultra"\n',
            "bad ttl": '[principals.x]\nnames = ["a/b/c"]\nmax_ttl = "forever"\n',
            "bad name pattern": '[principals.x]\nnames = ["only/two"]\n',
            "bad scope rule": '[[scope_rules]]\nscope = "delete:*"\nmin_trust_level = "x"\n',
        }
        for label, source in bad_sources.items():
            with self.subTest(label):
                self.assert_error(self.admin.post("/v1/policies", {"source": source}), 400)
        for label, body in (("no source", {}), ("source not a string", {"source": 5}),
                            ("unknown field", {"source": CI_POLICY, "x": 1})):
            with self.subTest(label):
                self.assert_error(self.admin.post("/v1/policies", body), 400)
        after = self.current()
        self.assertEqual((after["version"], after["sha256"]), (before["version"], before["sha256"]))
        self.assertEqual(self.admin.get("/v1/policies").json["policies"], history)

    def test_history_and_old_versions(self):
        r = self.admin.get("/v1/policies")
        self.assertEqual(r.status, 200, r)
        versions = [p["version"] for p in r.json["policies"]]
        self.assertEqual(sorted(versions), list(range(1, max(versions) + 1)))
        for p in r.json["policies"]:
            self.assertRegex(p["sha256"], r"^[0-9a-f]{64}$")
            parse_time(p["created_at"])
        v1 = self.admin.get("/v1/policies/1")
        self.assertEqual(v1.status, 200, v1)
        self.assertEqual(v1.json["version"], 1)
        self.assertIn("admin", v1.json["source"])
        v2 = self.admin.get("/v1/policies/2")
        self.assertEqual(v2.status, 200, v2)
        self.assertEqual(v2.json["source"], CI_POLICY)
        self.assertEqual(v2.json["sha256"], self.applied["sha256"])
        self.assert_error(self.admin.get("/v1/policies/9999"), 404)

    def test_identical_content_is_a_no_op(self):
        """The same document (comments and key order aside) makes no new version."""
        before = self.current()
        r = self.admin.post("/v1/policies", {"source": "# reformatted\n" + CI_POLICY})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["unchanged"], True)
        self.assertEqual((r.json["version"], r.json["sha256"]),
                         (before["version"], before["sha256"]))
        self.assertEqual(self.current()["version"], before["version"])

    def test_policy_via_cli(self):
        env = cli_env(self.server, token=self.admin_token)
        changed = CI_POLICY.replace('max_ttl = "30m"', 'max_ttl = "20m"')
        path = self.write_tmp("policy.toml", changed)
        before = self.current()["version"]
        r = tw("policy", "apply", path, env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(self.current()["version"], before + 1)
        r = tw("policy", "show", "--json", env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        doc = json.loads(r.stdout)
        self.assertEqual(doc["version"], before + 1)
        self.assertEqual(doc["source"], changed)
        r = tw("policy", "show", "--version", "1", "--json", env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(json.loads(r.stdout)["version"], 1)
        r = tw("policy", "history", env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        header, *lines = [line for line in r.stdout.splitlines() if line.strip()]
        self.assertEqual(header.split(), ["VERSION", "APPLIED", "SHA256"], describe(r))
        for line in lines:
            self.assertRegex(line, r"^\s*\d+\b", "history line without a version" + describe(r))
        numbers = [int(re.match(r"\s*(\d+)", line).group(1)) for line in lines]
        self.assertEqual(sorted(numbers), list(range(1, before + 2)), describe(r))
        bad = self.write_tmp("bad.toml", "[[[ nope")
        r = tw("policy", "apply", bad, env=env)
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("error:", r.stderr)
        self.assertEqual(self.current()["version"], before + 1)


# =============================================================================================
# 6. Delegation over mTLS
# =============================================================================================
class DelegationTest(ServerTestCase):
    SCOPE = ["read:transactions", "write:ledger"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = cls.create_agent(cls.admin, "acme-corp/ops/orchestrator", scope=cls.SCOPE,
                                    ttl="1h", trust_level="medium")
        cls.root_client = cls.root.client()

    def child(self, parent_client, name="acme-corp/ops/worker", scope=("read:transactions",),
              ttl="10m", trust_level="low"):
        return self.request_identity(parent_client, name, scope=list(scope), ttl=ttl,
                                     trust_level=trust_level)

    def test_child_created_with_parent_svid(self):
        r, key = self.child(self.root_client)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["parent"], self.root.spiffe_id)
        self.assertEqual(r.json["principal"], "admin")
        agent = Agent(self.server, r.json, key, self.agent_dir())
        self.verify_svid(agent.svid_path, agent.spiffe_id)
        info = svid_inspect(agent.svid_path)
        self.assertEqual(info["parent"], self.root.spiffe_id)
        self.assertEqual(info["principal"], "admin")
        rec = self.record(agent.instance_id)
        self.assertEqual(rec["parent"], self.root.spiffe_id)

    def test_child_scope_must_be_covered_by_parent(self):
        r, _ = self.child(self.root_client, scope=("read:transactions", "write:payments"))
        self.assert_error(r, 403)

    def test_child_ttl_within_parent_lifetime(self):
        r, _ = self.child(self.root_client, ttl="2h")
        self.assert_error(r, 403)

    def test_child_trust_level_not_above_parent(self):
        r, _ = self.child(self.root_client, trust_level="high")
        self.assert_error(r, 403)

    def test_depth_limit(self):
        # Default policy: max_depth 3 below the root (depth 0).
        # Each child's TTL stays inside its parent's remaining lifetime.
        client = self.root_client
        for depth, ttl in ((1, "30m"), (2, "20m"), (3, "10m")):
            r, key = self.child(client, name=f"acme-corp/ops/depth-{depth}", ttl=ttl)
            self.assertEqual(r.status, 201, f"depth {depth}: {r}")
            client = Agent(self.server, r.json, key, self.agent_dir()).client()
        r, _ = self.child(client, name="acme-corp/ops/depth-4", ttl="5m")
        self.assert_error(r, 403)

    def test_child_of_revoked_parent_refused(self):
        parent = self.create_agent(self.admin, "acme-corp/ops/doomed", scope=self.SCOPE,
                                   ttl="1h", trust_level="medium")
        self.revoke(instance=parent.instance_id, reason="e2e")
        try:
            r, _ = self.child(parent.client())
        except (ssl.SSLError, ConnectionError) as e:
            self.fail(f"a revoked client certificate should get a 403, not a TLS failure: {e!r}")
        self.assert_error(r, 403)

    def test_token_and_no_parent_means_no_parent(self):
        r, _ = self.request_identity(self.admin, "acme-corp/ops/rootless")
        self.assertEqual(r.status, 201, r)
        self.assertIsNone(r.json["parent"])

    def test_foreign_client_certificate_rejected(self):
        ca_dir = os.path.join(self.tmp, "foreign-ca")
        r = tw("ca", "init", "--trust-domain", TD, "--out", ca_dir)
        self.assertEqual(r.returncode, 0, describe(r))
        key = new_key()
        csr = self.write_tmp("foreign.csr", make_csr(key))
        svid = os.path.join(self.tmp, "foreign-svid.pem")
        r = tw("svid", "issue", "--ca", ca_dir, "--csr", csr, "--ttl", "30m",
               "--spiffe-id", f"spiffe://{TD}/acme-corp/ops/orchestrator/inst-aaaaaaaaaaaaaaaa",
               "--scope", "read:transactions", "--trust-level", "medium", "--out", svid)
        self.assertEqual(r.returncode, 0, describe(r))
        keyfile = self.write_tmp("foreign.key", key_pem(key), 0o600)
        before = self.identity_count()
        # The handshake completes (client certificates are optional); a certificate that does not
        # chain to the server's bundle authenticates nobody.
        r, _ = self.child(self.server.client(cert=svid, key=keyfile))
        self.assert_error(r, 401)
        self.assertEqual(r.json["error"]["code"], "unauthenticated", r)
        self.assertIn("SVID as client certificate", r.json["error"]["message"], r)
        self.assertEqual(self.identity_count(), before, "a foreign SVID created an identity")
        self.assert_alive("after a foreign client certificate")


# =============================================================================================
# 7. Renewal
# =============================================================================================
class RenewalTest(ServerTestCase):
    SCOPE = ["read:transactions"]

    def new_agent(self):
        return self.create_agent(self.admin, "acme-corp/ops/renewer", scope=self.SCOPE,
                                 ttl="30m", trust_level="medium")

    def renew(self, agent, key=None):
        key = key or new_key()
        return agent.client().post("/v1/identities/renew",
                                              {"csr": make_csr(key)}), key

    def test_renewal_keeps_instance_and_changes_serial(self):
        agent = self.new_agent()
        r, key = self.renew(agent)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["instance_id"], agent.instance_id)
        self.assertEqual(r.json["spiffe_id"], agent.spiffe_id)
        self.assertNotEqual(norm_serial(r.json["serial"]), norm_serial(agent.doc["serial"]))
        self.assertEqual(sorted(r.json["scope"]), self.SCOPE)
        self.assertEqual(r.json["trust_level"], "medium")
        renewed = Agent(self.server, r.json, key, self.agent_dir())
        self.verify_svid(renewed.svid_path, agent.spiffe_id)
        info = svid_inspect(renewed.svid_path)
        self.assertEqual(sorted(info["scopes"]), self.SCOPE)
        self.assertEqual(norm_serial(self.record(agent.instance_id)["serial"]),
                         norm_serial(r.json["serial"]))

    def test_renewed_svid_can_renew_again(self):
        agent = self.new_agent()
        r, key = self.renew(agent)
        self.assertEqual(r.status, 200, r)
        renewed = Agent(self.server, r.json, key, self.agent_dir())
        r2, _ = self.renew(renewed)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.json["instance_id"], agent.instance_id)

    def test_renewal_without_client_certificate(self):
        self.assert_error(self.anon.post("/v1/identities/renew", {"csr": make_csr()}), 401)

    def test_renewal_with_bad_csr(self):
        agent = self.new_agent()
        r = agent.client().post("/v1/identities/renew", {"csr": make_csr(ca=True)})
        self.assert_error(r, 400)

    def test_revoked_instance_cannot_renew(self):
        agent = self.new_agent()
        self.revoke(instance=agent.instance_id)
        r, _ = self.renew(agent)
        self.assert_error(r, 403)


# =============================================================================================
# 8. JWT-SVIDs
# =============================================================================================
class JwtSvidTest(ServerTestCase):
    AUD = "payments-api"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.agent = cls.create_agent(cls.admin, "acme-corp/ops/jwt-user",
                                     scope=["read:transactions"], ttl="30m")

    def mint(self, agent=None, **body):
        body.setdefault("audience", [self.AUD])
        return (agent or self.agent).client().post("/v1/jwt-svids", body)

    def test_mint_verifies_with_pyjwt(self):
        t0 = time.time()
        r = self.mint(ttl="5m")
        self.assertEqual(r.status, 200, r)
        token = r.json["token"]
        header = jwt.get_unverified_header(token)
        self.assertIn(header.get("alg"), ("ES256", "ES384"))
        bundle = json.loads(read_bytes(self.server.bundle_json))
        keys = [k for k in bundle["keys"] if k.get("use") == "jwt-svid"]
        self.assertTrue(keys, "no jwt-svid key in bundle.json")
        match = [k for k in keys if k.get("kid") == header.get("kid")] or keys
        pub = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(match[0]))
        claims = jwt.decode(token, pub, algorithms=[header["alg"]], audience=self.AUD)
        self.assertEqual(claims["sub"], self.agent.spiffe_id)
        self.assertLess(abs(claims["exp"] - (t0 + 300)), 60, claims)
        self.assertLess(abs(parse_time(r.json["expires_at"]).timestamp() - claims["exp"]), 2)
        with self.assertRaises(jwt.InvalidAudienceError):
            jwt.decode(token, pub, algorithms=[header["alg"]], audience="someone-else")

    def test_mint_verifies_with_cli(self):
        r = self.mint()
        self.assertEqual(r.status, 200, r)
        token = r.json["token"]
        v = tw("jwt", "verify", "--bundle", self.server.bundle_json, "--audience", self.AUD,
               token)
        self.assertEqual(v.returncode, 0, describe(v))
        self.assertEqual(v.stdout.strip().splitlines()[0], self.agent.spiffe_id)
        v = tw("jwt", "verify", "--bundle", self.server.bundle_json, "--audience", "other", token)
        self.assertEqual(v.returncode, 1, describe(v))

    def test_default_ttl(self):
        # README, POST /v1/jwt-svids: without a ttl a JWT-SVID lives 5 minutes.
        before = time.time()
        r = self.mint()
        after = time.time()
        self.assertEqual(r.status, 200, r)
        expires = parse_time(r.json["expires_at"]).timestamp()
        self.assertTrue(before + 300 - 1 <= expires <= after + 300 + 1,
                        f"expires_at is not 5m after the request: {r}")
        claims = jwt.decode(r.json["token"], options={"verify_signature": False})
        self.assertLess(abs(claims["exp"] - expires), 1, claims)

    def test_missing_audience(self):
        r = self.agent.client().post("/v1/jwt-svids", {})
        self.assert_error(r, 400)
        r = self.agent.client().post("/v1/jwt-svids", {"audience": []})
        self.assert_error(r, 400)

    def test_no_client_certificate(self):
        self.assert_error(self.anon.post("/v1/jwt-svids", {"audience": [self.AUD]}), 401)

    def test_revoked_instance_cannot_mint(self):
        agent = self.create_agent(self.admin, "acme-corp/ops/jwt-doomed", ttl="30m")
        self.assertEqual(self.mint(agent).status, 200)
        self.revoke(instance=agent.instance_id)
        self.assert_error(self.mint(agent), 403)


# =============================================================================================
# 9. Revocation
# =============================================================================================
class RevocationTest(ServerTestCase):
    POLICY = ADMIN_ENTRY + """
[principals.batch-runner]
names = ["acme-corp/batch/*"]
scopes = ["read:*"]
max_ttl = "1h"
max_trust_level = "medium"
may_delegate = true
max_depth = 2
"""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.apply_policy(cls.POLICY)
        cls.batch = cls.server.client(token=cls.new_principal_token("batch-runner"))

    def family(self, prefix):
        """parent -> child -> grandchild, created over mTLS."""
        p = self.create_agent(self.admin, f"acme-corp/{prefix}/parent", scope=["read:x"],
                              ttl="1h", trust_level="medium")
        c = self.create_agent(p.client(), f"acme-corp/{prefix}/child",
                              scope=["read:x"], ttl="30m")
        g = self.create_agent(c.client(), f"acme-corp/{prefix}/grandchild",
                              scope=["read:x"], ttl="20m")
        return p, c, g

    def assert_revoked(self, agent, sequence=None):
        rec = self.record(agent.instance_id)
        self.assertIs(rec["revoked"], True, rec)
        if sequence is not None:
            self.assertEqual(rec["revoked_sequence"], sequence, rec)

    def assert_live(self, agent):
        rec = self.record(agent.instance_id)
        self.assertIs(rec["revoked"], False, rec)
        self.assertIsNone(rec["revoked_sequence"], rec)

    def test_instance_revocation_cascades(self):
        p, c, g = self.family("cascade")
        before = self.current_revocation_sequence()
        out = self.revoke(instance=p.instance_id, reason="compromised")
        self.assertEqual(out["sequence"], before + 1)
        self.assertEqual(set(out["revoked"]), {p.instance_id, c.instance_id, g.instance_id})
        for a in (p, c, g):
            self.assert_revoked(a, out["sequence"])
        live = self.admin.get("/v1/identities?agent=acme-corp/cascade/child&live=true")
        self.assertEqual(live.status, 200, live)
        self.assertNotIn(c.instance_id, {i["instance_id"] for i in live.json["identities"]})

    def test_agent_revocation_covers_all_live_instances(self):
        name = "acme-corp/fleet/scraper"
        fleet = [self.create_agent(self.admin, name, ttl="30m") for _ in range(3)]
        bystander = self.create_agent(self.admin, "acme-corp/fleet/indexer", ttl="30m")
        out = self.revoke(agent=name)
        self.assertEqual(set(out["revoked"]), {a.instance_id for a in fleet})
        for a in fleet:
            self.assert_revoked(a, out["sequence"])
        self.assert_live(bystander)

    def test_subtree_revocation(self):
        p, c, g = self.family("subtree")
        out = self.revoke(subtree=c.instance_id)
        self.assertIn(g.instance_id, out["revoked"])
        self.assertNotIn(p.instance_id, out["revoked"])
        self.assert_revoked(g, out["sequence"])
        self.assert_live(p)

    def test_principal_revocation(self):
        theirs = [self.create_agent(self.batch, f"acme-corp/batch/job-{i}", ttl="30m")
                  for i in range(2)]
        mine = self.create_agent(self.admin, "acme-corp/batch/job-admin", ttl="30m")
        out = self.revoke(principal="batch-runner")
        self.assertEqual(set(out["revoked"]), {a.instance_id for a in theirs})
        for a in theirs:
            self.assert_revoked(a, out["sequence"])
        self.assert_live(mine)

    def test_needs_exactly_one_target(self):
        a = self.create_agent(self.admin, "acme-corp/ops/target", ttl="30m")
        before = self.current_revocation_sequence()
        for body in ({}, {"reason": "x"},
                     {"instance": a.instance_id, "agent": "acme-corp/ops/target"},
                     {"subtree": a.instance_id, "principal": "admin"}):
            with self.subTest(body=body):
                self.assert_error(self.admin.post("/v1/revocations", body), 400)
        self.assertEqual(self.current_revocation_sequence(), before)
        self.assert_live(a)

    def test_unknown_instance_not_found(self):
        before = self.current_revocation_sequence()
        self.assert_error(self.admin.post("/v1/revocations",
                                          {"instance": "inst-aaaaaaaaaaaaaaaa"}), 404)
        self.assertEqual(self.current_revocation_sequence(), before)

    def test_needs_authority(self):
        a = self.create_agent(self.admin, "acme-corp/ops/protected", ttl="30m")
        self.assert_error(self.anon.post("/v1/revocations", {"instance": a.instance_id}), 401)
        self.assert_error(self.batch.post("/v1/revocations", {"instance": a.instance_id}), 403,
                          self.batch.token)
        self.assert_live(a)

    def test_instance_may_revoke_own_subtree_only(self):
        p, c, g = self.family("selfrevoke")
        stranger = self.create_agent(self.admin, "acme-corp/ops/stranger", ttl="30m")
        cc = c.client()
        self.assert_error(cc.post("/v1/revocations", {"instance": stranger.instance_id}), 403)
        self.assert_error(cc.post("/v1/revocations", {"instance": p.instance_id}), 403)
        self.assert_live(stranger)
        self.assert_live(p)
        r = cc.post("/v1/revocations", {"instance": g.instance_id, "reason": "self-service"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["revoked"], [g.instance_id])
        r = cc.post("/v1/revocations", {"instance": c.instance_id})
        self.assertEqual(r.status, 200, r)
        self.assert_revoked(c)
        self.assert_live(p)

    def test_list_after(self):
        a = self.create_agent(self.admin, "acme-corp/ops/listed", ttl="30m")
        out = self.revoke(instance=a.instance_id, reason="listing test")
        r = self.anon.get("/v1/revocations?after=0")
        self.assertEqual(r.status, 200, r)
        seqs = [e["sequence"] for e in r.json["entries"]]
        self.assertEqual(seqs, list(range(1, r.json["sequence"] + 1)))
        self.assertGreaterEqual(r.json["sequence"], out["sequence"])
        r = self.anon.get(f"/v1/revocations?after={out['sequence'] - 1}")
        self.assertEqual(r.status, 200, r)
        entry = r.json["entries"][0]
        self.assertEqual(entry["sequence"], out["sequence"])
        self.assertEqual(entry["kind"], "instance")
        self.assertIn(a.instance_id, str(entry["target"]))
        self.assertEqual(entry["reason"], "listing test")
        self.assertEqual(entry["instances"], [a.instance_id])
        parse_time(entry["revoked_at"])
        parse_time(entry["expires_at"])
        r = self.anon.get(f"/v1/revocations?after={r.json['sequence']}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["entries"], [])

    def open_stream(self, path, headers=None):
        s = EventStream(self.anon, path, headers)
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200, getattr(s, "body", b""))
        self.assertIn("text/event-stream", s.content_type)
        return s

    def test_stream_receives_new_entry(self):
        seq = self.current_revocation_sequence()
        stream = self.open_stream(f"/v1/revocations/stream?after={seq}")
        time.sleep(0.2)
        a = self.create_agent(self.admin, "acme-corp/ops/streamed", ttl="30m")
        t0 = time.monotonic()
        out = self.revoke(instance=a.instance_id, reason="stream")
        ev = stream.next_event(timeout=2.0)
        self.assertIsNotNone(ev, "the stream ended")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(ev.get("event"), "revocation", ev)
        self.assertEqual(ev.get("id"), str(out["sequence"]), ev)
        data = json.loads(ev["data"])
        self.assertEqual(data["sequence"], out["sequence"])
        self.assertIn(a.instance_id, data["instances"])

    def test_stream_heartbeat(self):
        seq = self.current_revocation_sequence()
        stream = self.open_stream(f"/v1/revocations/stream?after={seq}")
        try:
            _, line = stream.comments.get(timeout=3.0)
        except queue.Empty:
            self.fail(f"no heartbeat comment within 3s (reader error {stream.error!r})")
        self.assertTrue(line.startswith(":"))

    def test_stream_resumes_with_last_event_id(self):
        agents = [self.create_agent(self.admin, "acme-corp/ops/resumed", ttl="30m")
                  for _ in range(3)]
        seqs = [self.revoke(instance=a.instance_id)["sequence"] for a in agents]
        resume_after = seqs[0]
        current = self.current_revocation_sequence()
        stream = self.open_stream("/v1/revocations/stream",
                                  headers={"Last-Event-ID": str(resume_after)})
        ids = []
        while not ids or ids[-1] < current:
            ev = stream.next_event(timeout=3.0)
            self.assertIsNotNone(ev, f"stream ended after ids {ids}")
            ids.append(int(ev["id"]))
        self.assertEqual(ids, list(range(resume_after + 1, current + 1)))
        # after=N in the query replays too
        stream2 = self.open_stream(f"/v1/revocations/stream?after={seqs[1]}")
        first = stream2.next_event(timeout=3.0)
        self.assertEqual(int(first["id"]), seqs[1] + 1, first)

    def test_stream_subscribers_metric(self):
        stream = self.open_stream(f"/v1/revocations/stream?after="
                                  f"{self.current_revocation_sequence()}")
        time.sleep(0.3)
        m = self.anon.get("/metrics")
        self.assertEqual(m.status, 200, m)
        subs = metric_sum(m.text, "trustwarden_stream_subscribers")
        self.assertIsNotNone(subs, "no trustwarden_stream_subscribers sample")
        self.assertGreaterEqual(subs, 1)
        stream.close()

    def test_revocation_metrics(self):
        a = self.create_agent(self.admin, "acme-corp/ops/metered", ttl="30m")
        self.revoke(instance=a.instance_id)
        m = self.anon.get("/metrics")
        total = metric_sum(m.text, "trustwarden_revocations_total")
        self.assertIsNotNone(total, "no trustwarden_revocations_total sample")
        self.assertGreaterEqual(total, 1)


# =============================================================================================
# 10. Configuration file and rate limits
# =============================================================================================
class ConfigFileTest(ServerTestCase):
    """The config names a trust domain and limits; flags (--data-dir, --listen) override it."""
    TRUST_DOMAIN = None
    CONFIG = """
trust_domain = "config.example"
listen = "127.0.0.1:1"
data_dir = "/nonexistent/trustwarden-e2e-config-data"
threads = 2
log_level = "info"

[limits]
max_body_bytes = 8192
"""

    def test_trust_domain_from_config(self):
        r, _ = self.request_identity(self.admin, "acme-corp/ops/configured")
        self.assertEqual(r.status, 201, r)
        self.assert_spiffe_id(r.json["spiffe_id"], "acme-corp/ops/configured",
                              td="config.example")

    def test_flags_override_config(self):
        self.assertFalse(os.path.exists("/nonexistent/trustwarden-e2e-config-data"))
        self.assertTrue(os.path.exists(os.path.join(self.server.data_dir, "admin.token")))

    def test_max_body_bytes_from_config(self):
        body = json.dumps(identity_body("acme-corp/ops/big", scope=["read:" + "x" * 16384]))
        self.assert_error(self.admin.send_large("POST", "/v1/identities", body.encode()), 413)
        r, _ = self.request_identity(self.admin, "acme-corp/ops/small")
        self.assertEqual(r.status, 201, r)


class AuthFailureLimitFromConfigTest(ServerTestCase):
    """limits.auth_failures_per_address from the config file: one wrong token is all an address
    gets before 429."""
    CONFIG = "[limits]\nauth_failures_per_address = 1\n"

    def test_auth_failures_rate_limited(self):
        statuses = []
        wrong = "tw_wrong_" + "y" * 32
        for _ in range(10):
            r = self.anon.get("/v1/identities", token=wrong)
            statuses.append(r.status)
            if r.status == 429:
                self.assert_error(r, 429, wrong)
        self.assertIn(429, statuses, f"no 429 after 10 failed logins: {statuses}")
        self.assertLessEqual(set(statuses), {401, 429}, statuses)


class AddressRateLimitTest(ServerTestCase):
    CONFIG = "[limits]\nrate_per_address = 5\n"

    def test_requests_over_address_rate_get_429(self):
        time.sleep(1.2)  # the start-up polling may have used the budget
        responses = [self.anon.get("/v1/bundle") for _ in range(40)]
        statuses = [r.status for r in responses]
        self.assertEqual(statuses[0], 200, statuses)
        self.assertIn(429, statuses, statuses)
        self.assertLessEqual(set(statuses), {200, 429}, statuses)
        self.assert_error(next(r for r in responses if r.status == 429), 429)
        time.sleep(1.5)
        self.assertEqual(self.anon.get("/v1/bundle").status, 200, "the limit did not recover")


class PrincipalRateLimitTest(ServerTestCase):
    CONFIG = "[limits]\nrate_per_principal = 5\nrate_per_address = 100000\n"
    POLICY = ADMIN_ENTRY + """
[principals.busy]
names = ["acme-corp/busy/*"]
scopes = []
max_ttl = "1h"
max_trust_level = "low"
may_delegate = false
max_depth = 0
"""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.apply_policy(cls.POLICY)
        cls.busy = cls.server.client(token=cls.new_principal_token("busy"))

    def test_requests_over_principal_rate_get_429(self):
        bodies = [identity_body("acme-corp/busy/bot", ttl="10m") for _ in range(30)]
        responses = [self.busy.post("/v1/identities", b) for b in bodies]
        statuses = [r.status for r in responses]
        self.assertIn(429, statuses, statuses)
        self.assertLessEqual(set(statuses), {201, 429}, statuses)
        self.assert_error(next(r for r in responses if r.status == 429), 429, self.busy.token)
        # another principal (admin) has its own budget
        self.assertEqual(self.admin.get("/v1/identities").status, 200)


# =============================================================================================
# 11. CLI end to end
# =============================================================================================
class CLITest(ServerTestCase):
    NAME = "acme-corp/finance-team/payment-processor"

    def env(self, token=DEFAULT, bundle=None):
        return cli_env(self.server, token=self.admin_token if token is DEFAULT else token,
                       bundle=bundle)

    def agent_create(self, *args, env=None, name=None):
        out = os.path.join(self.tmp, "cli-agents", f"a{time.monotonic_ns()}")
        r = tw("agent", "create", "--name", name or self.NAME, *args, "--out", out,
               env=env or self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        spiffe_id = r.stdout.splitlines()[0].strip()
        return spiffe_id, out, r

    def test_agent_create_writes_files(self):
        spiffe_id, out, _ = self.agent_create("--scope", "read:transactions", "--scope",
                                              "write:ledger", "--ttl", "20m",
                                              "--trust-level", "medium")
        self.assert_spiffe_id(spiffe_id, self.NAME)
        self.assertEqual(file_mode(os.path.join(out, "key.pem")), 0o600)
        for f in ("svid.pem", "bundle.json", "bundle.pem"):
            self.assertTrue(os.path.isfile(os.path.join(out, f)), f"{f} missing")
        self.assertEqual(json.loads(read_bytes(os.path.join(out, "bundle.json")))["keys"],
                         json.loads(read_bytes(self.server.bundle_json))["keys"])
        self.verify_svid(os.path.join(out, "svid.pem"), spiffe_id)
        info = svid_inspect(os.path.join(out, "svid.pem"))
        self.assertEqual(sorted(info["scopes"]), ["read:transactions", "write:ledger"])
        self.assertEqual(info["trust_level"], "medium")
        r = run([OPENSSL, "x509", "-noout", "-pubkey", "-in", os.path.join(out, "svid.pem")])
        k = run([OPENSSL, "pkey", "-pubout", "-in", os.path.join(out, "key.pem")])
        self.assertEqual(r.stdout.strip(), k.stdout.strip(), "key.pem does not match svid.pem")

    def test_agent_create_with_pem_bundle(self):
        spiffe_id, _, _ = self.agent_create(env=self.env(bundle=self.server.bundle_pem))
        self.assert_spiffe_id(spiffe_id, self.NAME)

    def test_agent_create_with_flags_instead_of_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTWARDEN_")}
        out = os.path.join(self.tmp, "cli-flags")
        r = tw("agent", "create", "--name", self.NAME, "--out", out,
               "--server", self.server.url, "--token", self.admin_token,
               "--bundle", self.server.bundle_json, env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assert_spiffe_id(r.stdout.splitlines()[0].strip(), self.NAME)

    def test_agent_create_with_parent_dir(self):
        parent_id, parent_dir, _ = self.agent_create("--scope", "read:transactions",
                                                     "--ttl", "1h", "--trust-level", "medium")
        child_id, child_dir, _ = self.agent_create(
            "--scope", "read:transactions", "--ttl", "10m", "--parent-dir", parent_dir,
            name="acme-corp/finance-team/helper", env=self.env(token=None))
        info = svid_inspect(os.path.join(child_dir, "svid.pem"))
        self.assertEqual(info["parent"], parent_id)
        self.assertEqual(info["spiffe_id"], child_id)

    def test_agent_create_bare_names(self):
        """A bare name goes under --org/--team, else TRUSTWARDEN_ORG/_TEAM, else default;
        a child's under its parent's org and team."""
        td = self.server.trust_domain or "trustwarden"
        env = self.env()
        for var in ("TRUSTWARDEN_ORG", "TRUSTWARDEN_TEAM"):
            env.pop(var, None)
        plain, _, _ = self.agent_create(env=env, name="bare-agent")
        self.assertTrue(plain.startswith(f"spiffe://{td}/default/default/bare-agent/inst-"), plain)
        env.update(TRUSTWARDEN_ORG="acme-corp", TRUSTWARDEN_TEAM="finance-team")
        from_env, parent_dir, _ = self.agent_create("--scope", "read:transactions", env=env,
                                                    name="bare-agent")
        self.assertTrue(from_env.startswith(f"spiffe://{td}/acme-corp/finance-team/bare-agent/"),
                        from_env)
        flags, _, _ = self.agent_create("--org", "ops-corp", "--team", "night", env=env,
                                        name="bare-agent")
        self.assertTrue(flags.startswith(f"spiffe://{td}/ops-corp/night/bare-agent/"), flags)
        child_env = dict(self.env(token=None), TRUSTWARDEN_ORG="elsewhere")
        child, _, _ = self.agent_create("--scope", "read:transactions", "--parent-dir",
                                        parent_dir, env=child_env, name="helper")
        self.assertTrue(child.startswith(f"spiffe://{td}/acme-corp/finance-team/helper/"), child)

    def test_agent_list_and_show(self):
        spiffe_id, _, _ = self.agent_create()
        instance = spiffe_id.rsplit("/", 1)[1]
        r = tw("agent", "list", "--json", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        ids = {i["instance_id"] for i in json.loads(r.stdout)["identities"]}
        self.assertIn(instance, ids)
        r = tw("agent", "list", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertIn(instance, r.stdout)
        r = tw("agent", "show", instance, "--json", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        rec = json.loads(r.stdout)
        self.assertEqual(rec["instance_id"], instance)
        self.assertEqual(rec["spiffe_id"], spiffe_id)

    def test_revoke_kinds(self):
        spiffe_id, _, _ = self.agent_create(name="acme-corp/ops/cli-revoked")
        instance = spiffe_id.rsplit("/", 1)[1]
        r = tw("revoke", "--instance", instance, env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        numbers = re.findall(r"(?<![\w-])\d+(?![\w-])", r.stdout)
        self.assertTrue(numbers, "revoke printed no sequence" + describe(r))
        self.assertEqual(int(numbers[-1]), self.record(instance)["revoked_sequence"],
                         describe(r))
        self.assertIs(self.record(instance)["revoked"], True)
        self.agent_create(name="acme-corp/ops/cli-other")
        before = self.current_revocation_sequence()
        r = tw("revoke", "--agent", "acme-corp/ops/cli-other", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(self.current_revocation_sequence(), before + 1)
        p_id, p_dir, _ = self.agent_create("--scope", "read:x", "--ttl", "1h",
                                           "--trust-level", "medium", name="acme-corp/ops/tree")
        c_id, _, _ = self.agent_create("--scope", "read:x", "--ttl", "5m", "--parent-dir",
                                       p_dir, name="acme-corp/ops/leaf", env=self.env(token=None))
        r = tw("revoke", "--subtree", p_id.rsplit("/", 1)[1], env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertIs(self.record(c_id.rsplit("/", 1)[1])["revoked"], True)

    def test_token_create(self):
        r = tw("token", "create", "--principal", "cli-bot", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        token = r.stdout.strip()
        self.assertRegex(token, r"^\S+$", "token create should print only the token")
        # The token is recognised (403: no policy entry), unlike a made-up one (401).
        req, _ = self.request_identity(self.anon.with_token(token), self.NAME)
        self.assert_error(req, 403, token)
        req, _ = self.request_identity(self.anon.with_token(token + "x"), self.NAME)
        self.assert_error(req, 401, token)

    def test_policy_apply_show_history(self):
        source = ADMIN_ENTRY + '\n[principals.cli-bot]\nnames = ["acme-corp/cli/*"]\n' \
                               'scopes = ["read:*"]\nmax_ttl = "1h"\nmax_trust_level = "low"\n' \
                               'may_delegate = false\nmax_depth = 0\n'
        path = self.write_tmp("policy.toml", source)
        r = tw("policy", "apply", path, env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        r = tw("policy", "show", "--json", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        doc = json.loads(r.stdout)
        self.assertGreaterEqual(doc["version"], 2)
        self.assertEqual(doc["source"], source)
        latest = doc["version"]
        r = tw("policy", "show", "--version", "1", "--json", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(json.loads(r.stdout)["version"], 1)
        r = tw("policy", "history", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        lines = [line for line in r.stdout.splitlines() if line.strip()][1:]  # under the header
        self.assertEqual(len(lines), latest, describe(r))
        for i, line in enumerate(lines):
            self.assertRegex(line, r"^\s*\d+\b", describe(r))
        self.assertEqual(sorted(int(re.match(r"\s*(\d+)", line).group(1)) for line in lines),
                         list(range(1, latest + 1)))

    def test_bundle_show(self):
        r = tw("bundle", "show", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(json.loads(r.stdout)["keys"],
                         json.loads(read_bytes(self.server.bundle_json))["keys"])
        r = tw("bundle", "show", "--pem", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual({pem_to_der(b) for b in pem_blocks(r.stdout)},
                         {pem_to_der(b) for b in pem_blocks(read_bytes(self.server.bundle_pem))})

    def test_failures(self):
        r = tw("agent", "show", "inst-aaaaaaaaaaaaaaaa", env=self.env())
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertTrue(r.stderr.startswith("error:") or "\nerror:" in r.stderr, describe(r))
        r = tw("agent", "list", env=self.env(token="tw_wrong_" + "z" * 30))
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("error:", r.stderr)
        r = tw("agent", "create", "--out", os.path.join(self.tmp, "x"), env=self.env())
        self.assertEqual(r.returncode, 2, "missing --name is a usage error" + describe(r))
        r = tw("revoke", env=self.env())
        self.assertEqual(r.returncode, 2, "revoke without a target is a usage error"
                         + describe(r))


# =============================================================================================
# 12. Durability under kill -9
# =============================================================================================
class DurabilityTest(ServerTestCase):
    CONFIG = ("[limits]\nrate_per_principal = 1000000\nrate_per_address = 1000000\n"
              "auth_failures_per_address = 1000\n")
    THREADS = 4
    RUN_SECONDS = 3.0

    def test_acknowledged_writes_survive_kill9(self):
        lock = threading.Lock()
        acked_instances = []          # instance ids acknowledged with 201
        unrevoked = []                # acknowledged, not yet handed to a revoker
        acked_revocations = {}        # sequence -> instance id
        stop = threading.Event()
        errors = []

        def worker(n):
            client = self.server.client(token=self.admin_token, keep_alive=True, timeout=5)
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    target = None
                    if i % 2 == 0:
                        with lock:
                            if unrevoked:
                                target = unrevoked.pop(0)
                    if target is None:
                        r = client.post("/v1/identities", identity_body(
                            f"acme-corp/durable/worker-{n}", ttl="30m"))
                        if r.status == 201:
                            iid = r.json["instance_id"]
                            with lock:
                                acked_instances.append(iid)
                                unrevoked.append(iid)
                        elif r.status >= 500 or r.status in (400, 403):
                            errors.append(repr(r))
                    else:
                        r = client.post("/v1/revocations", {"instance": target,
                                                            "reason": "durability"})
                        if r.status == 200:
                            with lock:
                                acked_revocations[r.json["sequence"]] = target
                        elif r.status in (400, 403, 404):
                            errors.append(repr(r))
                except (OSError, ssl.SSLError, http.client.HTTPException, AssertionError):
                    client.close()
                    if stop.is_set():
                        break
                    time.sleep(0.01)

        threads = [threading.Thread(target=worker, args=(n,), daemon=True)
                   for n in range(self.THREADS)]
        for t in threads:
            t.start()
        time.sleep(self.RUN_SECONDS)
        self.server.kill9()            # mid-stream: the workers are still sending
        stop.set()
        for t in threads:
            t.join(15)
        self.assertFalse(errors, f"unexpected refusals while running: {errors[:5]}")
        self.assertTrue(acked_instances, "no identity was acknowledged before the kill")
        self.assertTrue(acked_revocations, "no revocation was acknowledged before the kill")

        self.server.start()
        admin = self.server.client(token=self.admin_token)

        # every acknowledged revocation, and a gap-free sequence
        entries, after = [], 0
        while True:
            r = admin.get(f"/v1/revocations?after={after}")
            self.assertEqual(r.status, 200, r)
            entries += r.json["entries"]
            if not r.json["entries"] or entries[-1]["sequence"] >= r.json["sequence"]:
                current = r.json["sequence"]
                break
            after = entries[-1]["sequence"]
        seqs = [e["sequence"] for e in entries]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)),
                         "revocation sequence has gaps or duplicates")
        self.assertEqual(current, len(seqs))
        by_seq = {e["sequence"]: e for e in entries}
        lost = sorted(s for s in acked_revocations if s not in by_seq)
        self.assertFalse(lost, f"acknowledged revocations lost: {lost}")
        for s, iid in acked_revocations.items():
            self.assertIn(iid, by_seq[s]["instances"], by_seq[s])

        # every acknowledged instance, with its revocation state
        missing, not_revoked = [], []
        revoked_ids = {iid: s for s, iid in acked_revocations.items()}
        results = queue.Queue()

        def check(ids):
            c = self.server.client(token=self.admin_token, keep_alive=True)
            for iid in ids:
                try:
                    results.put((iid, c.get(f"/v1/identities/{iid}")))
                except Exception as e:  # noqa: BLE001
                    results.put((iid, e))
            c.close()

        chunks = [acked_instances[k::4] for k in range(4)]
        checkers = [threading.Thread(target=check, args=(ch,), daemon=True) for ch in chunks]
        for t in checkers:
            t.start()
        for t in checkers:
            t.join(60)
        stuck = sum(t.is_alive() for t in checkers)
        checked = []
        while not results.empty():
            checked.append(results.get())
        unchecked = set(acked_instances) - {iid for iid, _ in checked}
        self.assertFalse(unchecked, f"{len(unchecked)} of {len(acked_instances)} acknowledged "
                                    f"instances were never checked ({stuck} checker threads "
                                    f"still running after 60 s), e.g. {sorted(unchecked)[:3]}")
        for iid, r in checked:
            if not isinstance(r, Response) or r.status != 200:
                missing.append((iid, r))
            elif iid in revoked_ids and (r.json.get("revoked") is not True or
                                         r.json.get("revoked_sequence") != revoked_ids[iid]):
                not_revoked.append(r.json)
        self.assertFalse(missing, f"{len(missing)} of {len(acked_instances)} acknowledged "
                                  f"instances lost, e.g. {missing[:3]}")
        self.assertFalse(not_revoked, f"acknowledged revocations not applied: {not_revoked[:3]}")


if __name__ == "__main__":
    unittest.main()
