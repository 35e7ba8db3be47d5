#!/usr/bin/env python3
"""TLS stacks nobody on the team wrote interoperate with TrustWarden's X.509-SVIDs, PEM bundles
and the Python SDK's TLS contexts (`AgentIdentity.ssl_context()`, built on the C++ SDK's peer
check):

  * OpenSSL's `s_server` (-cert/-key an SVID, -CAfile our bundle.pem, -Verify) with the SDK's
    client context, and `s_client` (-cert/-key/-CAfile) against the SDK's server context, in
    TLS 1.2 and TLS 1.3;
  * Debian's nginx (/usr/sbin/nginx, run here on a generated configuration in a temporary
    prefix) serving an SVID, with `ssl_verify_client on` and our bundle as
    `ssl_client_certificate`, in front of a local upstream that echoes what nginx passed on:
    `$ssl_client_verify`, `$ssl_client_s_dn` and `$ssl_client_escaped_cert`, whose URI SAN
    must be the caller's SPIFFE ID; the callers are curl presenting an agent's SVID, and SDK
    identities through http.client and urllib;
  * Python's own `ssl` module (plain SSLContexts loading the SVID and key files and the bundle
    PEM, CERT_REQUIRED, no host name check) as client and as server against the SDK's contexts;
  * a CA rotation (`ca prepare`, `ca activate`, later `ca revoke-authority`) seen by each of
    them: the re-exported bundle makes the new authority's SVIDs acceptable, the old bundle
    file does not.

So that every acceptance means something, each peer must also refuse: no client certificate,
an SVID of a CA outside the bundle (one even bearing the very SPIFFE ID of a genuine agent),
an SVID of another trust domain, a genuine SVID under a SPIFFE ID other than the one required.

Run (the SDK's module is imported from the build tree, under the interpreter it was built for):
  cd /work/main && PYTHONPATH=build/python TW_BIN=$PWD/build/bin/trustwarden \\
      $(cat build/python/interpreter) tests/harness/run_suite.py --min-tests 1 \\
      tests/interop/tls_peers_test.py

Nothing is skipped: a missing `openssl`, `curl` or `nginx` (scripts/bootstrap installs them) is
an error. Everything listens on 127.0.0.1 (servers on port 0, nginx on a port the OS just
handed out), lives in temporary directories, and every process is stopped by its PID.
"""

import http.client
import http.server
import json
import os
import re
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
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import trustwarden_harness as harness  # noqa: E402
from trustwarden_harness import (OPENSSL, Server, cli_env, describe, pem_blocks,  # noqa: E402
                                 pem_to_der, read_text, run, tw, write_file)

try:
    from trustwarden import AgentIdentity, TrustDomain, TrustWardenError  # noqa: E402
except ImportError as e:  # pragma: no cover - a set-up mistake, said plainly
    raise ImportError(f"the trustwarden package is not importable ({e}): run with "
                      "PYTHONPATH=build/python under $(cat build/python/interpreter)") from e

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CURL = shutil.which("curl") or "curl"
TD = "trustwarden"
NGINX_ID = f"spiffe://{TD}/acme/web/nginx"
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
PROCESS_TIMEOUT = 20.0  # one openssl/curl invocation
# How OpenSSL (and nginx, quoting it) names a chain that ends outside its trust anchors: 20
# for a leaf alone, 19 when the peer sent its root too (OpenSSL completes a chain it presents
# from its own verify store: s_server -CAfile, curl --cacert, the SDK's contexts).
UNTRUSTED = r"unable to get local issuer certificate|self-signed certificate in certificate chain"
W = None                # the module's fixture (setUpModule)


def setUpModule():
    harness.require("openssl", "curl")
    if not (os.path.isfile(NGINX) and os.access(NGINX, os.X_OK)):
        raise RuntimeError(f"nginx not found ({NGINX}): run scripts/bootstrap")
    # Every identity names its server, token and bundle explicitly.
    for k in [k for k in os.environ if k.startswith("TRUSTWARDEN_")]:
        del os.environ[k]
    global W
    W = Fixture()


# ---------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------
def must(argv, **kw):
    r = run(argv, **kw)
    if r.returncode != 0:
        raise AssertionError("command failed" + describe(r))
    return r


class Cred:
    """An SVID chain file (leaf first) and its private key file."""

    def __init__(self, spiffe_id, svid, key):
        self.spiffe_id, self.svid, self.key = str(spiffe_id), svid, key
        self.pem = read_text(svid)
        self.leaf_der = pem_to_der(pem_blocks(self.pem)[0])

    def __repr__(self):
        return f"<Cred {self.spiffe_id} {self.svid}>"


def leaf_der(chain_pem):
    return pem_to_der(pem_blocks(chain_pem)[0])


def cli_agent(server, name, directory):
    """`trustwarden agent create` against server: key.pem made locally, svid.pem signed."""
    r = tw("agent", "create", "--name", name, "--scope", "read:x", "--out", directory, "--json",
           env=cli_env(server, token=server.admin_token()))
    if r.returncode != 0:
        raise AssertionError("agent create failed" + describe(r))
    doc = json.loads(r.stdout)
    return Cred(doc["spiffe_id"], os.path.join(directory, "svid.pem"),
                os.path.join(directory, "key.pem"))


def offline_svid(ca_dir, spiffe_id, directory, dns=()):
    """An SVID from `trustwarden svid issue --ca ca_dir` for a key made by OpenSSL's CLI. Used
    where a peer checks host names (curl): the API refuses DNS SANs in CSRs, `svid issue --dns`
    adds them (SPIFFE allows DNS SANs beside the one URI SAN)."""
    os.makedirs(directory, exist_ok=True)
    key = os.path.join(directory, "key.pem")
    pub = os.path.join(directory, "pub.pem")
    svid = os.path.join(directory, "svid.pem")
    must([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-out", key])
    os.chmod(key, 0o600)
    must([OPENSSL, "pkey", "-in", key, "-pubout", "-out", pub])
    argv = ["svid", "issue", "--ca", ca_dir, "--spiffe-id", spiffe_id, "--public-key", pub,
            "--ttl", "1h", "--out", svid]
    for d in dns:
        argv += ["--dns", d]
    r = tw(*argv)
    if r.returncode != 0:
        raise AssertionError("svid issue failed" + describe(r))
    return Cred(spiffe_id, svid, key)


def other_ca(directory, trust_domain):
    """A CA of its own (`trustwarden ca init`), unknown to every bundle of the suite's servers."""
    r = tw("ca", "init", "--trust-domain", trust_domain, "--out", directory)
    if r.returncode != 0:
        raise AssertionError("ca init failed" + describe(r))
    return directory


def sdk_identity(server, name, spool, trust_level="medium"):
    return AgentIdentity.create(name, ["read:x"], "30m", trust_level, server=server.url,
                                token=server.admin_token(), bundle=server.bundle_json,
                                spool=spool)


def close_quietly(identity):
    try:
        identity.close()
    except TrustWardenError:
        pass


def uri_sans(pem):
    """The URI SANs of a PEM certificate, as OpenSSL's CLI reads them."""
    r = must([OPENSSL, "x509", "-noout", "-ext", "subjectAltName"], stdin_text=pem)
    return re.findall(r"URI:([^,\s]+)", r.stdout)


def subject_rfc2253(pem):
    r = must([OPENSSL, "x509", "-noout", "-subject", "-nameopt", "RFC2253"], stdin_text=pem)
    return r.stdout.strip().removeprefix("subject=")


def openssl_verify(cafile, svid):
    """`openssl verify -CAfile cafile -untrusted svid svid`: (ok, output)."""
    r = run([OPENSSL, "verify", "-CAfile", cafile, "-untrusted", svid, svid])
    return r.returncode == 0, r.stdout + r.stderr


def bundle_certs(pem_text):
    return sorted(pem_to_der(b) for b in pem_blocks(pem_text))


class Fixture:
    """The module's PKI: a server of trust domain `trustwarden` (stopped at module end) and, all
    in one temporary directory:
      alice, bob   agents made by `agent create` (key.pem, svid.pem);
      nginx        an SVID for NGINX_ID with DNS SAN localhost, issued by the server's CA;
      impostor     an SVID bearing alice's very SPIFFE ID, from another CA of the same trust
                   domain name (not in the bundle);
      foreign      an SVID of trust domain other.example, from that domain's CA;
      sdk_api, sdk_client   Python SDK identities (AgentIdentity.create), closed at the end."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="tw-tls-peers-")
        unittest.addModuleCleanup(shutil.rmtree, self.tmp, True)
        self.server = Server(self.path("server"), trust_domain=TD)
        unittest.addModuleCleanup(self.server.stop)
        self.server.start()
        self.bundle = self.server.bundle_pem
        self.alice = cli_agent(self.server, "acme/fin/alice", self.path("alice"))
        self.bob = cli_agent(self.server, "acme/fin/bob", self.path("bob"))
        self.nginx = offline_svid(self.server.data_dir, NGINX_ID, self.path("nginx-svid"),
                                  dns=["localhost"])
        impostor_ca = other_ca(self.path("impostor-ca"), TD)
        self.impostor = offline_svid(impostor_ca, self.alice.spiffe_id, self.path("impostor"),
                                     dns=["localhost"])
        foreign_ca = other_ca(self.path("foreign-ca"), "other.example")
        self.foreign_bundle = os.path.join(foreign_ca, "bundle.pem")
        self.foreign = offline_svid(foreign_ca, "spiffe://other.example/acme/fin/alice",
                                    self.path("foreign"), dns=["localhost"])
        spool = self.path("spool")
        self.sdk_api = sdk_identity(self.server, "acme/fin/sdk-api", spool)
        unittest.addModuleCleanup(close_quietly, self.sdk_api)
        self.sdk_client = sdk_identity(self.server, "acme/fin/sdk-client", spool)
        unittest.addModuleCleanup(close_quietly, self.sdk_client)
        self.outsiders = {"impostor (same SPIFFE ID, another CA)": self.impostor,
                          "another trust domain": self.foreign}

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)


# ---------------------------------------------------------------------------------------------
# Peers: a TLS server thread, OpenSSL's s_server and s_client, plain ssl contexts
# ---------------------------------------------------------------------------------------------
def peer_of(conn):
    """The peer's SPIFFE ID on an SSL socket: the SDK's peer_spiffe_id, or the URI SAN that
    Python's ssl decoded from the verified certificate."""
    peer = getattr(conn, "peer_spiffe_id", None)
    if peer is not None:
        return str(peer)
    cert = conn.getpeercert() or {}
    uris = [v for k, v in cert.get("subjectAltName", ()) if k == "URI"]
    return uris[0] if len(uris) == 1 else None


class TlsServer(harness.TlsServer):
    """harness.TlsServer naming the peer by peer_of(), recording the TLS version, ending each
    connection with close_notify."""

    def __init__(self, ctx):
        super().__init__(ctx, peer_of=peer_of, with_version=True, close_notify=True)


def tls_get(ctx, port):
    """Connects with ctx, sends a request; (reply bytes, the peer's SPIFFE ID, TLS version)
    or the exception."""
    return harness.tls_exchange(ctx, port, peer_of)


def plain_context(server_side, cafile, cred=None, version=None):
    """Python's own ssl, not the SDK's: our SVID and key files, our bundle PEM as the only
    trust anchors, CERT_REQUIRED, no host name check (SPIFFE authenticates IDs, not names)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=cafile)
    if cred is not None:
        ctx.load_cert_chain(cred.svid, cred.key)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


def stop_process(proc, sig=signal.SIGTERM, group=False):
    """Stops proc by its PID (sig, then SIGKILL after 10 s; group: its process group too)."""
    if proc is None:
        return
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


class OpenSslServer:
    """`openssl s_server -www` on 127.0.0.1 port 0 presenting cred, requiring a client
    certificate that verifies against cafile (-Verify, and -verify_return_error: without it
    s_server logs a bad client certificate and carries on). -www answers GET / with a page
    naming the protocol and printing the client's certificate."""

    ACCEPT_RE = re.compile(r"ACCEPT 127\.0\.0\.1:(\d+)")

    def __init__(self, directory, cred, cafile, version):
        self.log = os.path.join(directory, f"s_server-{time.monotonic_ns()}.log")
        self.argv = [OPENSSL, "s_server", "-accept", "127.0.0.1:0", "-www",
                     "-cert", cred.svid, "-key", cred.key, "-CAfile", cafile,
                     "-Verify", "2", "-verify_return_error", f"-tls1_{version[-1]}"]
        if len(pem_blocks(cred.pem)) > 1:
            self.argv += ["-cert_chain", cred.svid]
        self.proc = None
        self.port = None

    def start(self):
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            m = self.ACCEPT_RE.search(read_text(self.log))
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"s_server did not start:\n$ {' '.join(self.argv)}\n"
                                     f"{read_text(self.log)}")
            time.sleep(0.02)

    def output(self):
        return read_text(self.log)

    def stop(self):
        proc, self.proc = self.proc, None
        stop_process(proc)


def s_client(port, version, cafile, cred=None, request="GET / HTTP/1.0\r\n\r\n"):
    """`openssl s_client` to 127.0.0.1:port: -CAfile cafile with -verify_return_error (else it
    reports a bad server certificate and carries on), -cert/-key cred when given; sends request
    and reads until the server closes (-ign_eof)."""
    argv = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", cafile,
            "-verify_return_error", "-ign_eof", f"-tls1_{version[-1]}"]
    if cred is not None:
        argv += ["-cert", cred.svid, "-key", cred.key]
        if len(pem_blocks(cred.pem)) > 1:
            argv += ["-cert_chain", cred.svid]
    return run(argv, stdin_text=request, timeout=PROCESS_TIMEOUT)


def negotiated(s_client_output):
    """The protocol s_client reports ("New, TLSv1.3, Cipher is ..."), or None."""
    m = re.search(r"(?:New|Reused), (TLSv1\.[0-3]), Cipher is", s_client_output)
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------------
# nginx and its upstream
# ---------------------------------------------------------------------------------------------
class Upstream:
    """The service behind nginx: a Python HTTP server on 127.0.0.1 port 0 answering every GET
    with the request headers it got, as JSON (lower-case names); it keeps them, in order."""

    def __init__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen.append(headers)
                body = json.dumps({"path": self.path, "headers": headers}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def live_children(pid):
    """PIDs of pid's children that have not exited (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


NGINX_CONF = """\
worker_processes 1;
master_process on;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        # Our bundle as the client CAs; leaves hang off a bundle CA (depth 1), an upstream
        # intermediate would add one.
        ssl_client_certificate {client_ca};
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
            proxy_set_header X-SSL-Client-S-DN $ssl_client_s_dn;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
            proxy_set_header X-SSL-Protocol $ssl_protocol;
            proxy_set_header X-Nginx-Generation {generation};
        }}
    }}
}}
"""


class Nginx:
    """Debian's nginx on a configuration of its own in directory (the prefix): master and one
    worker, `daemon off` so that the PID we started is the master's, listening on 127.0.0.1 at
    a port the OS just handed out. Its client CA file is a copy (set_client_ca, then reload)."""

    def __init__(self, directory, cred, client_ca, upstream_port):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o711)  # workers (nobody, when we are root) reach nothing else
        self.cred, self.upstream_port = cred, upstream_port
        self.conf = os.path.join(directory, "nginx.conf")
        self.error_log = os.path.join(directory, "error.log")
        self.client_ca = os.path.join(directory, "client-ca.pem")
        self.set_client_ca(client_ca)
        self.generation = 0
        self.proc = None
        self.port = None

    def set_client_ca(self, pem_file):
        write_file(self.client_ca, read_text(pem_file))

    def _write_conf(self):
        self.generation += 1
        write_file(self.conf, NGINX_CONF.format(
            dir=self.dir, port=self.port, cert=self.cred.svid, key=self.cred.key,
            client_ca=self.client_ca, upstream=self.upstream_port, generation=self.generation))

    def _cli(self, *args):
        return [NGINX, "-p", self.dir + "/", "-c", self.conf, "-e", self.error_log, *args]

    def start(self):
        for attempt in range(3):
            self.port = free_port()
            self._write_conf()
            out = os.path.join(self.dir, "nginx.out")
            with open(out, "wb") as f:
                self.proc = subprocess.Popen(self._cli(), stdin=subprocess.DEVNULL, stdout=f,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 10
            while self.proc.poll() is None and time.monotonic() < deadline:
                if accepts_connections(self.port):
                    return self
                time.sleep(0.02)
            log = read_text(out) + read_text(self.error_log)
            self.stop()
            if "Address already in use" not in log or attempt == 2:
                raise AssertionError(f"nginx did not start:\n$ {' '.join(self._cli())}\n{log}")
        raise AssertionError("unreachable")

    def reload(self):
        """Writes the configuration again (next generation), `nginx -s reload`, and waits until
        the workers of the previous configuration have exited."""
        before = live_children(self.proc.pid)
        self._write_conf()
        must(self._cli("-s", "reload"))
        deadline = time.monotonic() + 10
        while True:
            now = live_children(self.proc.pid)
            if now and not set(before) & set(now):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"nginx workers {before} still run after the reload "
                                     f"(now {now})\n{read_text(self.error_log)[-3000:]}")
            time.sleep(0.02)

    def stop(self):
        """SIGTERM to the master (fast shutdown of it and its workers), SIGKILL to the group
        after 10 s; AssertionError if its port still accepts connections."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        workers = live_children(proc.pid)
        stop_process(proc, group=True)
        deadline = time.monotonic() + 5
        while any(os.path.exists(f"/proc/{w}") for w in workers) and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        if self.port and accepts_connections(self.port):
            raise AssertionError(f"something still listens on nginx's port {self.port}")


def curl(port, cacert, cred=None, version=None, path="/"):
    """curl to nginx as https://localhost:PORT (resolved to 127.0.0.1; the host name nginx's
    SVID carries), presenting cred (--cert/--key) when given. (status or None, body, result)."""
    argv = [CURL, "-sS", "--max-time", "15", "--resolve", f"localhost:{port}:127.0.0.1",
            "--cacert", cacert, "-w", "\n%{http_code}"]
    if cred is not None:
        argv += ["--cert", cred.svid, "--key", cred.key]
    if version == "1.2":
        argv += ["--tlsv1.2", "--tls-max", "1.2"]
    elif version == "1.3":
        argv += ["--tlsv1.3"]
    argv.append(f"https://localhost:{port}{path}")
    r = run(argv, timeout=PROCESS_TIMEOUT)
    body, _, code = r.stdout.rpartition("\n")
    return (int(code) if r.returncode == 0 else None), body, r


class NginxCase(unittest.TestCase):
    """Helpers for the classes that run an nginx in front of an Upstream."""

    def forwarded(self, body, r=None):
        """What the upstream got, from its JSON reply through nginx."""
        try:
            return json.loads(body)["headers"]
        except (ValueError, KeyError):
            self.fail(f"not the upstream's reply: {body[:500]!r}" + (describe(r) if r else ""))

    def assert_reached_upstream_as(self, headers, cred_pem, spiffe_id):
        """nginx verified the client (SUCCESS), passed its subject DN, and passed its very
        certificate, whose URI SAN is spiffe_id."""
        self.assertEqual(headers.get("x-ssl-client-verify"), "SUCCESS", headers)
        self.assertEqual(headers.get("x-ssl-client-s-dn"), subject_rfc2253(cred_pem))
        passed = urllib.parse.unquote(headers.get("x-ssl-client-cert", ""))
        blocks = pem_blocks(passed)
        self.assertEqual(len(blocks), 1, f"$ssl_client_escaped_cert: {passed!r}")
        self.assertEqual(pem_to_der(blocks[0]), leaf_der(cred_pem))
        self.assertEqual(uri_sans(passed), [str(spiffe_id)])

    def assert_refused_by_nginx(self, status, body, reason, upstream, before):
        self.assertEqual(status, 400, body[:500])
        self.assertIn(reason, body)
        self.assertEqual(len(upstream.seen), before, "a refused request reached the upstream")


# ---------------------------------------------------------------------------------------------
# 1. OpenSSL's s_server and s_client
# ---------------------------------------------------------------------------------------------
class OpenSslServerTest(unittest.TestCase):
    """`openssl s_server` presents an agent's SVID and verifies clients against bundle.pem; the
    client is the Python SDK's ssl_context()."""

    def s_server(self, cred, version, cafile=None):
        srv = OpenSslServer(W.tmp, cred, cafile or W.bundle, version)
        self.addCleanup(srv.stop)
        return srv.start()

    def check_sdk_client(self, version):
        srv = self.s_server(W.alice, version)
        ctx = W.sdk_client.ssl_context(peer=W.alice.spiffe_id)
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
        try:
            conn.request("GET", "/")
            self.assertEqual(conn.sock.peer_spiffe_id, W.alice.spiffe_id)
            self.assertEqual(conn.sock.version(), f"TLSv{version}")
            self.assertEqual(conn.sock.getpeercert(binary_form=True), W.alice.leaf_der)
            resp = conn.getresponse()
            page = resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
        self.assertEqual(resp.status, 200, page[:500])
        self.assertIn(f"Protocol  : TLSv{version}", page)
        # s_server verified, and prints, the certificate the SDK presented: its current SVID.
        self.assertIn("Client certificate", page, page[-2000:])
        shown = pem_blocks(page.split("Client certificate", 1)[1])
        self.assertEqual(pem_to_der(shown[0]), leaf_der(W.sdk_client.svid_pem))
        # Control: the same s_server refuses a client whose certificate is not from the bundle,
        # so the acceptance above was its verification, not leniency.
        bad = plain_context(False, W.bundle, W.impostor, version)
        reply = tls_get(bad, srv.port)
        self.assertFalse(isinstance(reply, tuple) and reply[0].startswith(b"HTTP/1.0 200"),
                         f"s_server served a client from another CA: {reply!r}")
        self.assertIn("verify error", srv.output())

    def test_sdk_client_context_to_s_server_tls12(self):
        """TLS 1.2: s_server (-tls1_2 -Verify -CAfile bundle.pem) and the SDK's client context
        accept each other; each side sees the other's SVID."""
        self.check_sdk_client("1.2")

    def test_sdk_client_context_to_s_server_tls13(self):
        """The same in TLS 1.3 (-tls1_3)."""
        self.check_sdk_client("1.3")

    def test_sdk_client_refuses_s_server_certificates_not_from_the_bundle(self):
        """The SDK's client context refuses an s_server presenting an SVID of a CA outside its
        bundle, even one bearing exactly the SPIFFE ID it asks for, and one of another trust
        domain; in both protocol versions."""
        for version in VERSIONS:
            for label, cred in W.outsiders.items():
                with self.subTest(version=version, server=label):
                    srv = self.s_server(cred, version)
                    reply = tls_get(W.sdk_client.ssl_context(peer=W.alice.spiffe_id), srv.port)
                    self.assertIsInstance(reply, ssl.SSLCertVerificationError, reply)
                    srv.stop()

    def test_sdk_client_requiring_a_spiffe_id_refuses_another_genuine_svid(self):
        """s_server presents bob's genuine SVID: a client context requiring alice (or trust
        domain other.example) refuses it in the SDK's SPIFFE check; requiring bob accepts."""
        srv = self.s_server(W.bob, "1.3")
        for peer in (W.alice.spiffe_id, TrustDomain("other.example")):
            with self.subTest(peer=peer):
                reply = tls_get(W.sdk_client.ssl_context(peer=peer), srv.port)
                self.assertIsInstance(reply, ssl.SSLCertVerificationError, reply)
                self.assertIn("refused", str(reply))
        reply = tls_get(W.sdk_client.ssl_context(peer=W.bob.spiffe_id), srv.port)
        self.assertIsInstance(reply, tuple, reply)
        self.assertTrue(reply[0].startswith(b"HTTP/1.0 200"), reply)
        self.assertEqual(reply[1], W.bob.spiffe_id)


class OpenSslClientTest(unittest.TestCase):
    """The SDK's server context (ssl_context(server_side=True)) with `openssl s_client -cert
    -key -CAfile bundle.pem` as the client."""

    @classmethod
    def setUpClass(cls):
        cls.tls = TlsServer(W.sdk_api.ssl_context(server_side=True))
        cls.addClassCleanup(cls.tls.close)

    def setUp(self):
        while not self.tls.results.empty():
            self.tls.results.get_nowait()

    def check_s_client(self, version):
        r = s_client(self.tls.port, version, W.bundle, W.alice)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertIn("Verify return code: 0 (ok)", r.stdout, describe(r))
        self.assertEqual(negotiated(r.stdout), f"TLSv{version}", describe(r))
        # s_client saw the SDK identity's SVID...
        self.assertEqual(pem_to_der(pem_blocks(r.stdout)[0]), leaf_der(W.sdk_api.svid_pem))
        # ...and the SDK's check saw alice, which the reply repeats.
        self.assertEqual(self.tls.result(), ("ok", W.alice.spiffe_id, f"TLSv{version}"))
        self.assertIn("HTTP/1.1 200 OK", r.stdout)
        self.assertIn(f"{W.alice.spiffe_id} TLSv{version}", r.stdout)
        # Control: s_client trusting another CA's bundle refuses the same server.
        r = s_client(self.tls.port, version, W.foreign_bundle, W.alice)
        self.assertNotEqual(r.returncode, 0, describe(r))
        self.assertNotIn("HTTP/1.1 200", r.stdout)
        self.assertRegex(r.stdout + r.stderr, UNTRUSTED)
        self.assertEqual(self.tls.result()[0], "error")  # the handshake s_client aborted

    def test_s_client_to_sdk_server_context_tls12(self):
        """TLS 1.2: s_client presenting alice's SVID and the SDK's server context accept each
        other; the SDK sees alice's SPIFFE ID."""
        self.check_s_client("1.2")

    def test_s_client_to_sdk_server_context_tls13(self):
        """The same in TLS 1.3."""
        self.check_s_client("1.3")

    def assert_refused(self, version, cred, exc_type=ssl.SSLError, server=None):
        server = server or self.tls
        r = s_client(server.port, version, W.bundle, cred)
        self.assertNotIn("HTTP/1.1 200", r.stdout, describe(r))
        status, *rest = server.result()
        self.assertEqual(status, "error", f"the SDK accepted {cred}: {rest}")
        self.assertIsInstance(rest[0], exc_type)
        return rest[0]

    def test_sdk_server_refuses_s_client_without_a_certificate(self):
        """An s_client presenting no certificate gets no reply (TLS 1.2: the handshake fails;
        TLS 1.3: the server aborts after it)."""
        for version in VERSIONS:
            with self.subTest(version=version):
                self.assert_refused(version, None)

    def test_sdk_server_refuses_s_client_certificates_not_from_the_bundle(self):
        """An s_client presenting the impostor's SVID (alice's SPIFFE ID, another CA) or one of
        another trust domain is refused, in both versions."""
        for version in VERSIONS:
            for label, cred in W.outsiders.items():
                with self.subTest(version=version, client=label):
                    self.assert_refused(version, cred)

    def test_sdk_server_requiring_a_spiffe_id_refuses_other_genuine_svids(self):
        """A server context requiring alice refuses bob's genuine SVID (the SPIFFE check, after
        OpenSSL's chain check passed) and accepts alice."""
        only_alice = TlsServer(W.sdk_api.ssl_context(server_side=True, peer=W.alice.spiffe_id))
        self.addCleanup(only_alice.close)
        err = self.assert_refused("1.3", W.bob, ssl.SSLCertVerificationError, only_alice)
        self.assertIn("refused", str(err))
        r = s_client(only_alice.port, "1.2", W.bundle, W.alice)
        self.assertIn("HTTP/1.1 200 OK", r.stdout, describe(r))
        self.assertEqual(only_alice.result(), ("ok", W.alice.spiffe_id, "TLSv1.2"))


# ---------------------------------------------------------------------------------------------
# 2. nginx with ssl_verify_client on, curl and SDK identities as its clients
# ---------------------------------------------------------------------------------------------
class NginxTest(NginxCase):
    """Debian's nginx presents an SVID (NGINX_ID, DNS SAN localhost) and requires client
    certificates from our bundle.pem; behind it, an upstream echoing the headers nginx set."""

    @classmethod
    def setUpClass(cls):
        cls.upstream = Upstream()
        cls.addClassCleanup(cls.upstream.close)
        cls.nginx = Nginx(W.path("nginx"), W.nginx, W.bundle, cls.upstream.port)
        cls.addClassCleanup(cls.nginx.stop)
        cls.nginx.start()

    def test_curl_presenting_an_agent_svid_reaches_the_upstream(self):
        """curl --cert/--key alice's SVID, --cacert bundle.pem: nginx verifies it (TLS 1.2 and
        1.3) and the upstream gets $ssl_client_verify SUCCESS, alice's subject DN, and her
        certificate, whose URI SAN is her SPIFFE ID (the DN, O=TrustWarden, names nobody)."""
        for version in VERSIONS:
            with self.subTest(version=version):
                status, body, r = curl(self.nginx.port, W.bundle, W.alice, version)
                self.assertEqual(status, 200, describe(r))
                headers = self.forwarded(body, r)
                self.assert_reached_upstream_as(headers, W.alice.pem, W.alice.spiffe_id)
                self.assertEqual(headers["x-ssl-protocol"], f"TLSv{version}")

    def test_sdk_identity_through_http_client_and_urllib(self):
        """An SDK identity's ssl_context(peer=NGINX_ID) with http.client and urllib: the SDK
        accepts nginx's SVID, nginx accepts the identity's, and the upstream sees its ID."""
        ctx = W.sdk_client.ssl_context(peer=NGINX_ID)
        conn = http.client.HTTPSConnection("127.0.0.1", self.nginx.port, context=ctx,
                                           timeout=10)
        try:
            conn.request("GET", "/via-http-client")
            self.assertEqual(conn.sock.peer_spiffe_id, NGINX_ID)
            resp = conn.getresponse()
            body = resp.read().decode()
        finally:
            conn.close()
        self.assertEqual(resp.status, 200, body[:500])
        self.assert_reached_upstream_as(self.forwarded(body), W.sdk_client.svid_pem,
                                        W.sdk_client.spiffe_id)
        with urllib.request.urlopen(f"https://127.0.0.1:{self.nginx.port}/via-urllib",
                                    context=ctx, timeout=10) as resp:
            self.assertEqual(resp.status, 200)
            doc = json.loads(resp.read())
        self.assertEqual(doc["path"], "/via-urllib")
        self.assert_reached_upstream_as(doc["headers"], W.sdk_client.svid_pem,
                                        W.sdk_client.spiffe_id)

    def test_sdk_identity_requiring_another_id_refuses_nginx(self):
        """The SDK's context requiring alice's ID refuses nginx's (genuine) SVID before any
        request is sent."""
        before = len(self.upstream.seen)
        ctx = W.sdk_client.ssl_context(peer=W.alice.spiffe_id)
        with self.assertRaises(urllib.error.URLError) as cm:
            urllib.request.urlopen(f"https://127.0.0.1:{self.nginx.port}/", context=ctx,
                                   timeout=10)
        self.assertIsInstance(cm.exception.reason, ssl.SSLCertVerificationError)
        self.assertEqual(len(self.upstream.seen), before)

    def test_no_client_certificate_is_a_400(self):
        """Without a client certificate nginx answers 400 (curl, and Python's ssl trusting the
        bundle) and the upstream sees nothing."""
        before = len(self.upstream.seen)
        status, body, r = curl(self.nginx.port, W.bundle)
        self.assert_refused_by_nginx(status, body, "No required SSL certificate was sent",
                                     self.upstream, before)
        ctx = plain_context(False, W.bundle)
        conn = http.client.HTTPSConnection("127.0.0.1", self.nginx.port, context=ctx,
                                           timeout=10)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read().decode()
        finally:
            conn.close()
        self.assert_refused_by_nginx(resp.status, body, "No required SSL certificate was sent",
                                     self.upstream, before)

    def test_certificates_from_another_ca_are_refused(self):
        """curl presenting the impostor's SVID (alice's SPIFFE ID, another CA) or one of
        another trust domain gets 400 and nginx logs the verification error; and curl
        trusting another CA refuses nginx itself."""
        for label, cred in W.outsiders.items():
            with self.subTest(client=label):
                before = len(self.upstream.seen)
                status, body, r = curl(self.nginx.port, W.bundle, cred)
                self.assert_refused_by_nginx(status, body, "The SSL certificate error",
                                             self.upstream, before)
        self.assertIn("client SSL certificate verify error", read_text(self.nginx.error_log))
        status, body, r = curl(self.nginx.port, W.foreign_bundle, W.alice)
        self.assertIsNone(status, describe(r))
        self.assertEqual(r.returncode, 60, describe(r))  # peer certificate cannot be verified


# ---------------------------------------------------------------------------------------------
# 3. Python's ssl module against the SDK's contexts
# ---------------------------------------------------------------------------------------------
class PythonSslTest(unittest.TestCase):
    """Plain ssl.SSLContexts (our PEM files, CERT_REQUIRED, no host name check) against the
    SDK's contexts, both ways, in TLS 1.2 and 1.3."""

    def serve(self, ctx):
        server = TlsServer(ctx)
        self.addCleanup(server.close)
        return server

    def test_plain_client_to_sdk_server_context(self):
        """A plain client with alice's SVID and bundle.pem and the SDK's server context accept
        each other: the client decodes the SDK identity's URI SAN, the SDK sees alice."""
        server = self.serve(W.sdk_api.ssl_context(server_side=True))
        for version in VERSIONS:
            with self.subTest(version=version):
                reply = tls_get(plain_context(False, W.bundle, W.alice, version), server.port)
                self.assertIsInstance(reply, tuple, reply)
                data, peer, negotiated_version = reply
                self.assertEqual(peer, W.sdk_api.spiffe_id)
                self.assertEqual(negotiated_version, f"TLSv{version}")
                self.assertTrue(data.endswith(f"{W.alice.spiffe_id} TLSv{version}".encode()),
                                data)
                self.assertEqual(server.result(), ("ok", W.alice.spiffe_id, f"TLSv{version}"))

    def test_plain_server_to_sdk_client_context(self):
        """A plain server with bob's SVID, requiring a client certificate from bundle.pem, and
        the SDK's client context requiring bob accept each other."""
        for version in VERSIONS:
            with self.subTest(version=version):
                server = self.serve(plain_context(True, W.bundle, W.bob, version))
                reply = tls_get(W.sdk_client.ssl_context(peer=W.bob.spiffe_id), server.port)
                self.assertIsInstance(reply, tuple, reply)
                self.assertEqual(reply[1:], (W.bob.spiffe_id, f"TLSv{version}"))
                self.assertEqual(server.result(),
                                 ("ok", W.sdk_client.spiffe_id, f"TLSv{version}"))

    def test_sdk_server_context_refuses_plain_clients_outside_the_bundle(self):
        """The SDK's server context refuses plain clients with no certificate, the impostor's
        or another trust domain's SVID (each trusting our bundle, so that only the server's
        judgement is tested)."""
        server = self.serve(W.sdk_api.ssl_context(server_side=True))
        for label, cred in {"no certificate": None, **W.outsiders}.items():
            for version in VERSIONS:
                with self.subTest(client=label, version=version):
                    reply = tls_get(plain_context(False, W.bundle, cred, version), server.port)
                    self.assertFalse(isinstance(reply, tuple) and reply[0], reply)
                    status, *rest = server.result()
                    self.assertEqual(status, "error", f"the SDK accepted {label}: {rest}")

    def test_sdk_client_context_refuses_plain_servers_it_should_not_trust(self):
        """The SDK's client context refuses a plain server presenting the impostor's SVID (the
        very ID it requires, another CA) or another trust domain's, and a genuine server under
        another ID than the one it requires."""
        for label, cred in W.outsiders.items():
            with self.subTest(server=label):
                server = self.serve(plain_context(True, W.bundle, cred))
                reply = tls_get(W.sdk_client.ssl_context(peer=W.alice.spiffe_id), server.port)
                self.assertIsInstance(reply, ssl.SSLCertVerificationError, reply)
        server = self.serve(plain_context(True, W.bundle, W.bob))
        reply = tls_get(W.sdk_client.ssl_context(peer=W.alice.spiffe_id), server.port)
        self.assertIsInstance(reply, ssl.SSLCertVerificationError, reply)

    def test_plain_contexts_with_our_bundle_refuse_other_cas(self):
        """Control for the tests above: Python's ssl given bundle.pem itself refuses, as
        server, a client from another CA and, as client, a server from another CA."""
        server = self.serve(plain_context(True, W.bundle, W.alice))
        reply = tls_get(plain_context(False, W.bundle, W.impostor), server.port)
        self.assertFalse(isinstance(reply, tuple) and reply[0], reply)
        status, *rest = server.result()
        self.assertEqual(status, "error", rest)
        self.assertIsInstance(rest[0], ssl.SSLCertVerificationError)
        server = self.serve(plain_context(True, W.bundle, W.foreign))
        reply = tls_get(plain_context(False, W.bundle, W.alice), server.port)
        self.assertIsInstance(reply, ssl.SSLCertVerificationError, reply)


# ---------------------------------------------------------------------------------------------
# 4. A CA rotation, seen by each of them
# ---------------------------------------------------------------------------------------------
class RotationTest(NginxCase):
    """A server of its own rotates its CA while nginx runs: `ca prepare` publishes a second
    authority, `ca activate --force` makes it sign. `before` (an `agent create` SVID), nginx's
    SVID and the SDK identity `keeper` date from the first authority; `after` and the SDK
    identity `fresh` from the second. The bundle is re-exported with `bundle show --pem`.

    What rotation changes here: without an upstream root every authority is a self-signed root
    of its own (README "CA rotation"), so an SVID of the new authority chains to a certificate
    the old bundle.pem does not hold, and a peer still holding the old file refuses it; the
    re-exported bundle holds both roots, and accepts both generations of SVIDs. (In upstream
    mode only the intermediate changes under the same root, and the old bundle keeps
    accepting: rotation_test.py's UpstreamRotationTest.) The tests are numbered: the last
    revokes the first authority."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tw-tls-rotation-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.server = Server(os.path.join(cls.tmp, "server"), trust_domain=TD)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        spool = os.path.join(cls.tmp, "spool")
        cls.before = cli_agent(cls.server, "acme/fin/before", os.path.join(cls.tmp, "before"))
        cls.nginx_cred = offline_svid(cls.server.data_dir, NGINX_ID,
                                      os.path.join(cls.tmp, "nginx-svid"), dns=["localhost"])
        cls.old_bundle = write_file(os.path.join(cls.tmp, "bundle-old.pem"),
                                    read_text(cls.server.bundle_pem))
        cls.keeper = sdk_identity(cls.server, "acme/fin/keeper", spool)
        cls.addClassCleanup(close_quietly, cls.keeper)
        cls.keeper_server_ctx_before = cls.keeper.ssl_context(server_side=True)
        cls.upstream = Upstream()
        cls.addClassCleanup(cls.upstream.close)
        cls.nginx = Nginx(os.path.join(cls.tmp, "nginx"), cls.nginx_cred, cls.old_bundle,
                          cls.upstream.port)
        cls.addClassCleanup(cls.nginx.stop)
        cls.nginx.start()

        cls.cli("ca", "prepare")
        # The SDK identity learns the new bundle from the revocation stream's heartbeat.
        deadline = time.monotonic() + 5
        while len(pem_blocks(cls.keeper.bundle_pem)) != 2:
            if time.monotonic() > deadline:
                raise AssertionError("the SDK identity did not pick up the prepared authority")
            time.sleep(0.05)
        cls.cli("ca", "activate", "--force")
        cls.after = cli_agent(cls.server, "acme/fin/after", os.path.join(cls.tmp, "after"))
        cls.fresh = sdk_identity(cls.server, "acme/fin/fresh", spool)
        cls.addClassCleanup(close_quietly, cls.fresh)
        cls.new_bundle = cls.export_bundle("bundle-new.pem")

    @classmethod
    def cli(cls, *argv):
        r = tw(*argv, env=cli_env(cls.server, token=cls.server.admin_token()))
        if r.returncode != 0:
            raise AssertionError("trustwarden failed" + describe(r))
        return r

    @classmethod
    def export_bundle(cls, name):
        """`trustwarden bundle show --pem`, saved to a file (the same as the data directory's
        bundle.pem)."""
        pem = cls.cli("bundle", "show", "--pem").stdout
        if bundle_certs(pem) != bundle_certs(read_text(cls.server.bundle_pem)):
            raise AssertionError("bundle show --pem differs from the data directory's bundle.pem")
        return write_file(os.path.join(cls.tmp, name), pem)

    def serve(self, ctx):
        server = TlsServer(ctx)
        self.addCleanup(server.close)
        return server

    def test_1_the_new_authority_is_a_new_root_the_old_bundle_lacks(self):
        """OpenSSL's verify: the new SVID has another issuer, the old bundle.pem refuses it
        (error 20), the re-exported bundle (both roots) accepts both SVIDs."""
        old = bundle_certs(read_text(self.old_bundle))
        new = bundle_certs(read_text(self.new_bundle))
        self.assertEqual(len(old), 1)
        self.assertEqual(len(new), 2)
        self.assertTrue(set(old) < set(new), "the first root left the bundle")
        self.assertNotEqual(
            must([OPENSSL, "x509", "-noout", "-issuer", "-in", self.before.svid]).stdout,
            must([OPENSSL, "x509", "-noout", "-issuer", "-in", self.after.svid]).stdout)
        ok, out = openssl_verify(self.old_bundle, self.after.svid)
        self.assertFalse(ok, out)
        self.assertRegex(out, UNTRUSTED)
        for cred in (self.before, self.after):
            ok, out = openssl_verify(self.new_bundle, cred.svid)
            self.assertTrue(ok, out)

    def test_2_openssl_s_server_and_s_client(self):
        """s_server with the new SVID and the new bundle accepts s_client with the old SVID,
        which accepts it through the new bundle; s_client holding the old bundle refuses the
        new server; s_server holding the old bundle refuses the new client."""
        srv = OpenSslServer(self.tmp, self.after, self.new_bundle, "1.3")
        self.addCleanup(srv.stop)
        srv.start()
        r = s_client(srv.port, "1.3", self.new_bundle, self.before)
        self.assertIn("Verify return code: 0 (ok)", r.stdout, describe(r))
        page = r.stdout.split("Client certificate", 1)
        self.assertEqual(len(page), 2, describe(r))
        self.assertEqual(pem_to_der(pem_blocks(page[1])[0]), self.before.leaf_der)
        r = s_client(srv.port, "1.3", self.old_bundle, self.before)
        self.assertNotEqual(r.returncode, 0, describe(r))
        self.assertRegex(r.stdout + r.stderr, UNTRUSTED)

        old = OpenSslServer(self.tmp, self.before, self.old_bundle, "1.2")
        self.addCleanup(old.stop)
        old.start()
        r = s_client(old.port, "1.2", self.new_bundle, self.after)
        self.assertNotIn("Client certificate", r.stdout, describe(r))
        self.assertRegex(old.output(), UNTRUSTED)

    def test_3_nginx_accepts_the_new_svid_after_a_reload_with_the_new_bundle(self):
        """nginx with the old bundle as client CA refuses the new SVID (400); after `nginx -s
        reload` with the re-exported bundle it accepts it, and still the old one (curl), and
        the new SDK identity (http.client)."""
        self.nginx.set_client_ca(self.old_bundle)
        self.nginx.reload()
        before = len(self.upstream.seen)
        status, body, r = curl(self.nginx.port, self.new_bundle, self.after)
        self.assert_refused_by_nginx(status, body, "The SSL certificate error", self.upstream,
                                     before)
        self.assertRegex(read_text(self.nginx.error_log), UNTRUSTED)

        self.nginx.set_client_ca(self.new_bundle)
        self.nginx.reload()
        for cred in (self.after, self.before):
            with self.subTest(client=cred.spiffe_id):
                status, body, r = curl(self.nginx.port, self.new_bundle, cred)
                self.assertEqual(status, 200, describe(r))
                headers = self.forwarded(body, r)
                self.assertEqual(headers["x-nginx-generation"], str(self.nginx.generation))
                self.assert_reached_upstream_as(headers, cred.pem, cred.spiffe_id)
        conn = http.client.HTTPSConnection("127.0.0.1", self.nginx.port, timeout=10,
                                           context=self.fresh.ssl_context(peer=NGINX_ID))
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read().decode()
        finally:
            conn.close()
        self.assertEqual(resp.status, 200, body[:500])
        self.assert_reached_upstream_as(self.forwarded(body), self.fresh.svid_pem,
                                        self.fresh.spiffe_id)

    def test_4_curl_follows_the_bundle_file(self):
        """The server's own TLS certificate moved to the new authority at activation: curl
        --cacert with the old bundle.pem refuses it (exit 60), with the new one accepts it."""
        url = f"{self.server.url}/healthz"
        r = run([CURL, "-sS", "--max-time", "15", "--cacert", self.old_bundle, url])
        self.assertEqual(r.returncode, 60, describe(r))
        r = run([CURL, "-sS", "--max-time", "15", "--fail", "--cacert", self.new_bundle, url])
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(json.loads(r.stdout), {"status": "ok"})

    def test_5_python_ssl_follows_the_bundle_file(self):
        """Plain ssl contexts: holding the old bundle, a server refuses the new SVID and a
        client refuses the new SDK identity; holding the new one, both accept."""
        old_server = self.serve(plain_context(True, self.old_bundle, self.before))
        tls_get(plain_context(False, self.new_bundle, self.after), old_server.port)
        status, *rest = old_server.result()
        self.assertEqual(status, "error", f"the old bundle accepted the new SVID: {rest}")
        self.assertIsInstance(rest[0], ssl.SSLCertVerificationError)
        new_server = self.serve(plain_context(True, self.new_bundle, self.before))
        reply = tls_get(plain_context(False, self.new_bundle, self.after), new_server.port)
        self.assertIsInstance(reply, tuple, reply)
        self.assertEqual(new_server.result()[:2], ("ok", self.after.spiffe_id))

        sdk_server = self.serve(self.fresh.ssl_context(server_side=True))
        reply = tls_get(plain_context(False, self.old_bundle, self.after), sdk_server.port)
        self.assertIsInstance(reply, ssl.SSLCertVerificationError, reply)
        sdk_server.result()  # the refused handshake
        reply = tls_get(plain_context(False, self.new_bundle, self.after), sdk_server.port)
        self.assertIsInstance(reply, tuple, reply)
        self.assertEqual(reply[1], self.fresh.spiffe_id)
        self.assertEqual(sdk_server.result()[:2], ("ok", self.after.spiffe_id))

    def test_6_sdk_identities_follow_the_published_bundle(self):
        """keeper (first authority) holds the new bundle without being told; contexts made now
        accept across the generations: fresh to keeper, keeper to fresh, s_client with the
        new SVID to keeper."""
        self.assertEqual(bundle_certs(self.keeper.bundle_pem),
                         bundle_certs(read_text(self.new_bundle)))
        keeper_server = self.serve(self.keeper.ssl_context(server_side=True))
        reply = tls_get(self.fresh.ssl_context(peer=self.keeper.spiffe_id), keeper_server.port)
        self.assertIsInstance(reply, tuple, reply)
        self.assertEqual(keeper_server.result()[:2], ("ok", self.fresh.spiffe_id))
        fresh_server = self.serve(self.fresh.ssl_context(server_side=True))
        reply = tls_get(self.keeper.ssl_context(peer=self.fresh.spiffe_id), fresh_server.port)
        self.assertIsInstance(reply, tuple, reply)
        self.assertEqual(fresh_server.result()[:2], ("ok", self.keeper.spiffe_id))
        r = s_client(keeper_server.port, "1.3", self.new_bundle, self.after)
        self.assertIn("HTTP/1.1 200 OK", r.stdout, describe(r))
        self.assertEqual(keeper_server.result()[:2], ("ok", self.after.spiffe_id))

    def test_7_sdk_context_made_before_the_rotation_accepts_the_new_authority(self):
        """A server context made before `ca prepare` (a long-lived listener) accepts the new
        authority's SVIDs once its identity holds the new bundle: the context loads newly
        trusted authorities into OpenSSL's store at each connection, not only when made."""
        server = self.serve(self.keeper_server_ctx_before)
        reply = tls_get(self.fresh.ssl_context(peer=self.keeper.spiffe_id), server.port)
        self.assertEqual(server.result()[:2], ("ok", self.fresh.spiffe_id))
        self.assertIsInstance(reply, tuple, reply)
        r = s_client(server.port, "1.2", self.new_bundle, self.after)
        self.assertIn("HTTP/1.1 200 OK", r.stdout, describe(r))
        self.assertEqual(server.result()[:2], ("ok", self.after.spiffe_id))

    def test_8_a_revoked_authority_leaves_every_bundle_and_peer(self):
        """`ca revoke-authority 1`: the re-exported bundle holds the second root alone; OpenSSL's
        verify, nginx (reloaded with it), Python's ssl and the SDK's contexts (made after the
        revocation, or before it and still listening) then refuse the first authority's SVID
        and accept the second's."""
        # A listener made while the first authority was trusted: OpenSSL's store cannot forget
        # it, the SDK's peer check must.
        held = self.serve(self.fresh.ssl_context(server_side=True))
        tls_get(plain_context(False, self.new_bundle, self.before), held.port)
        self.assertEqual(held.result()[:2], ("ok", self.before.spiffe_id))

        self.cli("ca", "revoke-authority", "1")
        only_new = self.export_bundle("bundle-revoked.pem")
        self.assertEqual(bundle_certs(read_text(only_new)),
                         sorted(set(bundle_certs(read_text(self.new_bundle))) -
                                set(bundle_certs(read_text(self.old_bundle)))))
        self.assertFalse(openssl_verify(only_new, self.before.svid)[0])
        self.assertTrue(openssl_verify(only_new, self.after.svid)[0])

        # nginx still presents its first-authority SVID; curl trusts it through the old file,
        # what is tested is nginx's check of the client.
        self.nginx.set_client_ca(only_new)
        self.nginx.reload()
        before = len(self.upstream.seen)
        status, body, r = curl(self.nginx.port, self.old_bundle, self.before)
        self.assert_refused_by_nginx(status, body, "The SSL certificate error", self.upstream,
                                     before)
        status, body, r = curl(self.nginx.port, self.old_bundle, self.after)
        self.assertEqual(status, 200, describe(r))
        self.assert_reached_upstream_as(self.forwarded(body, r), self.after.pem,
                                        self.after.spiffe_id)

        plain = self.serve(plain_context(True, only_new, self.after))
        tls_get(plain_context(False, only_new, self.before), plain.port)
        self.assertEqual(plain.result()[0], "error")
        tls_get(plain_context(False, only_new, self.after), plain.port)
        self.assertEqual(plain.result()[:2], ("ok", self.after.spiffe_id))

        deadline = time.monotonic() + 5
        while len(pem_blocks(self.fresh.bundle_pem)) != 1:
            self.assertLess(time.monotonic(), deadline,
                            "the SDK identity kept the revoked authority in its bundle")
            time.sleep(0.05)
        for label, ctx in (("made now", self.fresh.ssl_context(server_side=True)),
                           ("made before the revocation", None)):
            with self.subTest(context=label):
                sdk_server = self.serve(ctx) if ctx is not None else held
                tls_get(plain_context(False, self.new_bundle, self.before), sdk_server.port)
                status, *rest = sdk_server.result()
                self.assertEqual(status, "error",
                                 f"the SDK accepted a revoked authority's SVID: {rest}")
                self.assertIsInstance(rest[0], ssl.SSLError)
                tls_get(plain_context(False, self.new_bundle, self.after), sdk_server.port)
                self.assertEqual(sdk_server.result()[:2], ("ok", self.after.spiffe_id))


if __name__ == "__main__":
    unittest.main(verbosity=2)
