#!/usr/bin/env python3
"""Black-box hardening tests for `trustwarden server`: hostile and fuzzed requests, the
auth-failure limiter, read-only auditor tokens, token expiry and revocation, renewal only by the
current certificate and under the current policy, delegated lifetimes, observation events, late
(spooled) ledger batches after a revocation, and one server per data directory.

    cd /work/main
    TW_BIN=/work/main/build/bin/trustwarden /usr/bin/python3 -m unittest -v tests/e2e/hardening_test.py

Each test class starts its own real server through tests/harness (loopback port 0, a temporary
data directory, stopped by PID), which also gives the ledger encodings (canonical events, batch
signatures). Only the standard library and python3-cryptography 38 are used. The fuzz test's seed
is printed on failure; set TW_FUZZ_SEED to replay it.
"""

import concurrent.futures
import datetime
import json
import os
import random
import resource
import re
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

from cryptography import x509

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import trustwarden_harness as th  # noqa: E402

RAW_TIMEOUT = 5.0          # every raw socket exchange
UTC = datetime.timezone.utc


def setUpModule():
    th.require()


# ---------------------------------------------------------------------------------------------
# Raw TLS exchanges
# ---------------------------------------------------------------------------------------------
class RawResponse:
    def __init__(self, status, headers, body, raw):
        self.status, self.headers, self.body, self.raw = status, headers, body, raw

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"<raw {self.status} {self.raw[:600]!r}>"


def _recv(sock, deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout("deadline")
    sock.settimeout(remaining)
    return sock.recv(65536)


def parse_response(buf):
    """The first HTTP response in buf (status, lower-case headers, body) or None."""
    if b"\r\n\r\n" not in buf:
        return None
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = re.match(rb"^HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        return None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    body = rest
    if "content-length" in headers:
        try:
            body = rest[:int(headers["content-length"])]
        except ValueError:
            pass
    return RawResponse(int(m.group(1)), headers, body, buf)


def raw_request(server, data, timeout=RAW_TIMEOUT):
    """Sends `data` over a fresh TLS connection and reads one response (Content-Length framed),
    or until the server closes. Returns a RawResponse or None (closed without an answer)."""
    s = server.tls_socket(timeout=timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        s.sendall(data)
        while True:
            r = parse_response(buf)
            if r is not None and "content-length" in r.headers:
                head_len = buf.index(b"\r\n\r\n") + 4
                try:
                    if len(buf) - head_len >= int(r.headers["content-length"]):
                        return r
                except ValueError:
                    pass
            try:
                chunk = _recv(s, deadline)
            except socket.timeout:
                raise AssertionError(f"no complete response within {timeout}s to {data[:200]!r};"
                                     f" got {buf[:300]!r}") from None
            except (ssl.SSLError, OSError):
                break
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    return parse_response(buf)


def raw_exchange_half_close(server, data, timeout=RAW_TIMEOUT):
    """Sends `data` over TLS, then half-closes TCP (the server reads EOF after it), and reads
    everything until the server closes. Returns (bytes received, timed_out)."""
    s = server.tls_socket(timeout=timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        try:
            s.sendall(data)
            # The TCP half-close, below the TLS layer (SSLSocket.shutdown would drop the
            # TLS session and with it the reply).
            socket.socket.shutdown(s, socket.SHUT_WR)
        except (ssl.SSLError, OSError):
            pass  # the server may close early on garbage; still read what it sent
        while True:
            try:
                chunk = _recv(s, deadline)
            except socket.timeout:
                return buf, True
            except (ssl.SSLError, OSError):
                return buf, False
            if not chunk:
                return buf, False
            buf += chunk
    finally:
        s.close()


def forbidden_fragments(data):
    """The hostile raw bytes of a request: every maximal run of bytes outside printable ASCII."""
    return set(re.findall(rb"[^\x20-\x7e\r\n]+", data))


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
def now_ms():
    return int(time.time() * 1000)


def leaf_cert(svid_pem):
    return x509.load_pem_x509_certificate(th.pem_blocks(svid_pem)[0].encode())


def q(value):
    return urllib.parse.quote(value, safe="")


# ---------------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------------
class HardeningCase(th.ServerTestCase):
    TRUST_DOMAIN = "e2e.example"

    def assert_clean_error(self, status, body, expect_status=400, code=None, forbidden=(),
                           what=""):
        """A JSON error {"error":{"code","message"}} with the expected status, whose body is
        valid UTF-8 without control characters, holds no lone surrogate, and quotes none of
        the request's raw hostile bytes."""
        self.assertEqual(status, expect_status, f"{what}: expected {expect_status}, got "
                                                f"{status} {body[:600]!r}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail(f"{what}: error body is not valid UTF-8 ({e}): {body[:600]!r}")
        bad = [c for c in text if (ord(c) < 0x20 and c not in "\t\r\n") or ord(c) == 0x7f]
        self.assertFalse(bad, f"{what}: control characters in the error body: {body[:600]!r}")
        for frag in forbidden:
            self.assertNotIn(frag, body, f"{what}: the error body quotes raw input {frag!r}")
        try:
            doc = json.loads(text)
        except ValueError as e:
            self.fail(f"{what}: error body is not JSON ({e}): {body[:600]!r}")
        self.assertIsInstance(doc, dict, f"{what}: {body[:600]!r}")
        err = doc.get("error")
        self.assertIsInstance(err, dict, f"{what}: no error object: {body[:600]!r}")
        self.assertIsInstance(err.get("code"), str, f"{what}: {body[:600]!r}")
        self.assertTrue(err["code"], f"{what}: empty code: {body[:600]!r}")
        self.assertIsInstance(err.get("message"), str, f"{what}: {body[:600]!r}")
        for s in (err["code"], err["message"]):
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                self.fail(f"{what}: the error holds a lone surrogate: {body[:600]!r}")
        if code is not None:
            self.assertEqual(err["code"], code, f"{what}: {body[:600]!r}")
        self.assertNotIn(self.admin_token.encode(), body, f"{what}: the admin token is echoed")
        return err

    def assert_code(self, resp, status, code=None, *secrets_):
        self.assert_error(resp, status, *secrets_)
        if code is not None:
            self.assertEqual(resp.json["error"]["code"], code, resp)

    def tokens(self):
        r = self.admin.get("/v1/tokens")
        self.assertEqual(r.status, 200, r)
        return r.json["tokens"]

    def policy_version(self):
        r = self.admin.get("/v1/policies/current")
        self.assertEqual(r.status, 200, r)
        return r.json["version"]


# =============================================================================================
# 1. Hostile requests: a clean 4xx JSON error each, nothing written, the server stays up
# =============================================================================================
class HostileRequestTest(HardeningCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.host = f"127.0.0.1:{cls.server.port}".encode()

    def setUp(self):
        self.before_identities = self.identity_count()
        self.before_tokens = len(self.tokens())
        self.before_policy = self.policy_version()
        self.before_revocations = self.current_revocation_sequence()

    def assert_nothing_written(self):
        self.assertEqual(self.identity_count(), 0, "a hostile request created an identity")
        self.assertEqual(self.identity_count(), self.before_identities)
        self.assertEqual(len(self.tokens()), self.before_tokens, "a hostile request made a token")
        self.assertEqual(self.policy_version(), self.before_policy,
                         "a hostile request applied a policy")
        self.assertEqual(self.current_revocation_sequence(), self.before_revocations,
                         "a hostile request revoked")

    def request_line(self, method, target, headers=(), auth=True, body=b""):
        lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + self.host]
        if auth:
            lines.append(b"Authorization: Bearer " + self.admin_token.encode())
        lines += list(headers)
        if body:
            lines += [b"Content-Type: application/json",
                      b"Content-Length: " + str(len(body)).encode()]
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def check_raw(self, label, data, code=None, status=400):
        with self.subTest(label):
            r = raw_request(self.server, data)
            self.assertIsNotNone(r, f"{label}: the server closed the connection without an "
                                    f"answer to {data[:200]!r}")
            self.assert_clean_error(r.status, r.body, status, code, forbidden_fragments(data),
                                    what=label)
            self.assert_alive(f"after {label}")

    def check_post(self, label, path, body, code="invalid_argument", status=400):
        with self.subTest(label):
            r = self.admin.post(path, body)
            self.assert_clean_error(r.status, r.body, status, code, forbidden_fragments(body),
                                    what=f"{label}: POST {path}")
            self.assert_alive(f"after {label}")

    # ------------------------------------------------------------------ request target
    def test_non_utf8_path(self):
        port = str(self.server.port).encode()
        self.check_raw("GET /\\xff", self.request_line(b"GET", b"/\xff", auth=False))
        self.check_raw("GET absolute-form /\\xff", self.request_line(
            b"GET", b"https://127.0.0.1:" + port + b"/\xff", auth=False))
        self.check_raw("GET absolute-form admin route \\xff", self.request_line(
            b"GET", b"https://127.0.0.1:" + port + b"/v1/identities/inst-\xff"))
        self.check_raw("GET /v1/identities/\\xc3\\x28", self.request_line(
            b"GET", b"/v1/identities/\xc3\x28"))
        self.assert_nothing_written()

    def test_non_utf8_query_is_invalid_argument(self):
        port = str(self.server.port).encode()
        for target in (b"/v1/audit/events?instance=%c3%28",
                       b"https://127.0.0.1:" + port + b"/v1/audit/events?instance=%c3%28",
                       b"/v1/audit/events?caller=%ff",
                       b"/v1/identities?agent=acme-corp/ops/%c3%28",
                       b"/v1/identities?principal=%ed%a0%80",   # an encoded surrogate
                       b"/v1/audit/events?%ff=1"):
            self.check_raw(f"GET {target.decode()}", self.request_line(b"GET", target),
                           code="invalid_argument")
        self.assert_nothing_written()

    def test_invalid_percent_escapes(self):
        for target in (b"/v1/audit/events?instance=%zz", b"/v1/audit/events?instance=%4",
                       b"/v1/identities?agent=%g0", b"/v1/identities/inst-%",
                       b"/v1/revocations?after=%", b"/v1/audit/events?type=renewal%2",
                       b"/v1/identities/%%41"):
            self.check_raw(f"GET {target.decode()}", self.request_line(b"GET", target),
                           code="invalid_argument")
        self.assert_nothing_written()

    def test_repeated_query_parameters(self):
        for target in (b"/v1/identities?agent=acme-corp/ops/a&agent=acme-corp/ops/b",
                       b"/v1/identities?live=true&live=false",
                       b"/v1/revocations?after=0&after=5",
                       b"/v1/audit/events?type=renewal&type=issuance",
                       b"/v1/audit/events?instance=inst-aaaaaaaaaaaaaaaa"
                       b"&instance=inst-bbbbbbbbbbbbbbbb"):
            self.check_raw(f"GET {target.decode()}", self.request_line(b"GET", target),
                           code="invalid_argument")
        self.assert_nothing_written()

    def test_nul_in_path(self):
        self.check_raw("raw NUL in /healthz", self.request_line(b"GET", b"/healthz\x00",
                                                                auth=False))
        self.check_raw("raw NUL in /v1/identities/", self.request_line(
            b"GET", b"/v1/identities/inst-\x00aaaaaaaaaaaaaaa"))
        self.check_raw("raw NUL in a POST target", self.request_line(
            b"POST", b"/v1/tokens\x00", body=b'{"principal":"nul"}'))
        self.check_raw("encoded NUL in /v1/identities/", self.request_line(
            b"GET", b"/v1/identities/inst-%00aaaaaaaaaaaaaaa"), code="invalid_argument")
        self.check_raw("encoded NUL in a query", self.request_line(
            b"GET", b"/v1/identities?agent=acme-corp/ops/a%00b"), code="invalid_argument")
        self.assert_nothing_written()

    def test_header_with_0xff(self):
        self.check_raw("header value with 0xff", self.request_line(
            b"GET", b"/v1/identities", headers=[b"X-Hostile: a\xffb"]))
        self.check_raw("header name with 0xff", self.request_line(
            b"GET", b"/v1/identities", headers=[b"X-\xff: 1"]))
        self.check_raw("header value with 0xff on a POST", self.request_line(
            b"POST", b"/v1/tokens", headers=[b"X-Hostile: \xff\xfe"],
            body=b'{"principal":"hdr"}'))
        self.assert_nothing_written()

    def test_credentials_are_decided_before_the_body_is_read(self):
        """Headers announcing a large body, and no body: a request without credentials (or
        with wrong ones) is answered at once, without waiting for bytes that never come."""
        for label, auth in (("no token", []), ("wrong token", [b"Authorization: Bearer tw_x"])):
            with self.subTest(label):
                head = b"\r\n".join([b"POST /v1/identities HTTP/1.1", b"Host: " + self.host,
                                      *auth, b"Content-Type: application/json",
                                      b"Content-Length: 60000"]) + b"\r\n\r\n"
                r = raw_request(self.server, head, timeout=3)
                self.assertIsNotNone(r, f"{label}: closed without an answer")
                self.assertEqual(r.status, 401, f"{label}: {r.status} {r.body[:200]!r}")
        self.assert_nothing_written()

    # ------------------------------------------------------------------ bodies
    def csr_json(self):
        return json.dumps(th.make_csr()).encode()

    def test_identities_body_invalid_utf8(self):
        csr = self.csr_json()
        for label, body in (
                ("name with 0xff", b'{"name":"acme-corp/ops/a\xffb","csr":' + csr + b"}"),
                ("name with C3 28", b'{"name":"acme-corp/ops/a\xc3\x28","csr":' + csr + b"}"),
                ("scope with 0xc0 0xaf (overlong)",
                 b'{"name":"acme-corp/ops/a","scope":["read:\xc0\xaf"],"csr":' + csr + b"}"),
                ("trust level with 0xff",
                 b'{"name":"acme-corp/ops/a","trust_level":"low\xff","csr":' + csr + b"}"),
                ("encoded surrogate bytes ED A0 80",
                 b'{"name":"acme-corp/ops/a\xed\xa0\x80","csr":' + csr + b"}"),
                ("key with 0xff", b'{"na\xffme":"acme-corp/ops/a","csr":' + csr + b"}"),
                ("lone high surrogate escape",
                 b'{"name":"acme-corp/ops/a\\ud800","csr":' + csr + b"}"),
                ("lone low surrogate escape in scope",
                 b'{"name":"acme-corp/ops/a","scope":["read:\\udc00"],"csr":' + csr + b"}"),
                ("high surrogate then non-surrogate",
                 b'{"name":"acme-corp/ops/a\\ud800\\u0041","csr":' + csr + b"}")):
            self.check_post(label, "/v1/identities", body)
        self.assert_nothing_written()

    def test_revocations_body_invalid_utf8(self):
        # an unknown but well-formed instance: a server that does not check UTF-8 says 404
        for label, body in (
                ("reason with 0xff",
                 b'{"instance":"inst-aaaaaaaaaaaaaaaa","reason":"x\xffy"}'),
                ("reason with C3 28",
                 b'{"instance":"inst-aaaaaaaaaaaaaaaa","reason":"\xc3\x28"}'),
                ("agent with 0xff", b'{"agent":"acme-corp/ops/\xff"}'),
                ("principal with 0xfe", b'{"principal":"p\xfe"}'),
                ("lone surrogate in reason",
                 b'{"instance":"inst-aaaaaaaaaaaaaaaa","reason":"\\ud800"}'),
                ("lone surrogate in principal", b'{"principal":"p\\udfff"}')):
            self.check_post(label, "/v1/revocations", body)
        self.assert_nothing_written()

    def test_policies_body_invalid_utf8(self):
        valid = json.dumps(th.ADMIN_ENTRY)[1:-1].encode()  # the JSON string's inside
        for label, body in (
                ("comment with 0xff", b'{"source":"# \xff\\n' + valid + b'"}'),
                ("principal name with C3 28",
                 b'{"source":"[principals.a\xc3\x28]\\nnames = [\\"*/*/*\\"]\\n"}'),
                ("name pattern with 0xff",
                 b'{"source":"' + valid + b'\\n[principals.x]\\nnames = [\\"a/b/\xff\\"]\\n"}'),
                ("lone surrogate in a comment", b'{"source":"# \\ud800\\n' + valid + b'"}')):
            self.check_post(label, "/v1/policies", body)
        self.assert_nothing_written()

    def test_tokens_body_invalid_utf8(self):
        for label, body in (
                ("principal with 0xff", b'{"principal":"ci\xff"}'),
                ("principal with C3 28", b'{"principal":"\xc3\x28"}'),
                ("ttl with 0xff", b'{"principal":"ci","ttl":"1h\xff"}'),
                ("lone surrogate principal", b'{"principal":"\\ud800"}'),
                ("lone surrogate, auditor", b'{"principal":"a\\udbff","auditor":true}')):
            self.check_post(label, "/v1/tokens", body)
        self.assert_nothing_written()


# =============================================================================================
# 1b. Random fuzz: 300 random byte strings and mutations of valid requests
# =============================================================================================
class FuzzTest(HardeningCase):
    CASES = 300
    WORKERS = 4
    INTERESTING = [b"\x00", b"\xff", b"\x80", b"\xc3\x28", b"\xed\xa0\x80", b"%", b"%zz",
                   b"%c3%28", b"%00", b"\\ud800", b"\\", b'"', b"\r", b"\n", b"\r\n", b" ",
                   b":", b"?", b"&", b"=", b"/..", b"{", b"}", b"[", b"]",
                   b"\r\nX-Hostile: \xff", b"\r\nContent-Length: 99999999",
                   b"\r\nTransfer-Encoding: chunked", b"&agent=acme-corp/ops/x",
                   b"\r\nAuthorization: Bearer tw_0000000000000000_x", b"\r\n\r\n"]

    def templates(self):
        host = f"Host: 127.0.0.1:{self.server.port}\r\n".encode()
        auth = f"Authorization: Bearer {self.admin_token}\r\n".encode()

        def req(method, target, body=None, with_auth=True):
            head = method + b" " + target + b" HTTP/1.1\r\n" + host + (auth if with_auth else b"")
            if body is not None:
                body = json.dumps(body).encode()
                head += (b"Content-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n")
            return head + b"\r\n" + (body or b"")

        return [
            req(b"GET", b"/v1/identities?agent=acme-corp/ops/x&live=true"),
            req(b"POST", b"/v1/identities", th.identity_body("acme-corp/fuzz/bot",
                                                             scope=["read:x"], ttl="5m")),
            req(b"POST", b"/v1/tokens", {"principal": "fuzz"}),
            req(b"GET", b"/v1/audit/events?instance=inst-aaaaaaaaaaaaaaaa&type=renewal"),
            req(b"POST", b"/v1/revocations", {"instance": "inst-aaaaaaaaaaaaaaaa",
                                              "reason": "fuzz"}),
            req(b"POST", b"/v1/policies", {"source": th.ADMIN_ENTRY}),
            req(b"GET", b"/v1/revocations?after=0", with_auth=False),
            req(b"DELETE", b"/v1/tokens/0000000000000000"),
            req(b"POST", b"/v1/ledger/events", {"events": ["e30"], "signature": "AA",
                                                "chain": "-----BEGIN CERTIFICATE-----\n"}),
        ]

    def mutate(self, rng, data):
        data = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(7)
            pos = rng.randrange(len(data) + 1) if data else 0
            if op == 0 and data:            # random byte
                data[min(pos, len(data) - 1)] = rng.randrange(256)
            elif op == 1:                   # an interesting fragment
                data[pos:pos] = rng.choice(self.INTERESTING)
            elif op == 2:                   # random bytes
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif op == 3 and data:          # delete a slice
                del data[pos:pos + rng.randint(1, 32)]
            elif op == 4 and data:          # duplicate a slice
                data[pos:pos] = data[pos:pos + rng.randint(1, 64)]
            elif op == 5:                   # truncate
                del data[pos:]
            else:                           # replace a byte with an interesting one
                if data:
                    i = min(pos, len(data) - 1)
                    data[i:i + 1] = rng.choice(self.INTERESTING)
        return bytes(data)

    def random_bytes(self, rng):
        kind = rng.randrange(3)
        n = rng.randint(0, 512)
        if kind == 0:
            return bytes(rng.randrange(256) for _ in range(n))
        if kind == 1:
            alphabet = b"GETPOST /v1?&=%:\r\n\x00\xff{}\"'abcdefxyz0123456789"
            return bytes(rng.choice(alphabet) for _ in range(n))
        method = rng.choice([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"\xff",
                             b"G\x00T", b"TRACE", b"CONNECT", b"PATCH"])
        target = rng.choice([b"/", b"/v1/identities", b"/v1/tokens", b"/v1/audit/events",
                             b"*", b"https://127.0.0.1/", b"//", b"/v1/identities/renew"])
        junk = bytes(rng.randrange(256) for _ in range(n))
        return method + b" " + target + junk + b" HTTP/1.1\r\nHost: x\r\n" + junk + b"\r\n\r\n"

    def test_fuzz_never_crashes_or_5xx(self):
        seed = int(os.environ.get("TW_FUZZ_SEED") or secrets.randbits(32))
        rng = random.Random(seed)
        templates = self.templates()
        cases = []
        for i in range(self.CASES):
            if i % 3 == 0:
                cases.append(("random", self.random_bytes(rng)))
            else:
                cases.append(("mutation", self.mutate(rng, rng.choice(templates))))
        lock = threading.Lock()
        bad, answered, timeouts = [], [0], [0]

        def one(case):
            kind, data = case
            try:
                buf, timed_out = raw_exchange_half_close(self.server, data)
            except (OSError, ssl.SSLError) as e:  # connect or handshake failure: server down?
                with lock:
                    bad.append(f"{kind} {data[:120]!r}: connection failed {e!r}")
                return
            with lock:
                timeouts[0] += timed_out
            if not buf:
                return
            m = re.match(rb"^HTTP/1\.[01] (\d{3})", buf)
            with lock:
                if not m:
                    bad.append(f"{kind} {data[:120]!r}: non-HTTP reply {buf[:120]!r}")
                    return
                answered[0] += 1
                statuses = [int(s) for s in re.findall(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ", buf)]
                if any(s >= 500 for s in statuses):
                    bad.append(f"{kind} {data[:200]!r} -> {buf[:300]!r}")

        with concurrent.futures.ThreadPoolExecutor(self.WORKERS) as pool:
            for k in range(0, len(cases), 50):
                list(pool.map(one, cases[k:k + 50]))
                self.assert_alive(f"after fuzz cases {k}..{k + 49} (seed {seed})")
        # a few non-TLS garbage connections too
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=2) as s:
                try:
                    s.sendall(bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))))
                    s.shutdown(socket.SHUT_WR)
                    s.recv(4096)
                except OSError:
                    pass
        self.assert_alive(f"after the fuzz (seed {seed})")
        if os.environ.get("TW_FUZZ_VERBOSE"):
            print(f"\nfuzz seed {seed}: {answered[0]} of {len(cases)} answered, "
                  f"{timeouts[0]} timed out", file=sys.stderr)
        self.assertFalse(bad, f"seed {seed}: {len(bad)} of {len(cases)} cases got a 5xx or "
                              f"broke the connection: " + "\n".join(bad[:10]))
        self.assertGreater(answered[0], 0, f"seed {seed}: no fuzz case got any HTTP answer")
        self.assertEqual(self.admin.get("/v1/identities").status, 200)


# =============================================================================================
# 2. The auth-failure limiter
# =============================================================================================
class AuthFailureLimiterTest(HardeningCase):
    """Default limits. Absent credentials never lock anyone out; wrong tokens from one address
    do (429), yet a valid token from that address is still served."""

    def test_1_absent_credentials_do_not_lock_out(self):
        statuses = []
        for _ in range(40):
            r = self.anon.get("/v1/identities", token=None)
            statuses.append(r.status)
            self.assert_code(r, (401, 429))
        self.assertEqual(statuses, [401] * 40, f"requests without a token: {statuses}")
        r = self.anon.get("/v1/identities", token=None)
        self.assert_code(r, 401, "unauthenticated")
        r = self.admin.get("/v1/identities")
        self.assertEqual(r.status, 200, f"the admin is locked out by absent credentials: {r}")

    def test_2_wrong_tokens_get_429_but_the_admin_does_not(self):
        statuses, first429 = [], None
        for i in range(40):
            wrong = f"tw_{secrets.token_hex(8)}_{secrets.token_urlsafe(24)}"
            r = self.anon.get("/v1/identities", token=wrong)
            statuses.append(r.status)
            self.assert_error(r, (401, 429), wrong)
            if r.status == 429 and first429 is None:
                first429 = r
        self.assertLessEqual(set(statuses), {401, 429}, statuses)
        self.assertIsNotNone(first429, f"40 wrong tokens from 127.0.0.1 never got 429: "
                                       f"{statuses}")
        self.assertEqual(first429.json["error"]["code"], "resource_exhausted", first429)
        for _ in range(3):
            r = self.admin.get("/v1/identities")
            self.assertEqual(r.status, 200, f"a valid admin token was refused while the address "
                                            f"is limited: {r}")
        r, _ = self.request_identity(self.admin, "acme-corp/ops/after-limit")
        self.assertEqual(r.status, 201, r)


# =============================================================================================
# 3. Auditor tokens are read-only
# =============================================================================================
class AuditorTokenTest(HardeningCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.created = cls.admin.post("/v1/tokens", {"principal": "aud", "auditor": True})
        cls.auditor = cls.server.client(token=cls.created.json.get("token")) \
            if cls.created.status == 201 else None

    def setUp(self):
        self.assertEqual(self.created.status, 201, self.created)

    def test_create_reply(self):
        doc = self.created.json
        self.assertIsInstance(doc.get("id"), str, doc)
        self.assertTrue(doc["id"], doc)
        self.assertIsInstance(doc.get("token"), str, doc)
        self.assertRegex(doc["token"], r"^\S{16,}$")

    def test_auditor_reads_ledger_and_audit(self):
        self.assertEqual(self.admin.post("/v1/ledger/sth").status, 201)
        r = self.auditor.get("/v1/audit/events")
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.json["events"], list)
        r = self.auditor.get("/v1/ledger/sth")
        self.assertEqual(r.status, 200, r)

    def test_auditor_cannot_create_identities(self):
        before = self.identity_count()
        r, _ = self.request_identity(self.auditor, "acme-corp/ops/by-auditor")
        self.assert_code(r, 403, "permission_denied", self.auditor.token)
        self.assertEqual(self.identity_count(), before)

    def test_auditor_cannot_create_even_when_named_in_policy(self):
        self.apply_policy(th.ADMIN_ENTRY + '\n[principals.aud]\nnames = ["*/*/*"]\n'
                          'scopes = ["read:*"]\nmax_ttl = "1h"\nmax_trust_level = "high"\n'
                          'may_delegate = true\nmax_depth = 2\n')
        before = self.identity_count()
        r, _ = self.request_identity(self.auditor, "acme-corp/ops/by-auditor", scope=["read:x"])
        self.assert_code(r, 403, "permission_denied", self.auditor.token)
        self.assertEqual(self.identity_count(), before, "the auditor token created an identity")

    def test_auditor_cannot_revoke(self):
        victim = self.create_agent(self.admin, "acme-corp/ops/victim")
        r = self.auditor.post("/v1/revocations", {"instance": victim.instance_id})
        self.assert_code(r, 403, "permission_denied", self.auditor.token)
        self.assertIs(self.record(victim.instance_id)["revoked"], False)

    def test_auditor_cannot_apply_policies(self):
        before = self.policy_version()
        r = self.auditor.post("/v1/policies", {"source": th.ADMIN_ENTRY})
        self.assert_code(r, 403, "permission_denied", self.auditor.token)
        self.assertEqual(self.policy_version(), before)

    def test_auditor_cannot_create_tokens(self):
        before = len(self.tokens())
        for body in ({"principal": "x"}, {"principal": "y", "auditor": True}):
            r = self.auditor.post("/v1/tokens", body)
            self.assert_code(r, 403, "permission_denied", self.auditor.token)
        self.assertEqual(len(self.tokens()), before)

    def test_no_token_for_principal_admin(self):
        before = len(self.tokens())
        for body in ({"principal": "admin"}, {"principal": "admin", "auditor": True}):
            with self.subTest(body=body):
                r = self.admin.post("/v1/tokens", body)
                self.assert_code(r, 400, None)
        self.assertEqual(len(self.tokens()), before)


# =============================================================================================
# 4. Token lifecycle: ttl, list without secrets, revoke; the CLI
# =============================================================================================
CI_ENTRY = """
[principals.ci]
names = ["acme-corp/ci/*"]
scopes = ["read:*"]
max_ttl = "1h"
max_trust_level = "low"
may_delegate = false
max_depth = 0
"""


def secret_parts(token, token_id=None):
    """What of a token must never be shown: the whole token, the token without its id, and its
    last 12 characters."""
    parts = {token, token[-12:]}
    if token_id and token_id in token:
        rest = max(token.split(token_id), key=len).strip("_")
        if len(rest) >= 8:
            parts.add(rest)
    return parts


class TokenLifecycleTest(HardeningCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.apply_policy(th.ADMIN_ENTRY + CI_ENTRY)

    def create_token(self, **body):
        body.setdefault("principal", "ci")
        r = self.admin.post("/v1/tokens", body)
        self.assertEqual(r.status, 201, r)
        self.assertIsInstance(r.json.get("id"), str, r)
        self.assertIsInstance(r.json.get("token"), str, r)
        return r.json

    def works(self, token):
        r, _ = self.request_identity(self.anon.with_token(token), "acme-corp/ci/job",
                                     scope=["read:x"], ttl="10m")
        return r

    def test_ttl_token_expires(self):
        t0 = th.utcnow()
        doc = self.create_token(ttl="2s")
        self.assertIn("expires_at", doc, doc)
        expires = th.parse_time(doc["expires_at"])
        self.assertGreater(expires, t0 - datetime.timedelta(seconds=1), doc)
        self.assertLess(abs((expires - (t0 + datetime.timedelta(seconds=2))).total_seconds()),
                        3, f"expires_at is not about 2s from now: {doc}")
        r = self.works(doc["token"])
        self.assertEqual(r.status, 201, f"a fresh 2s token does not work: {r}")
        wait = (expires - th.utcnow()).total_seconds() + 1.0
        time.sleep(min(max(wait, 0), 6))
        r = self.works(doc["token"])
        self.assert_code(r, 401, "unauthenticated", doc["token"])
        listed = {t["id"]: t for t in self.tokens()}
        self.assertIn(doc["id"], listed)
        self.assertEqual(th.parse_time(listed[doc["id"]]["expires_at"]), expires)

    def test_list_fields_and_no_secrets(self):
        made = [self.create_token(), self.create_token(ttl="30m"),
                self.create_token(principal="aud2", auditor=True)]
        r = self.admin.get("/v1/tokens")
        self.assertEqual(r.status, 200, r)
        records = r.json["tokens"]
        by_id = {t["id"]: t for t in records}
        for t in records:
            for key in ("id", "principal", "admin", "auditor", "created_at", "expires_at",
                        "revoked_at"):
                self.assertIn(key, t, t)
            self.assertIsInstance(t["admin"], bool, t)
            self.assertIsInstance(t["auditor"], bool, t)
            th.parse_time(t["created_at"])
            for key in ("expires_at", "revoked_at"):
                if t[key] is not None:
                    th.parse_time(t[key])
            self.assertNotIn("token", t, t)
            self.assertNotIn("secret", t, t)
        for doc in made:
            self.assertIn(doc["id"], by_id)
        self.assertIsNone(by_id[made[0]["id"]]["expires_at"])
        self.assertIsNotNone(by_id[made[1]["id"]]["expires_at"])
        self.assertIs(by_id[made[2]["id"]]["auditor"], True)
        self.assertIs(by_id[made[2]["id"]]["admin"], False)
        admins = [t for t in records if t["admin"]]
        self.assertEqual(len(admins), 1, f"expected exactly the admin token: {admins}")
        secrets_ = set()
        for doc in made:
            secrets_ |= secret_parts(doc["token"], doc["id"])
        secrets_ |= secret_parts(self.admin_token, admins[0]["id"])
        for s in secrets_:
            self.assertNotIn(s, r.text, "GET /v1/tokens shows (part of) a token's secret")
        # only the admin may list
        ci = self.anon.with_token(made[0]["token"])
        self.assert_code(ci.get("/v1/tokens"), 403, None, made[0]["token"])
        self.assert_code(self.anon.get("/v1/tokens", token=None), 401)

    def test_delete_token(self):
        doc = self.create_token()
        self.assertEqual(self.works(doc["token"]).status, 201)
        r = self.admin.request("DELETE", f"/v1/tokens/{doc['id']}")
        self.assertEqual(r.status, 200, r)
        self.assert_code(self.works(doc["token"]), 401, "unauthenticated", doc["token"])
        listed = {t["id"]: t for t in self.tokens()}
        self.assertIsNotNone(listed[doc["id"]]["revoked_at"], listed[doc["id"]])
        th.parse_time(listed[doc["id"]]["revoked_at"])
        r = self.admin.request("DELETE", f"/v1/tokens/{doc['id']}")
        self.assert_code(r, 409)
        unknown = doc["id"][:-1] + ("0" if doc["id"][-1] != "0" else "1")
        self.assertNotIn(unknown, listed)
        self.assert_code(self.admin.request("DELETE", f"/v1/tokens/{unknown}"), 404)

    def test_delete_needs_admin(self):
        doc, other = self.create_token(), self.create_token()
        r = self.anon.with_token(doc["token"]).request("DELETE", f"/v1/tokens/{other['id']}")
        self.assert_code(r, 403, None, doc["token"])
        self.assertEqual(self.works(other["token"]).status, 201)

    def test_last_admin_token_cannot_be_deleted(self):
        admins = [t for t in self.tokens() if t["admin"] and t["revoked_at"] is None]
        self.assertEqual(len(admins), 1, admins)
        r = self.admin.request("DELETE", f"/v1/tokens/{admins[0]['id']}")
        self.assert_code(r, 409)
        self.assertEqual(self.admin.get("/v1/identities").status, 200,
                         "the admin token stopped working")

    # ------------------------------------------------------------------ CLI
    def env(self):
        return th.cli_env(self.server, token=self.admin_token, bundle=self.server.bundle_pem)

    def test_cli_token_create_with_ttl(self):
        before = {t["id"] for t in self.tokens()}
        t0 = th.utcnow()
        r = th.tw("token", "create", "--principal", "ci", "--ttl", "1h", env=self.env())
        self.assertEqual(r.returncode, 0, th.describe(r))
        lines = [line.strip() for line in r.stdout.splitlines() if line.strip()]
        self.assertTrue(lines, th.describe(r))
        token = lines[-1]
        self.assertRegex(token, r"^\S{16,}$", th.describe(r))
        self.assertEqual(self.works(token).status, 201, "the CLI's token does not work")
        new = [t for t in self.tokens() if t["id"] not in before]
        self.assertEqual(len(new), 1, new)
        self.assertEqual(new[0]["principal"], "ci")
        self.assertIsNotNone(new[0]["expires_at"], new[0])
        expires = th.parse_time(new[0]["expires_at"])
        self.assertLess(abs((expires - (t0 + datetime.timedelta(hours=1))).total_seconds()), 120)

    def test_cli_token_list(self):
        doc = self.create_token()
        r = th.tw("token", "list", env=self.env())
        self.assertEqual(r.returncode, 0, th.describe(r))
        self.assertIn(doc["id"], r.stdout, th.describe(r))
        self.assertIn("ci", r.stdout)
        for s in secret_parts(doc["token"], doc["id"]) | {self.admin_token}:
            self.assertNotIn(s, r.stdout + r.stderr, "token list shows a secret")

    def test_cli_token_revoke(self):
        doc = self.create_token()
        self.assertEqual(self.works(doc["token"]).status, 201)
        r = th.tw("token", "revoke", doc["id"], env=self.env())
        self.assertEqual(r.returncode, 0, th.describe(r))
        self.assert_code(self.works(doc["token"]), 401, "unauthenticated", doc["token"])
        listed = {t["id"]: t for t in self.tokens()}
        self.assertIsNotNone(listed[doc["id"]]["revoked_at"])
        r = th.tw("token", "revoke", doc["id"], env=self.env())
        self.assertNotEqual(r.returncode, 0, "revoking twice should fail" + th.describe(r))


# =============================================================================================
# 5. Renewal: only by the current certificate, under the current policy
# =============================================================================================
def principal_entry(name, scopes, names=("acme-corp/*/*",)):
    return (f"\n[principals.{name}]\nnames = {json.dumps(list(names))}\n"
            f"scopes = {json.dumps(list(scopes))}\nmax_ttl = \"1h\"\n"
            f"max_trust_level = \"medium\"\nmay_delegate = false\nmax_depth = 0\n")


class RenewalHardeningTest(HardeningCase):

    def renew(self, agent, key=None):
        key = key or th.new_key()
        return agent.client().post("/v1/identities/renew",
                                              {"csr": th.make_csr(key)}), key

    def test_old_certificate_is_suspected_key_theft(self):
        agent = self.create_agent(self.admin, "acme-corp/renew/theft", scope=["read:a"],
                                  ttl="30m")
        r, key = self.renew(agent)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["spiffe_id"], agent.spiffe_id)
        current = th.Agent(self.server, r.json, key, self.agent_dir())
        r2, _ = self.renew(agent)   # the replaced certificate again
        self.assert_code(r2, 403, "permission_denied")
        self.assertNotEqual(th.norm_serial(self.record(agent.instance_id)["serial"]),
                            th.norm_serial(agent.doc["serial"]))
        self.assertEqual(th.norm_serial(self.record(agent.instance_id)["serial"]),
                         th.norm_serial(current.doc["serial"]),
                         "a refused renewal changed the instance's certificate")
        ev = self.admin.get("/v1/audit/events?type=renewal")
        self.assertEqual(ev.status, 200, ev)
        mine = [e["event"] for e in ev.json["events"]
                if e["event"].get("instance") == agent.spiffe_id]
        self.assertTrue(any(e.get("decision") == "allow" or e.get("decision") is None
                            for e in mine), f"no record of the good renewal: {mine}")
        theft = [e for e in mine if e.get("decision") == "deny"
                 and "suspected key theft" in (e.get("reason") or "")]
        self.assertTrue(theft, f"no deny renewal event mentioning 'suspected key theft' for "
                               f"{agent.spiffe_id}: {mine}")

    def test_current_certificate_renews_repeatedly(self):
        agent = self.create_agent(self.admin, "acme-corp/renew/chain", ttl="30m")
        for _ in range(3):
            r, key = self.renew(agent)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["spiffe_id"], agent.spiffe_id)
            agent = th.Agent(self.server, r.json, key, self.agent_dir())

    def test_renewal_under_narrowed_policy(self):
        self.apply_policy(th.ADMIN_ENTRY + principal_entry("narrow", ["read:*", "write:*"]))
        token = self.new_principal_token("narrow")
        agent = self.create_agent(self.anon.with_token(token), "acme-corp/renew/narrowed",
                                  scope=["read:a", "write:b"], ttl="30m")
        self.assertEqual(sorted(agent.doc["scope"]), ["read:a", "write:b"])
        narrowed = self.apply_policy(th.ADMIN_ENTRY + principal_entry("narrow", ["read:*"]))
        r, key = self.renew(agent)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["spiffe_id"], agent.spiffe_id)
        self.assertEqual(sorted(r.json["scope"]), ["read:a"],
                         "renewal kept a scope the current policy no longer grants")
        self.assertEqual(r.json["policy_version"], narrowed["version"])
        renewed = th.Agent(self.server, r.json, key, self.agent_dir())
        info = th.svid_inspect(renewed.svid_path)
        self.assertEqual(sorted(info["scopes"]), ["read:a"], info)
        self.assertEqual(info["policy_version"], narrowed["version"], info)

    def test_renewal_after_principal_dropped(self):
        self.apply_policy(th.ADMIN_ENTRY + principal_entry("dropme", ["read:*"]))
        token = self.new_principal_token("dropme")
        agent = self.create_agent(self.anon.with_token(token), "acme-corp/renew/dropped",
                                  scope=["read:a"], ttl="30m")
        self.apply_policy(th.ADMIN_ENTRY)
        r, _ = self.renew(agent)
        self.assert_code(r, 403)
        self.assertEqual(th.norm_serial(self.record(agent.instance_id)["serial"]),
                         th.norm_serial(agent.doc["serial"]))


# =============================================================================================
# 6. Delegation: no child outlives its parent
# =============================================================================================
class DelegatedLifetimeTest(HardeningCase):
    """Children ask for exactly what their parent has left, fired just after the remaining
    lifetime crosses a whole second (where a server that checks the TTL at one instant and
    counts notAfter from a later one would overshoot), and concurrently."""
    WAVES = (0.15, 0.10, 0.07, 0.05, 0.03, 0.02)   # fraction of a second left over the ttl
    PER_WAVE = 4

    def test_children_never_outlive_parent(self):
        parent = self.create_agent(self.admin, "acme-corp/ops/short-parent", scope=["read:x"],
                                   ttl="60s", trust_level="medium")
        parent_end = leaf_cert(parent.doc["svid_pem"]).not_valid_after.replace(tzinfo=UTC)
        client = parent.client()
        results = []
        lock = threading.Lock()

        def left():
            return (parent_end - th.utcnow()).total_seconds()

        def child(ttl):
            r, _ = self.request_identity(client, "acme-corp/ops/short-child", scope=["read:x"],
                                         ttl=ttl)
            with lock:
                results.append((ttl, r))

        with concurrent.futures.ThreadPoolExecutor(self.PER_WAVE) as pool:
            list(pool.map(child, ["59s", "60s", f"{int(left())}s", f"{int(left()) + 1}s"]))
            for frac in self.WAVES:
                rem = left()
                wait = (rem - int(rem)) - frac
                if wait < 0:
                    wait += 1
                time.sleep(wait)
                ttl = f"{int(left())}s"
                list(pool.map(child, [ttl] * self.PER_WAVE))
        created = [(ttl, r) for ttl, r in results if r.status == 201]
        others = [(ttl, r) for ttl, r in results if r.status != 201]
        if os.environ.get("TW_FUZZ_VERBOSE"):
            print(f"\nchildren: {len(created)} created, {len(others)} refused; created ttls "
                  f"{sorted(t for t, _ in created)}", file=sys.stderr)
        for ttl, r in others:
            self.assert_error(r, 403)
        self.assertGreaterEqual(len(created), 4,
                                f"too few children created to say anything: {others[:3]}")
        late = []
        for ttl, r in created:
            end = leaf_cert(r.json["svid_pem"]).not_valid_after.replace(tzinfo=UTC)
            self.assertEqual(r.json["parent"], parent.spiffe_id)
            expires = th.parse_time(r.json["expires_at"])
            if end > parent_end or expires > parent_end:
                late.append((ttl, end.isoformat(), r.json["expires_at"]))
        self.assertFalse(late, f"children (requested ttl, notAfter, expires_at) outlive their "
                               f"parent (notAfter {parent_end.isoformat()}): {late}")


# =============================================================================================
# 7. Observation events: signed by their subject, the observed caller in `caller`
# =============================================================================================
class ObservationTest(HardeningCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gateway = cls.create_agent(cls.admin, "acme-corp/edge/gateway",
                                       scope=["read:transactions"], ttl="30m")
        cls.caller = cls.create_agent(cls.admin, "acme-corp/finance-team/payer",
                                      scope=["read:transactions"], ttl="30m")

    def tree_size(self):
        r = self.admin.get("/v1/ledger/entries?start=0&end=0")
        self.assertEqual(r.status, 200, r)
        return r.json["tree_size"]

    def post(self, signer, events, client=None):
        return signer.post_events([th.canonical(e) for e in events], client=client)

    def test_observation_about_another_subject_refused(self):
        size0 = self.tree_size()
        ev = self.caller.event("observation", caller=self.gateway.spiffe_id)
        r = self.post(self.gateway, [ev])
        self.assert_code(r, 400)
        self.assertEqual(self.tree_size(), size0, "a refused observation was written")
        found = self.admin.get(f"/v1/audit/events?instance={q(self.caller.spiffe_id)}")
        self.assertEqual(found.status, 200, found)
        self.assertNotIn(ev["id"], [e["event_id"] for e in found.json["events"]])

    def test_observation_by_signer_with_caller_found_by_caller(self):
        ev = self.gateway.event("observation", caller=self.caller.spiffe_id,
                           resource="https://bank.example/tx/42")
        r = self.post(self.gateway, [ev])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["indexes"]), 1, r)
        found = self.admin.get(f"/v1/audit/events?caller={q(self.caller.spiffe_id)}")
        self.assertEqual(found.status, 200, found)
        hits = [e for e in found.json["events"] if e["event_id"] == ev["id"]]
        self.assertEqual(len(hits), 1, f"the observation is not found by its caller: {found}")
        self.assertEqual(hits[0]["event"]["caller"], self.caller.spiffe_id)
        self.assertEqual(hits[0]["event"]["instance"], self.gateway.spiffe_id)
        by_instance = self.admin.get(f"/v1/audit/events?instance={q(self.gateway.spiffe_id)}")
        self.assertIn(ev["id"], [e["event_id"] for e in by_instance.json["events"]])


# =============================================================================================
# 8. Late (spooled) batches after a revocation
# =============================================================================================
class LateBatchTest(HardeningCase):
    """A spooled batch names its signer's chain in `chain`. The signer has been revoked since:
    events dated before the revocation instant are admitted, later ones refused."""

    def revoked_signer(self):
        agent = self.create_agent(self.admin, "acme-corp/ops/spooler",
                                  scope=["read:transactions"], ttl="30m")
        t_before = now_ms() + 1
        time.sleep(1.1)   # the revocation instant may be kept with second precision
        out = self.revoke(instance=agent.instance_id, reason="late batch test")
        entries = self.anon.get(f"/v1/revocations?after={out['sequence'] - 1}").json["entries"]
        revoked_at = th.parse_time(entries[0]["revoked_at"])
        self.assertGreater(revoked_at.timestamp() * 1000, t_before, entries[0])
        time.sleep(1.1)
        t_after = now_ms()
        self.assertGreater(t_after, revoked_at.timestamp() * 1000 + 1000)
        return agent, t_before, t_after

    def event_ids(self, agent):
        found = self.admin.get(f"/v1/audit/events?instance={q(agent.spiffe_id)}")
        self.assertEqual(found.status, 200, found)
        return [e["event_id"] for e in found.json["events"]]

    def check_late_batches(self, client, how):
        agent, t_before, t_after = self.revoked_signer()
        chain = agent.doc["svid_pem"]
        before_ev = agent.event("action", time=t_before)
        r = agent.post_events([th.canonical(before_ev)], client=client, chain=chain)
        self.assertEqual(r.status, 200, f"{how}: a late batch with an event dated before the "
                                        f"signer's revocation was refused: {r}")
        self.assertIn(before_ev["id"], self.event_ids(agent))

        after_ev = agent.event("action", time=t_after)
        r = agent.post_events([th.canonical(after_ev)], client=client, chain=chain)
        self.assert_code(r, 403)
        self.assertNotIn(after_ev["id"], self.event_ids(agent))

        mixed = [agent.event("action", time=t_before + 1),
                 agent.event("action", time=t_after)]
        r = agent.post_events([th.canonical(e) for e in mixed], client=client, chain=chain)
        self.assert_code(r, 403)
        self.assertNotIn(mixed[0]["id"], self.event_ids(agent),
                         "part of a refused batch was written")

    def test_late_batches_over_plain_tls(self):
        # TLS, no client certificate, no token: the chain alone identifies the signer
        self.check_late_batches(self.server.client(), "plain TLS")

    def test_late_batches_delivered_by_another_instance(self):
        # the SDK's spool is delivered by the next live identity, over its own mTLS
        courier = self.create_agent(self.admin, "acme-corp/ops/courier", ttl="30m")
        self.check_late_batches(courier.client(), "mTLS of another live instance")


# =============================================================================================
# 9. One server per data directory
# =============================================================================================
class SecondServerTest(HardeningCase):

    def test_second_server_on_same_data_dir_refuses(self):
        second = th.Server(os.path.join(self.tmp, "second"), data_dir=self.server.data_dir,
                           trust_domain=self.server.trust_domain)
        self.addCleanup(second.stop)
        second.spawn()
        port = second.wait_listening(timeout=5)
        running = second.proc.poll() is None
        rc = second.stop()
        stderr = th.read_text(second.stderr_path(second.runs))
        self.assertFalse(running, f"a second server on the same data directory was still running "
                                  f"after 5 s (listening port: {port})\n--- its stderr ---\n"
                                  f"{stderr}")
        self.assertNotEqual(rc, 0, f"the second server exited 0\n{stderr}")
        self.assertRegex(stderr, rf"(?<!\d){self.server.proc.pid}(?!\d)",
                         f"the second server's stderr does not name the first's PID "
                         f"{self.server.proc.pid}:\n{stderr}")
        self.assert_alive("after the second server's attempt")
        self.assertEqual(self.admin.get("/v1/identities").status, 200)


# =============================================================================================
# 10. Out of file descriptors: accept backs off instead of spinning, and recovers
# =============================================================================================
class FileDescriptorLimitTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tw-fd-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        # The server inherits a soft limit of 96 descriptors.
        old = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (96, old[1]))
        try:
            self.server = th.Server(self.tmp).start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, old)
        self.addCleanup(self.server.stop)

    def cpu_ticks(self):
        with open(f"/proc/{self.server.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def test_accept_backs_off_when_out_of_descriptors_and_recovers(self):
        held = []
        for _ in range(150):  # far past the server's 96
            try:
                held.append(socket.create_connection(("127.0.0.1", self.server.port), timeout=2))
            except OSError:
                break
        time.sleep(0.5)  # the listener is readable and accept fails with EMFILE from here on
        before = self.cpu_ticks()
        time.sleep(2.0)
        used = self.cpu_ticks() - before
        ticks_per_s = os.sysconf("SC_CLK_TCK")
        self.assertLess(used, ticks_per_s, f"the server used {used} clock ticks in 2 s while out "
                                           "of descriptors: accept is spinning")
        for s in held:
            s.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                r = self.server.client().get("/healthz")
                if r.status == 200:
                    break
            except Exception:  # noqa: BLE001
                pass
            self.assertLess(time.monotonic(), deadline, "the server did not recover")
            time.sleep(0.1)


if __name__ == "__main__":
    unittest.main()
