"""The shared harness of the Python suites (tests/e2e, tests/interop): the trustwarden binary and
its CLI, real `trustwarden server` processes, an HTTPS client, agents, keys and CSRs, and the
ledger's wire formats (docs/ledger.md).

Servers listen on 127.0.0.1 port 0 and the harness reads their port from the line they print
(`trustwarden listening on https://HOST:PORT`); each runs on a temporary data directory and is
stopped by PID (SIGTERM, then SIGKILL), also at interpreter exit. Objects are not thread-safe
unless their docstring says otherwise. Only the standard library, python3-cryptography 38 (for keys,
CSRs and batch signatures only) and the `openssl` CLI are used.
"""

import atexit
import base64
import datetime
import errno
import functools
import hashlib
import http.client
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
import unittest

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:
    # The Python SDK's suites run under the interpreter its module was built for, which may
    # lack pyca/cryptography; they use none of the key, CSR and batch-signing helpers.
    x509 = hashes = serialization = ec = NameOID = None

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TW_BIN = os.environ.get("TW_BIN") or os.path.join(REPO, "build", "bin", "trustwarden")
OPENSSL = shutil.which("openssl") or "openssl"
UTC = datetime.timezone.utc

SOCKET_TIMEOUT = 10.0   # every HTTP request
START_TIMEOUT = 20.0    # from exec to the "listening" line and a 200 on /healthz
STOP_GRACE = 10.0       # SIGTERM -> SIGKILL
CLI_TIMEOUT = 60.0      # every CLI invocation
LISTENING_RE = re.compile(r"trustwarden listening on https://\S+:(\d+)")

# A policy entry that keeps admin's default rights, for policies that add other principals.
ADMIN_ENTRY = """
[principals.admin]
names = ["*/*/*"]
scopes = ["read:*", "write:*", "delete:*"]
max_ttl = "24h"
max_trust_level = "high"
may_delegate = true
max_depth = 3
"""


def require(*tools):
    """For setUpModule: RuntimeError unless TW_BIN is an executable file and every named tool is
    on PATH."""
    if not (os.path.isfile(TW_BIN) and os.access(TW_BIN, os.X_OK)):
        raise RuntimeError(f"TW_BIN={TW_BIN!r} is not an executable file (build it first)")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"not on PATH: {', '.join(missing)} (run scripts/bootstrap)")


# ---------------------------------------------------------------------------------------------
# Time, files, PEM
# ---------------------------------------------------------------------------------------------
def utcnow():
    return datetime.datetime.now(UTC)


def parse_time(text):
    """RFC 3339 -> aware datetime (accepts 'Z' and fractional seconds)."""
    if not isinstance(text, str):
        raise AssertionError(f"expected an RFC 3339 string, got {text!r}")
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if t.tzinfo is None:
        raise AssertionError(f"RFC 3339 time without offset: {text!r}")
    return t


def rfc3339(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_text(path):
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return f.read()


def write_file(path, data, mode=None):
    """Writes bytes or str to path (chmod to mode when given); returns path."""
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(path, mode)
    return path


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def pem_blocks(data, label="CERTIFICATE"):
    """The PEM blocks of `label` in data (str or bytes), as str without a final newline."""
    if isinstance(data, bytes):
        data = data.decode("ascii", "replace")
    return re.findall(rf"-----BEGIN {label}-----.+?-----END {label}-----", data, re.S)


def pem_to_der(block):
    body = "".join(line for line in block.splitlines() if line and not line.startswith("-----"))
    return base64.b64decode(body)


def der_to_pem(der, label="CERTIFICATE"):
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


# ---------------------------------------------------------------------------------------------
# Processes and the CLI
# ---------------------------------------------------------------------------------------------
def _retry_busy(start):
    """Calls start(), retrying ETXTBSY for a while: the binary may be replaced by a build."""
    for attempt in range(20):
        try:
            return start()
        except OSError as e:
            if e.errno != errno.ETXTBSY or attempt == 19:
                raise
            time.sleep(0.5)


def run(argv, env=None, cwd=None, timeout=CLI_TIMEOUT, stdin_text=None):
    """Runs argv to completion; stdout and stderr as text."""
    argv = [str(a) for a in argv]
    return _retry_busy(lambda: subprocess.run(
        argv, input=stdin_text, stdin=None if stdin_text is not None else subprocess.DEVNULL,
        capture_output=True, timeout=timeout, text=True, errors="replace", env=env, cwd=cwd))


def tw(*args, env=None, cwd=None, timeout=CLI_TIMEOUT):
    return run([TW_BIN, *args], env=env, cwd=cwd, timeout=timeout)


def describe(result):
    """A completed process as text for a failure message (stdout and stderr capped)."""
    return (f"\n$ {' '.join(map(str, result.args))}\nexit={result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}")


def tail(path, n=40):
    try:
        lines = read_text(path).splitlines()
    except OSError:
        return "(no output file)"
    return "\n".join(lines[-n:]) or "(empty)"


# ---------------------------------------------------------------------------------------------
# Keys and CSRs
# ---------------------------------------------------------------------------------------------
def new_key(curve=None):
    return ec.generate_private_key(curve or ec.SECP256R1())


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def make_csr(key=None, subject="e2e", uris=(), dns=(), ca=False):
    """PEM CSR for key (a new P-256 key when None). subject=None gives an empty subject."""
    key = key or new_key()
    name = x509.Name([]) if subject is None else x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    sans = [x509.UniformResourceIdentifier(u) for u in uris] + [x509.DNSName(d) for d in dns]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    digest = hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) and \
        key.curve.key_size == 384 else hashes.SHA256()
    return builder.sign(key, digest).public_bytes(serialization.Encoding.PEM).decode()


# ---------------------------------------------------------------------------------------------
# Ledger wire formats (docs/ledger.md) and the RFC 9162 §2.1.1 Merkle tree hash
# ---------------------------------------------------------------------------------------------
BATCH_MAGIC = b"trustwarden-ledger-batch-v1\x00"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(obj):
    """The canonical JSON bytes of an event: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def split_point(n):
    """The largest power of two strictly below n (n >= 2): where RFC 9162 splits a tree."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(hashes_):
    """RFC 9162 §2.1.1 Merkle tree hash over already-hashed leaves."""
    if len(hashes_) <= 1:
        return hashes_[0] if hashes_ else sha256(b"")
    k = split_point(len(hashes_))
    return node_hash(mth(hashes_[:k]), mth(hashes_[k:]))


def batch_message(raw_events):
    """What a batch signature signs: magic, the event count, the batch's Merkle root."""
    return (BATCH_MAGIC + len(raw_events).to_bytes(4, "big")
            + mth([leaf_hash(e) for e in raw_events]))


# ---------------------------------------------------------------------------------------------
# HTTPS client
# ---------------------------------------------------------------------------------------------
DEFAULT = object()  # an argument left at its default, where None means something else


class Response:
    """A complete HTTP response; headers with lower-case names."""

    def __init__(self, method, path, status, headers, body):
        self.method, self.path, self.status = method, path, status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @functools.cached_property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"{self}: body is not JSON ({e})") from None

    def __repr__(self):
        body = self.text
        if len(body) > 800:
            body = body[:800] + f"... ({len(self.body)} bytes)"
        return f"<{self.method} {self.path} -> {self.status} {body}>"

    __str__ = __repr__


class Client:
    """HTTPS client pinned to a bundle (cafile), with an optional bearer token and client
    certificate (mTLS). keep_alive reuses one connection (then one Client per thread)."""

    def __init__(self, port, cafile, token=None, cert=None, key=None, host="127.0.0.1",
                 timeout=SOCKET_TIMEOUT, keep_alive=False, min_version=None, max_version=None):
        self.port, self.cafile, self.token = port, cafile, token
        self.cert, self.key, self.host, self.timeout = cert, key, host, timeout
        self.keep_alive = keep_alive
        self.min_version, self.max_version = min_version, max_version
        self._ctx = None
        self._conn = None

    def with_token(self, token):
        return Client(self.port, self.cafile, token=token, cert=self.cert, key=self.key,
                      host=self.host, timeout=self.timeout)

    def context(self):
        if self._ctx is None:
            ctx = ssl.create_default_context(cafile=self.cafile)
            if self.min_version is not None:
                ctx.minimum_version = self.min_version
            if self.max_version is not None:
                ctx.maximum_version = self.max_version
            if self.cert:
                ctx.load_cert_chain(self.cert, self.key)
            self._ctx = ctx
        return self._ctx

    def connect(self, timeout=None):
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout or self.timeout,
                                           context=self.context())

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method, path, body=None, token=DEFAULT, headers=None):
        """body: bytes and str are sent as they are, anything else as JSON."""
        hdrs = dict(headers or {})
        token = self.token if token is DEFAULT else token
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in (0, 1):
            reused = self.keep_alive and self._conn is not None
            conn = self._conn if reused else self.connect()
            self._conn = None
            try:
                conn.request(method, path, body=data, headers=hdrs)
                r = conn.getresponse()
                payload = r.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                conn.close()
                # An idle keep-alive connection the server closed: retry GETs once, fresh.
                if reused and method == "GET" and attempt == 0:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            resp = Response(method, path, r.status, r.getheaders(), payload)
            if self.keep_alive and not r.will_close:
                self._conn = conn
            else:
                conn.close()
            return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def send_large(self, method, path, body, token=DEFAULT, chunk=64 * 1024):
        """Sends a body the server may refuse part-way: tolerates send errors and still reads
        the response."""
        token = self.token if token is DEFAULT else token
        conn = self.connect()
        try:
            conn.putrequest(method, path)
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
            if token is not None:
                conn.putheader("Authorization", f"Bearer {token}")
            conn.endheaders()
            send_error = None
            try:
                view = memoryview(body)
                for i in range(0, len(body), chunk):
                    conn.send(view[i:i + chunk])
            except (OSError, ssl.SSLError) as e:  # broken pipe / reset / timeout
                send_error = e
            try:
                r = conn.getresponse()
                payload = r.read()
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                raise AssertionError(
                    f"no HTTP response to {method} {path} with a {len(body)}-byte body "
                    f"(send error: {send_error!r}; receive error: {e!r})") from None
            return Response(method, path, r.status, r.getheaders(), payload)
        finally:
            conn.close()


# ---------------------------------------------------------------------------------------------
# Server processes
# ---------------------------------------------------------------------------------------------
_LIVE = set()


@atexit.register
def _kill_leftovers():
    for proc in list(_LIVE):
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


class TlsServer:
    """A TLS server thread on 127.0.0.1 port 0 with ctx: each connection gets the handshake,
    then, for a request, an HTTP reply whose body is the peer's SPIFFE ID (and the TLS
    version, with_version). Records ("ok", peer) (or ("ok", peer, version)) or ("error",
    exception) per connection. peer_of(conn) names the peer (default: the SDK's
    peer_spiffe_id); close_notify ends each connection with a TLS close_notify."""

    def __init__(self, ctx, peer_of=lambda conn: conn.peer_spiffe_id, with_version=False,
                 close_notify=False):
        self.ctx, self.peer_of = ctx, peer_of
        self.with_version, self.close_notify = with_version, close_notify
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.results = queue.Queue()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            raw.settimeout(10)
            try:
                conn = self.ctx.wrap_socket(raw, server_side=True)
            except Exception as e:  # noqa: BLE001 - recorded for the test
                self.results.put(("error", e))
                raw.close()
                continue
            try:
                peer = self.peer_of(conn)
                version = conn.version()
                self.results.put(("ok", peer, version) if self.with_version else ("ok", peer))
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    body = (f"{peer} {version}" if self.with_version else str(peer)).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (len(body), body))
                    if self.close_notify:
                        conn.unwrap()  # as OpenSSL 3 clients expect
            except Exception:  # noqa: BLE001 - the client went away
                pass
            finally:
                conn.close()

    def result(self, timeout=15):
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the TLS server saw no connection") from None

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)



def tls_exchange(ctx, port, peer_of=None):
    """Connects to 127.0.0.1:port with ctx and sends a request; returns the reply bytes
    (with peer_of(connection) and the TLS version, when peer_of is given), or the
    exception."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = None
    try:
        conn = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        about = (peer_of(conn), conn.version()) if peer_of is not None else ()
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return (data, *about) if about else data
            data += chunk
    except (OSError, ssl.SSLError) as e:
        return e
    finally:
        if conn is not None:
            conn.close()
        raw.close()

class Server:
    """One `trustwarden server` process on a data directory, on 127.0.0.1 port 0; restartable
    (each start gets a new port). trust_domain None: the server's default (or the config's).
    Output of run N goes to WORKDIR/server-N.{stdout,stderr}."""

    def __init__(self, workdir, data_dir=None, trust_domain=None, config=None, extra_args=()):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.data_dir = data_dir or os.path.join(workdir, "data")
        self.trust_domain = trust_domain
        self.config_path = None
        if config is not None:
            self.config_path = write_file(os.path.join(workdir, "config.toml"), config)
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.runs = 0
        self.argv = None

    @property
    def bundle_pem(self):
        return os.path.join(self.data_dir, "bundle.pem")

    @property
    def bundle_json(self):
        return os.path.join(self.data_dir, "bundle.json")

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def stdout_path(self, run):
        return os.path.join(self.workdir, f"server-{run}.stdout")

    def stderr_path(self, run):
        return os.path.join(self.workdir, f"server-{run}.stderr")

    def admin_token(self):
        return read_text(os.path.join(self.data_dir, "admin.token")).strip()

    def client(self, **kw):
        return Client(self.port, self.bundle_pem, **kw)

    def tls_socket(self, server_hostname="127.0.0.1", ctx=None, timeout=SOCKET_TIMEOUT):
        """A raw TLS connection to the server, verified against its bundle (or ctx)."""
        ctx = ctx or ssl.create_default_context(cafile=self.bundle_pem)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            return ctx.wrap_socket(raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise

    def spawn(self):
        """Starts the process and returns at once (see wait_listening)."""
        self.runs += 1
        self.port = None
        argv = [TW_BIN, "server", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"]
        if self.trust_domain:
            argv += ["--trust-domain", self.trust_domain]
        if self.config_path:
            argv += ["--config", self.config_path]
        self.argv = argv + self.extra_args
        with open(self.stdout_path(self.runs), "wb") as out, \
                open(self.stderr_path(self.runs), "wb") as err:
            self.proc = _retry_busy(lambda: subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir))
        _LIVE.add(self.proc)
        return self

    def wait_listening(self, timeout=START_TIMEOUT):
        """The port from the process's "listening" line; None if it exited or timed out first."""
        deadline = time.monotonic() + timeout
        while True:
            m = LISTENING_RE.search(read_text(self.stdout_path(self.runs)))
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def start(self):
        """Spawns the server and waits for its port and a 200 on /healthz; AssertionError with
        its output when it does not get there."""
        self.spawn()
        self.port = self.wait_listening()
        why = (f"exited with status {self.proc.poll()}" if self.proc.poll() is not None
               else f"no 'listening' line within {START_TIMEOUT:.0f}s")
        if self.port is not None:
            try:
                r = self.client().get("/healthz")
                if r.status == 200:
                    return self
                why = f"/healthz answered {r}"
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                why = f"/healthz failed: {e!r}"
        self.stop()
        raise AssertionError(
            f"the server did not start: {why}\n$ {' '.join(self.argv)}\n"
            f"--- stderr (tail) ---\n{tail(self.stderr_path(self.runs))}\n"
            f"--- stdout (tail) ---\n{tail(self.stdout_path(self.runs))}")

    def stop(self):
        """SIGTERM by PID, SIGKILL after STOP_GRACE; returns the exit status (None when there
        is no process: never started, or stopped already)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        _LIVE.discard(proc)
        return proc.returncode

    def kill9(self):
        """SIGKILL by PID, no grace."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
            _LIVE.discard(proc)


def cli_env(server, token=None, bundle=None):
    """The environment for a client command against server: no inherited TRUSTWARDEN_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTWARDEN_")}
    env["TRUSTWARDEN_SERVER"] = server.url
    env["TRUSTWARDEN_BUNDLE"] = bundle or server.bundle_json
    if token is not None:
        env["TRUSTWARDEN_TOKEN"] = token
    return env


# ---------------------------------------------------------------------------------------------
# Agents: instances a server created, with their key and SVID on disk
# ---------------------------------------------------------------------------------------------
def identity_body(name, scope=None, ttl=None, trust_level=None, csr=None, key=None, **extra):
    """A POST /v1/identities body; the CSR is made for key (or a new key) unless given."""
    body = {"name": name, "csr": csr or make_csr(key)}
    if scope is not None:
        body["scope"] = scope
    if ttl is not None:
        body["ttl"] = ttl
    if trust_level is not None:
        body["trust_level"] = trust_level
    body.update(extra)
    return body


def svid_inspect(path):
    """`trustwarden svid inspect --json` of an SVID file, parsed."""
    r = tw("svid", "inspect", path, "--json")
    if r.returncode != 0:
        raise AssertionError("svid inspect failed" + describe(r))
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError("svid inspect --json printed no JSON" + describe(r)) from None


def norm_serial(s):
    return str(s).lower().replace(":", "").lstrip("0")


class Agent:
    """An instance `server` created (doc: its creation reply), with its key and SVID written to
    directory; it signs and posts ledger batches as its own subject."""

    def __init__(self, server, doc, key, directory):
        self.server, self.doc, self.key = server, doc, key
        self.spiffe_id, self.instance_id = doc["spiffe_id"], doc["instance_id"]
        os.makedirs(directory, exist_ok=True)
        self.key_path = write_file(os.path.join(directory, "key.pem"), key_pem(key), 0o600)
        self.svid_path = write_file(os.path.join(directory, "svid.pem"), doc["svid_pem"])

    def client(self, **kw):
        """A client of the agent's server with the agent's SVID as client certificate."""
        return self.server.client(cert=self.svid_path, key=self.key_path, **kw)

    @functools.cached_property
    def info(self):
        """The SVID's attributes, from `svid inspect --json`."""
        return svid_inspect(self.svid_path)

    @functools.cached_property
    def cert_der(self):
        return pem_to_der(pem_blocks(self.doc["svid_pem"])[0])

    def event(self, type_="action", **fields):
        """A ledger event about this agent; fields override the defaults, None removes one."""
        i = self.info
        ev = {"v": 1, "id": "evt-" + secrets.token_hex(16), "time": int(time.time() * 1000),
              "type": type_, "instance": self.spiffe_id, "serial": i["serial"],
              "principal": i["principal"], "policy_version": int(i["policy_version"]),
              "parent": i.get("parent") or None}
        if type_ in ("action", "observation"):
            ev.update(resource="https://bank.example/tx", action="read:transactions",
                      decision="allow")
        if type_ == "outcome":
            ev.update(outcome="ok", ref="evt-" + "0" * 32)
        ev.update(fields)
        return {k: v for k, v in ev.items() if v is not None}

    def sign(self, raw_events, key=None):
        """The batch signature over raw_events, by key (default: the agent's)."""
        return (key or self.key).sign(batch_message(raw_events), ec.ECDSA(hashes.SHA256()))

    def post_events(self, raw_events, signature=None, client=None, **extra):
        """POST /v1/ledger/events with a batch of raw (canonical) events, signed by the agent
        unless signature is given, over client (default: the agent's mTLS)."""
        sig = signature if signature is not None else self.sign(raw_events)
        body = {"events": [b64u(e) for e in raw_events], "signature": b64u(sig), **extra}
        return (client or self.client()).post("/v1/ledger/events", body)


# ---------------------------------------------------------------------------------------------
# Base class: one server per test class
# ---------------------------------------------------------------------------------------------
class ServerTestCase(unittest.TestCase):
    """Starts a server for the class (TRUST_DOMAIN, CONFIG) on a temporary directory and
    removes both afterwards; `admin` and `anon` are clients of it."""
    TRUST_DOMAIN = None
    CONFIG = None
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=f"tw-{cls.__name__}-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.server = Server(cls.tmp, trust_domain=cls.TRUST_DOMAIN, config=cls.CONFIG)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.admin_token = cls.server.admin_token()
        cls.admin = cls.server.client(token=cls.admin_token)
        cls.anon = cls.server.client()
        cls._agent_seq = 0

    @classmethod
    def agent_dir(cls):
        cls._agent_seq += 1
        return os.path.join(cls.tmp, "agents", f"a{cls._agent_seq}")

    @classmethod
    def request_identity(cls, client, name, key=None, **kw):
        """POST /v1/identities; returns (response, key)."""
        key = key or new_key()
        return client.post("/v1/identities", identity_body(name, key=key, **kw)), key

    @classmethod
    def create_agent(cls, client, name, **kw):
        """An Agent created over client; AssertionError unless the server answers 201."""
        resp, key = cls.request_identity(client, name, **kw)
        if resp.status != 201:
            raise AssertionError(f"creating {name} failed: {resp}")
        return Agent(cls.server, resp.json, key, cls.agent_dir())

    @classmethod
    def apply_policy(cls, source):
        r = cls.admin.post("/v1/policies", {"source": source})
        if r.status != 201:
            raise AssertionError(f"applying policy failed: {r}")
        return r.json

    @classmethod
    def new_principal_token(cls, principal, force=True):
        """A token for principal; forced by default, since suites often make it before the
        policy that names the principal."""
        r = cls.admin.post("/v1/tokens", {"principal": principal, "force": force})
        if r.status != 201:
            raise AssertionError(f"creating a token for {principal} failed: {r}")
        return r.json["token"]

    def identity_count(self):
        r = self.admin.get("/v1/identities")
        self.assertEqual(r.status, 200, r)
        return len(r.json["identities"])

    def record(self, instance_id):
        r = self.admin.get(f"/v1/identities/{instance_id}")
        self.assertEqual(r.status, 200, r)
        return r.json

    def current_revocation_sequence(self):
        r = self.anon.get("/v1/revocations?after=0")
        self.assertEqual(r.status, 200, r)
        return r.json["sequence"]

    def revoke(self, client=None, expect=200, **target):
        r = (client or self.admin).post("/v1/revocations", target)
        self.assertEqual(r.status, expect, r)
        return r.json

    def assert_status(self, resp, status):
        statuses = status if isinstance(status, tuple) else (status,)
        self.assertIn(resp.status, statuses, f"expected {status}, got {resp}")

    def assert_error(self, resp, status, *secrets_):
        """A JSON error: expected status, {"error":{"code":non-empty string,"message":string}},
        and neither the admin token nor any of secrets_ in the body."""
        self.assert_status(resp, status)
        doc = resp.json
        self.assertIsInstance(doc, dict, resp)
        err = doc.get("error")
        self.assertIsInstance(err, dict, f"no error object: {resp}")
        self.assertIsInstance(err.get("code"), str, resp)
        self.assertTrue(err["code"], f"empty error code: {resp}")
        self.assertIsInstance(err.get("message"), str, resp)
        for secret in (self.admin_token, *secrets_):
            if secret:
                self.assertNotIn(secret, resp.text, "an error response contains a token")

    def assert_alive(self, after=""):
        """The server process still runs and answers /healthz."""
        self.assertIsNotNone(self.server.proc, "the server process is gone")
        rc = self.server.proc.poll()
        self.assertIsNone(rc, f"the server exited with status {rc} {after}\n--- stderr ---\n"
                              f"{tail(self.server.stderr_path(self.server.runs))}")
        try:
            r = self.anon.get("/healthz")
        except (OSError, ssl.SSLError, http.client.HTTPException) as e:
            self.fail(f"/healthz failed {after}: {e!r}")
        self.assertEqual(r.status, 200, f"/healthz {after}: {r}")

    def write_tmp(self, name, data, mode=None):
        """Writes a file private to the running test under the class's directory."""
        d = os.path.join(self.tmp, "files")
        os.makedirs(d, exist_ok=True)
        return write_file(os.path.join(d, f"{self.id().rsplit('.', 1)[-1]}-{name}"), data, mode)
