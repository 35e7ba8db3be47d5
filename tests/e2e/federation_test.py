"""Federation (SPIFFE Federation). The bundle endpoint of a real `trustwarden server
--bundle-endpoint`, fetched by clients nobody here wrote: Python's ssl, curl and OpenSSL's
s_client, in profile https_spiffe (served with the server's X.509-SVID) and https_web
(served with a certificate from files, checked by host name). Then two servers, one
trusting the other's bundle through `trustwarden federation add`."""

import http.server
import json
import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import trustwarden_harness as harness  # noqa: E402
from trustwarden_harness import (OPENSSL, Server, cli_env, describe, read_text,  # noqa: E402
                                 run, tw)

BUNDLE_ENDPOINT_RE = re.compile(r"bundle endpoint on https://\S+:(\d+)/ \(profile (\w+)")
SERVER_ID = "spiffe://trustwarden/trustwarden/server"


def setUpModule():
    harness.require("curl")


def endpoint_of(server):
    """The bundle endpoint's port and profile, from the server's output."""
    m = BUNDLE_ENDPOINT_RE.search(read_text(server.stdout_path(server.runs)))
    if m is None:
        raise AssertionError("no 'bundle endpoint on' line in the server's output")
    return int(m.group(1)), m.group(2)


def exchange(port, request, context):
    """The raw HTTP/1.1 reply to `request` (bytes) over TLS with `context`, and the peer's
    certificate (decoded by Python's ssl)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            cert = tls.getpeercert()
            tls.sendall(request)
            reply = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply, cert


def parse_reply(reply):
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip()
               for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return status, headers, body


def request(method, target, body=b""):
    return (f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Redirector:
    """An HTTPS server on 127.0.0.1 presenting cert/key that answers every GET with a 307 to
    `location` (None: to itself, by a relative reference); `hits` counts the requests."""

    def __init__(self, cert, key, location):
        outer = self
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.hits += 1
                self.send_response(307)
                self.send_header("Location", location or "again")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/start"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class HttpsSpiffeTest(unittest.TestCase):
    """Profile https_spiffe: the endpoint authenticates as the server's SPIFFE ID."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tw-federation-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.server = Server(os.path.join(cls.tmp, "server"),
                            extra_args=["--bundle-endpoint", "127.0.0.1:0"])
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.port, cls.profile = endpoint_of(cls.server)

    def context(self):
        """Trusts the server's bundle, checks no host name: https_spiffe authenticates the
        SPIFFE ID, which the tests compare."""
        ctx = ssl.create_default_context(cafile=self.server.bundle_pem)
        ctx.check_hostname = False
        return ctx

    def test_get_slash_answers_the_published_bundle_as_json(self):
        self.assertEqual(self.profile, "https_spiffe")
        reply, cert = exchange(self.port, request("GET", "/"), self.context())
        status, headers, body = parse_reply(reply)
        self.assertEqual(status, 200, reply[:300])
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(dict(cert["subjectAltName"]).get("URI"), SERVER_ID)
        served = json.loads(body.decode("utf-8"))
        published = self.server.client().get("/v1/bundle").json
        self.assertEqual(served, published)
        self.assertGreater(served["spiffe_refresh_hint"], 0)
        self.assertGreaterEqual(served["spiffe_sequence"], 1)
        self.assertTrue(any(k["use"] == "x509-svid" for k in served["keys"]))

    def test_only_get_on_slash_is_served(self):
        for method, target, expected in [("POST", "/", 405), ("DELETE", "/", 405),
                                         ("PUT", "/", 405), ("GET", "/v1/bundle", 404),
                                         ("GET", "/healthz", 404), ("GET", "/x", 404),
                                         ("GET", "/v1/revocations/stream", 404)]:
            reply, _ = exchange(self.port, request(method, target), self.context())
            status, headers, body = parse_reply(reply)
            self.assertEqual(status, expected, f"{method} {target}: {reply[:300]!r}")
            self.assertIn("error", json.loads(body), f"{method} {target}")

    def test_no_client_certificate_is_asked_for(self):
        # SPIFFE Federation §5.2: the endpoint MUST NOT require client authentication; it does
        # not even ask. The API listener asks (optionally), which shows the check can fail.
        def handshake_messages(port):
            r = run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-msg",
                     "-CAfile", self.server.bundle_pem], stdin_text="")
            self.assertIn("Verify return code: 0 (ok)", r.stdout, describe(r))
            return r.stdout
        self.assertNotIn("CertificateRequest", handshake_messages(self.port))
        self.assertIn("CertificateRequest", handshake_messages(self.server.port))

    def test_curl_fetches_it_with_the_bundle_as_its_roots(self):
        r = run(["curl", "-sS", "--fail", "--cacert", self.server.bundle_pem,
                 f"https://127.0.0.1:{self.port}/"])
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(json.loads(r.stdout), self.server.client().get("/v1/bundle").json)

    def test_hostile_bytes_get_a_4xx_and_the_endpoint_keeps_serving(self):
        for raw, expected in [
                (b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
                (b"GET / HTTP/1.1\r\nHost: \x80\r\nConnection: close\r\n\r\n", 400),
                (b"\x00\x01\x02 garbage\r\n\r\n", 400),
                (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n" + b"a" * 5000,
                 413)]:
            reply, _ = exchange(self.port, raw, self.context())
            self.assertEqual(parse_reply(reply)[0], expected, reply[:300])
        reply, _ = exchange(self.port, request("GET", "/"), self.context())
        self.assertEqual(parse_reply(reply)[0], 200)


class HttpsWebTest(unittest.TestCase):
    """Profile https_web: the endpoint serves a certificate from files (here from a CA made
    with OpenSSL's CLI, standing for a public one), checked by host name."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tw-federation-web-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        d = cls.tmp
        cls.ca = os.path.join(d, "web-ca.pem")
        for argv in (
                ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", os.path.join(d, "web-ca.key"), "-out", cls.ca,
                 "-subj", "/CN=Test Web CA", "-days", "2"],
                ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", os.path.join(d, "web.key"), "-out", os.path.join(d, "web.csr"),
                 "-subj", "/CN=bundle.example"],
                ["x509", "-req", "-in", os.path.join(d, "web.csr"), "-CA", cls.ca,
                 "-CAkey", os.path.join(d, "web-ca.key"), "-CAcreateserial", "-days", "1",
                 "-extfile", harness.write_file(os.path.join(d, "san.cnf"),
                                                "subjectAltName=IP:127.0.0.1,DNS:bundle.example\n"),
                 "-out", os.path.join(d, "web.pem")]):
            r = run([OPENSSL, *argv])
            if r.returncode != 0:
                raise AssertionError(describe(r))
        cls.server = Server(os.path.join(d, "server"), extra_args=[
            "--bundle-endpoint", "127.0.0.1:0",
            "--bundle-endpoint-cert", os.path.join(d, "web.pem"),
            "--bundle-endpoint-key", os.path.join(d, "web.key")])
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.port, cls.profile = endpoint_of(cls.server)

    def test_curl_checks_the_host_name_against_the_web_ca(self):
        self.assertEqual(self.profile, "https_web")
        url = f"https://127.0.0.1:{self.port}/"
        r = run(["curl", "-sS", "--fail", "--cacert", self.ca, url])
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(json.loads(r.stdout), self.server.client().get("/v1/bundle").json)
        # The same endpoint under a name its certificate does not carry is refused, and the
        # server's own bundle does not vouch for a Web PKI certificate.
        r = run(["curl", "-sS", "--fail", "--cacert", self.ca, "--resolve",
                 f"other.example:{self.port}:127.0.0.1", f"https://other.example:{self.port}/"])
        self.assertNotEqual(r.returncode, 0, describe(r))
        r = run(["curl", "-sS", "--fail", "--cacert", self.server.bundle_pem, url])
        self.assertNotEqual(r.returncode, 0, describe(r))

    def test_pythons_ssl_verifies_it_by_host_name(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        reply, cert = exchange(self.port, request("GET", "/"), ctx)
        self.assertEqual(parse_reply(reply)[0], 200)
        self.assertIn(("DNS", "bundle.example"), cert["subjectAltName"])


class TwoDomainsTest(unittest.TestCase):
    """traffic.city trusts energy.city's bundle, fetched from energy.city's bundle endpoint
    (https_spiffe, self-serving: the first bundle is given by the operator)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tw-federation-two-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.traffic = Server(os.path.join(cls.tmp, "traffic"), trust_domain="traffic.city")
        cls.energy = Server(os.path.join(cls.tmp, "energy"), trust_domain="energy.city",
                            extra_args=["--bundle-endpoint", "127.0.0.1:0"])
        for s in (cls.traffic, cls.energy):
            cls.addClassCleanup(s.stop)
            s.start()
        cls.energy_endpoint = f"https://127.0.0.1:{endpoint_of(cls.energy)[0]}/"

    def cli(self, server, *argv, code=0):
        r = tw(*argv, env=cli_env(server, token=server.admin_token()))
        self.assertEqual(r.returncode, code, describe(r))
        return r

    def add_energy(self, *extra):
        return self.cli(self.traffic, "federation", "add", "--trust-domain", "energy.city",
                        "--endpoint", self.energy_endpoint, "--profile", "https_spiffe",
                        "--endpoint-spiffe-id", "spiffe://energy.city/trustwarden/server",
                        *extra)

    def bundle_map(self):
        r = self.cli(self.traffic, "bundle", "show", "--federated")
        return json.loads(r.stdout)["trust_domains"]

    def energy_sequence(self):
        return self.energy.client().get("/v1/bundle").json["spiffe_sequence"]

    def test_1_the_foreign_bundle_is_fetched_kept_and_refreshed(self):
        added = json.loads(self.add_energy("--bundle", self.energy.bundle_json, "--json").stdout)
        self.assertIsNone(added["last_error"])
        self.assertEqual(added["bundle_sequence"], self.energy_sequence())
        domains = self.bundle_map()
        self.assertEqual(sorted(domains), ["energy.city", "traffic.city"])
        served = self.energy.client().get("/v1/bundle").json
        self.assertEqual(domains["energy.city"]["keys"], served["keys"])
        # The map verifies the SVIDs of both trust domains, each by its own bundle.
        map_path = harness.write_file(os.path.join(self.tmp, "map.json"),
                                      json.dumps({"trust_domains": domains}))
        for server, name in ((self.energy, "energy"), (self.traffic, "traffic")):
            out = os.path.join(self.tmp, f"{name}-agent")
            self.cli(server, "agent", "create", "--name", "city/ops/agent", "--scope", "read:x",
                     "--out", out)
            r = tw("svid", "verify", "--bundle", map_path, os.path.join(out, "svid.pem"))
            self.assertEqual(r.returncode, 0, describe(r))
            self.assertTrue(r.stdout.startswith(f"spiffe://{name}.city/"), r.stdout)
        # energy.city rotates: a refresh brings the new bundle, and it survives a restart.
        before = self.energy_sequence()
        self.cli(self.energy, "ca", "prepare")
        self.assertEqual(self.energy_sequence(), before + 1)
        refreshed = json.loads(self.cli(self.traffic, "federation", "refresh", "energy.city",
                                        "--json").stdout)
        self.assertEqual(refreshed["bundle_sequence"], before + 1)
        self.assertEqual(len([k for k in self.bundle_map()["energy.city"]["keys"]
                              if k["use"] == "x509-svid"]), 2)
        self.traffic.stop()
        self.traffic.start()
        listed = json.loads(self.cli(self.traffic, "federation", "list", "--json").stdout)
        self.assertEqual([(f["trust_domain"], f["profile"], f["bundle_sequence"])
                          for f in listed["federations"]],
                         [("energy.city", "https_spiffe", before + 1)])
        # Each change is in traffic.city's ledger.
        events = self.traffic.client(token=self.traffic.admin_token()).get(
            "/v1/audit/events?type=federation&limit=100").json["events"]
        reasons = [e["event"]["reason"] for e in events]
        self.assertTrue(any(r.startswith("added: https_spiffe") for r in reasons), reasons)
        self.assertIn(f"bundle sequence {before + 1}", reasons)

    def test_2_removal_stops_trusting_the_domain(self):
        self.add_energy("--bundle", self.energy.bundle_json)
        # Replaced without a bundle: the one held still authenticates the endpoint.
        again = json.loads(self.add_energy("--json").stdout)
        self.assertIsNone(again["last_error"])
        self.assertEqual(again["bundle_sequence"], self.energy_sequence())
        self.cli(self.traffic, "federation", "remove", "energy.city")
        self.assertEqual(sorted(self.bundle_map()), ["traffic.city"])
        listed = json.loads(self.cli(self.traffic, "federation", "list", "--json").stdout)
        self.assertEqual(listed["federations"], [])
        r = self.cli(self.traffic, "federation", "remove", "energy.city", code=1)
        self.assertIn("no federation relationship", r.stderr)

    def test_3_an_endpoint_with_another_spiffe_id_is_refused(self):
        r = self.cli(self.traffic, "federation", "add", "--trust-domain", "energy.city",
                     "--endpoint", self.energy_endpoint, "--profile", "https_spiffe",
                     "--endpoint-spiffe-id", "spiffe://energy.city/someone/else",
                     "--bundle", self.energy.bundle_json, "--json")
        added = json.loads(r.stdout)
        self.assertIn("not spiffe://energy.city/someone/else", added["last_error"])
        r = self.cli(self.traffic, "federation", "refresh", "energy.city", code=1)
        self.assertIn("refused", r.stderr)
        self.cli(self.traffic, "federation", "remove", "energy.city")

    def redirector(self, spiffe_id, location):
        """A Redirector presenting an X.509-SVID of `spiffe_id` from energy.city's CA."""
        n = len(getattr(self, "redirectors", ()))
        key = os.path.join(self.tmp, f"redirector-{n}.key")
        public, chain = key + ".pub", key + ".chain"
        for argv in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", key], ["pkey", "-in", key, "-pubout", "-out", public]):
            r = run([OPENSSL, *argv])
            self.assertEqual(r.returncode, 0, describe(r))
        r = tw("svid", "issue", "--ca", self.energy.data_dir, "--spiffe-id", spiffe_id,
               "--public-key", public, "--ttl", "10m", "--out", chain)
        self.assertEqual(r.returncode, 0, describe(r))
        redirector = Redirector(chain, key, location)
        self.redirectors = [*getattr(self, "redirectors", ()), redirector]
        self.addCleanup(redirector.close)
        return redirector

    def add_energy_at(self, url):
        r = self.cli(self.traffic, "federation", "add", "--trust-domain", "energy.city",
                     "--endpoint", url, "--profile", "https_spiffe",
                     "--endpoint-spiffe-id", "spiffe://energy.city/trustwarden/server",
                     "--bundle", self.energy.bundle_json, "--json")
        return json.loads(r.stdout)

    def test_5_redirects_are_followed_with_the_same_checks_and_not_kept(self):
        self.addCleanup(self.cli, self.traffic, "federation", "remove", "energy.city")
        server_id = "spiffe://energy.city/trustwarden/server"
        hop = self.redirector(server_id, self.energy_endpoint)
        added = self.add_energy_at(hop.url)
        self.assertIsNone(added["last_error"])
        self.assertEqual(added["bundle_sequence"], self.energy_sequence())
        self.assertEqual(added["endpoint_url"], hop.url)
        # Not remembered: each fetch starts at the configured endpoint.
        before = hop.hits
        self.cli(self.traffic, "federation", "refresh", "energy.city")
        self.assertEqual(hop.hits, before + 1)
        listed = json.loads(self.cli(self.traffic, "federation", "list", "--json").stdout)
        self.assertEqual([f["endpoint_url"] for f in listed["federations"]], [hop.url])
        # Each hop is authenticated as the endpoint's SPIFFE ID.
        impostor = self.redirector("spiffe://energy.city/someone/else", self.energy_endpoint)
        self.assertIn(f"not {server_id}",
                      self.add_energy_at(self.redirector(server_id, impostor.url).url)
                      ["last_error"])
        self.assertEqual(impostor.hits, 0)
        for location, why in (("http://127.0.0.1:1/", "not an https URL"),
                              ("https://user@127.0.0.1:1/", "not an https URL"),
                              ("https://[not-an-address]/", "not a URL"),
                              (None, "redirected more than 3 times")):
            self.assertIn(why, self.add_energy_at(self.redirector(server_id, location).url)
                          ["last_error"] or "", location)

    def test_4_every_parameter_is_explicit_and_checked(self):
        base = ["federation", "add", "--trust-domain", "energy.city", "--endpoint"]
        for argv, code, why in [
                (base + ["http://127.0.0.1:1/", "--profile", "https_web"], 1, "not an https URL"),
                (base + [self.energy_endpoint, "--profile", "https_spiffe"], 1,
                 "needs the SPIFFE ID"),
                (base + [self.energy_endpoint, "--profile", "spiffe"], 2, "profile"),
                (["federation", "add", "--trust-domain", "traffic.city", "--endpoint",
                  self.energy_endpoint, "--profile", "https_web"], 1, "own trust domain"),
                (base + [self.energy_endpoint, "--profile", "https_spiffe",
                         "--endpoint-spiffe-id", "spiffe://energy.city/trustwarden/server",
                         "--bundle", self.traffic.bundle_json], 1, "traffic.city")]:
            r = self.cli(self.traffic, *argv, code=code)
            self.assertIn(why, r.stderr, argv)
        # Without the admin token, and with a body the route does not know.
        r = self.traffic.client().get("/v1/federation")
        self.assertEqual(r.status, 401, r)
        r = self.traffic.client(token=self.traffic.admin_token()).post(
            "/v1/federation", {"trust_domain": "energy.city", "endpoint_url": "https://a/",
                               "profile": "https_web", "extra": 1})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.traffic.client().get("/v1/bundles").status, 200)


if __name__ == "__main__":
    unittest.main()
