"""The SPIFFE bundle endpoint (SPIFFE Federation §4-5) of a real `trustwarden server
--bundle-endpoint`, fetched by clients nobody here wrote: Python's ssl, curl and OpenSSL's
s_client. Profile https_spiffe (served with the server's X.509-SVID) and https_web
(served with a certificate from files, checked by host name)."""

import json
import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import trustwarden_harness as harness  # noqa: E402
from trustwarden_harness import OPENSSL, Server, describe, read_text, run  # noqa: E402

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


if __name__ == "__main__":
    unittest.main()
