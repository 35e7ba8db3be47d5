#!/usr/bin/env python3
"""Third-party verifiers accept the X.509-SVIDs TrustWarden issues.

    TW_BIN=build/bin/trustwarden /usr/bin/python3 tests/interop/verifiers_test.py -v

What this proves: SVIDs made in each of the four ways TrustWarden makes them -- `svid issue`
from a root CA, from an intermediate CA, by `trustwarden server` for `agent create`, and by the
server for a delegated child over mTLS -- are parsed and accepted by code nobody on the team
wrote, and their private extension (TW_EXTENSION_OID, non-critical) is parsed, not merely
tolerated:

  * Go's crypto/x509 (standard library only), driven by go/svidverify, which follows go-spiffe
    v2's x509svid.Verify (SPIFFE.md §2.2);
  * pyca/cryptography 38, on the PEM bytes exactly as issued, plus the issuer's signature;
  * Java's `keytool -printcert` and the JDK's PKIX CertPathValidator (java/PkixVerify.java,
    revocation disabled, the bundle's certificates as trust anchors).

So that these tests can fail, the verifiers must also reject: a leaf checked against an
unrelated CA of the same trust domain name, a leaf outside the expected trust domain, and a
leaf past its notAfter.

Nothing is skipped: a missing `go`, `javac`, `java`, `keytool` or `openssl`, or a TW_BIN that is
not executable, is an error (scripts/bootstrap installs them all). Everything happens in
temporary directories; servers listen on 127.0.0.1 port 0 and are stopped by PID.
"""

import datetime
import os
import re
import secrets
import shutil
import sys
import tempfile
import unittest

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
import trustwarden_harness as harness  # noqa: E402
from trustwarden_harness import TW_BIN, UTC, pem_blocks, read_bytes, rfc3339, run  # noqa: E402

TW_EXTENSION_OID = "1.2.840.113556.1.8000.2554.16020.10140.60418.20114.34655.4233063.3621013.1"
PRESENT = "present (critical=false)"  # how both verifier programs report the extension
TD = "example.org"
WORK = None           # module temporary directory (built verifiers live here)


def must(argv, **kw):
    r = run(argv, **kw)
    if r.returncode != 0:
        raise AssertionError(f"$ {' '.join(argv)}\nexit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def setUpModule():
    global WORK
    harness.require("go", "javac", "java", "keytool", "openssl")
    WORK = tempfile.mkdtemp(prefix="tw-verifiers-")
    # Go: standard library only, nothing downloaded, caches inside WORK.
    env = dict(os.environ, HOME=WORK, GOCACHE=os.path.join(WORK, "gocache"),
               GOPATH=os.path.join(WORK, "gopath"), GOPROXY="off", GOFLAGS="", GO111MODULE="on",
               CGO_ENABLED="0")
    must(["go", "build", "-o", os.path.join(WORK, "svidverify"), "."],
         env=env, cwd=os.path.join(HERE, "go", "svidverify"))
    must(["javac", "-d", os.path.join(WORK, "java"), os.path.join(HERE, "java", "PkixVerify.java")])


def tearDownModule():
    if WORK:
        shutil.rmtree(WORK, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The verifiers
# ---------------------------------------------------------------------------------------------
def go_verify(bundle, chain, trust_domain=None, at=None):
    argv = [os.path.join(WORK, "svidverify"), "-bundle", bundle, "-chain", chain]
    if trust_domain:
        argv += ["-trust-domain", trust_domain]
    if at:
        argv += ["-at", rfc3339(at)]
    return run(argv)


def java_verify(bundle, chain, at=None):
    argv = ["java", "-cp", os.path.join(WORK, "java"), "PkixVerify", bundle, chain]
    if at:
        argv.append(rfc3339(at))
    return run(argv)


def not_after(chain):
    """notAfter of the leaf (cryptography 38 returns naive UTC)."""
    cert = x509.load_pem_x509_certificate(read_bytes(chain))
    return cert.not_valid_after.replace(tzinfo=UTC)


def issued_by(cert, issuer):
    """True when issuer's key verifies cert's signature: ECDSA, or RSA-PSS with a salt as long
    as the digest."""
    key = issuer.public_key()
    # pyca/cryptography 38 names no hash for RSASSA-PSS: ours is SHA-256 (PS256).
    pss = cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSASSA_PSS
    digest = hashes.SHA256() if pss else cert.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
                       digest)
        else:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(digest))
        return True
    except InvalidSignature:
        return False


def new_public_key(directory):
    key, pub = os.path.join(directory, "key.pem"), os.path.join(directory, "pub.pem")
    must(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
    must(["openssl", "pkey", "-in", key, "-pubout", "-out", pub])
    return pub


def instance_id():
    return "inst-" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(16))


def ca_init(out, trust_domain=TD, parent=None):
    argv = [TW_BIN, "ca", "init", "--out", out]
    argv += ["--parent", parent] if parent else ["--trust-domain", trust_domain]
    must(argv)
    return out


def svid_issue(ca, spiffe_id, pub, out, ttl="1h"):
    must([TW_BIN, "svid", "issue", "--ca", ca, "--spiffe-id", spiffe_id, "--public-key", pub,
          "--ttl", ttl, "--scope", "read:x", "--trust-level", "high", "--out", out])
    return out


# ---------------------------------------------------------------------------------------------
# A real `trustwarden server`
# ---------------------------------------------------------------------------------------------
def agent_create(server, name, out, parent_dir=None, ttl="10m"):
    """`trustwarden agent create` against server; returns the new SPIFFE ID."""
    argv = [TW_BIN, "agent", "create", "--name", name, "--scope", "read:x", "--ttl", ttl,
            "--out", out]
    if parent_dir:
        argv += ["--parent-dir", parent_dir]
    r = must(argv, env=harness.cli_env(server, token=server.admin_token()), cwd=server.workdir)
    return r.stdout.split()[0]  # the first word printed is the SPIFFE ID


# ---------------------------------------------------------------------------------------------
# The same four checks for every way of making an SVID
# ---------------------------------------------------------------------------------------------
class AcceptedByEveryVerifier:
    """Mixin: setUpClass sets chain (PEM, leaf first), bundle (PEM roots) and spiffe_id."""

    chain = bundle = spiffe_id = None
    intermediates = 0  # how many CA certificates follow the leaf in chain

    @classmethod
    def workdir(cls):
        d = tempfile.mkdtemp(prefix=f"tw-{cls.__name__}-", dir=WORK)
        cls.addClassCleanup(shutil.rmtree, d, True)
        return d

    def test_chain_shape(self):
        self.assertEqual(len(pem_blocks(read_bytes(self.chain))), 1 + self.intermediates)

    def test_go_crypto_x509(self):
        r = go_verify(self.bundle, self.chain, trust_domain=TD)
        self.assertEqual(r.returncode, 0, f"Go refused the SVID: {r.stderr.strip()}")
        self.assertEqual(r.stdout.splitlines(),
                         [self.spiffe_id, f"extension {TW_EXTENSION_OID}: {PRESENT}"])

    def test_pyca_cryptography(self):
        issued = read_bytes(self.chain)
        leaf = x509.load_pem_x509_certificate(issued)  # the first certificate, bytes as issued
        ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(TW_EXTENSION_OID))
        self.assertFalse(ext.critical)
        self.assertIsInstance(ext.value, x509.UnrecognizedExtension)
        self.assertGreater(len(ext.value.value), 0)
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.UniformResourceIdentifier), [self.spiffe_id])
        # Each certificate is signed by the next one, the last by a root of the bundle.
        chain = [x509.load_pem_x509_certificate(b.encode()) for b in pem_blocks(issued)]
        roots = [x509.load_pem_x509_certificate(b.encode())
                 for b in pem_blocks(read_bytes(self.bundle))]
        for cert, issuer in zip(chain, chain[1:]):
            self.assertTrue(issued_by(cert, issuer),
                            f"{cert.subject} is not signed by {issuer.subject}")
        self.assertTrue(any(issued_by(chain[-1], root) for root in roots),
                        "the chain's last certificate is not signed by a bundle root")

    def test_java_keytool(self):
        r = run(["keytool", "-printcert", "-file", self.chain])
        self.assertEqual(r.returncode, 0, f"keytool refused the SVID: {r.stdout}{r.stderr}")
        self.assertIn(f"ObjectId: {TW_EXTENSION_OID} Criticality=false", r.stdout)
        self.assertIn(f"URIName: {self.spiffe_id}", r.stdout)

    def test_java_pkix_cert_path_validator(self):
        r = java_verify(self.bundle, self.chain)
        self.assertEqual(r.returncode, 0, f"Java PKIX refused the SVID: {r.stderr.strip()}")
        self.assertEqual(r.stdout.splitlines(),
                         [f"URI {self.spiffe_id}", f"extension {TW_EXTENSION_OID}: {PRESENT}"])


class RootIssued(AcceptedByEveryVerifier, unittest.TestCase):
    """a. `svid issue` from a root CA made by `ca init`."""

    @classmethod
    def setUpClass(cls):
        d = cls.workdir()
        ca = ca_init(os.path.join(d, "ca"))
        cls.bundle = os.path.join(ca, "bundle.pem")
        cls.spiffe_id = f"spiffe://{TD}/acme/fin/payer/{instance_id()}"
        cls.chain = svid_issue(ca, cls.spiffe_id, new_public_key(d), os.path.join(d, "leaf.pem"))


class IntermediateIssued(AcceptedByEveryVerifier, unittest.TestCase):
    """b. `svid issue` from an intermediate (`ca init --parent`); the bundle is the root's."""

    intermediates = 1

    @classmethod
    def setUpClass(cls):
        d = cls.workdir()
        root = ca_init(os.path.join(d, "root"))
        intermediate = ca_init(os.path.join(d, "intermediate"), parent=root)
        cls.bundle = os.path.join(root, "bundle.pem")
        cls.spiffe_id = f"spiffe://{TD}/acme/fin/payer/{instance_id()}"
        cls.chain = svid_issue(intermediate, cls.spiffe_id, new_public_key(d),
                               os.path.join(d, "leaf.pem"))


class ServerIssued(AcceptedByEveryVerifier, unittest.TestCase):
    """c. `agent create` against a real server; the bundle is the server's bundle.pem."""

    @classmethod
    def setUpClass(cls):
        d = cls.workdir()
        cls.server = harness.Server(os.path.join(d, "server"), trust_domain=TD)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.bundle = cls.server.bundle_pem
        out = os.path.join(d, "payer")
        cls.spiffe_id = agent_create(cls.server, "acme/fin/payer", out)
        cls.chain = os.path.join(out, "svid.pem")

    def test_spiffe_id_names_the_agent(self):
        self.assertRegex(self.spiffe_id, rf"^spiffe://{re.escape(TD)}/acme/fin/payer/inst-")


class Delegated(AcceptedByEveryVerifier, unittest.TestCase):
    """d. `agent create --parent-dir`: a child SVID the server issues over the parent's mTLS."""

    @classmethod
    def setUpClass(cls):
        d = cls.workdir()
        cls.server = harness.Server(os.path.join(d, "server"), trust_domain=TD)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.bundle = cls.server.bundle_pem
        parent = os.path.join(d, "parent")
        cls.parent_id = agent_create(cls.server, "acme/fin/payer", parent)
        child = os.path.join(d, "child")
        # A child may not outlive its parent's remaining lifetime.
        cls.spiffe_id = agent_create(cls.server, "acme/fin/child", child, parent_dir=parent,
                                                ttl="5m")
        cls.chain = os.path.join(child, "svid.pem")

    def test_child_is_a_new_identity(self):
        self.assertRegex(self.spiffe_id, rf"^spiffe://{re.escape(TD)}/acme/fin/child/inst-")
        self.assertNotEqual(self.spiffe_id, self.parent_id)


class UpstreamHsmIssued(AcceptedByEveryVerifier, unittest.TestCase):
    """e. A server in upstream mode whose intermediate CA key is in a SoftHSM2 token: the root
    made by `ca init` signs the intermediate (`ca request-intermediate`, `ca
    sign-intermediate`); the bundle is the root's alone, and the SVID carries the
    intermediate."""

    intermediates = 1
    SOFTHSM = os.environ.get("TW_SOFTHSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
    KEY_TYPE = "ec-p256"

    @classmethod
    def setUpClass(cls):
        harness.require("softhsm2-util")
        d = cls.workdir()
        os.makedirs(os.path.join(d, "tokens"))
        conf = harness.write_file(os.path.join(d, "softhsm2.conf"),
                                  f"directories.tokendir = {d}/tokens\n")
        os.environ["SOFTHSM2_CONF"] = conf  # this process's children: the CLI and the server
        must(["softhsm2-util", "--init-token", "--free", "--label", "up", "--so-pin",
              "87654321", "--pin", "123456"])
        pin = harness.write_file(os.path.join(d, "pin"), "123456\n", 0o600)
        must([TW_BIN, "hsm", "init", "--module", cls.SOFTHSM, "--token", "up", "--pin-file", pin,
              "--key-type", cls.KEY_TYPE])
        q = f"?module-path={cls.SOFTHSM}&pin-source=file:{pin}"
        keys = {k: f"pkcs11:token=up;object=trustwarden-{k}{q}" for k in ("ca", "jwt", "ledger")}
        root = ca_init(os.path.join(d, "root"))
        csr = os.path.join(d, "intermediate.csr")
        must([TW_BIN, "ca", "request-intermediate", "--key", keys["ca"], "--out", csr])
        chain = os.path.join(d, "chain.pem")
        must([TW_BIN, "ca", "sign-intermediate", "--ca", root, "--csr", csr, "--out", chain])
        cls.server = harness.Server(os.path.join(d, "server"), trust_domain=TD, extra_args=[
            "--ca-key", keys["ca"], "--jwt-key", keys["jwt"], "--ledger-key", keys["ledger"],
            "--upstream-chain", chain])
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.bundle = os.path.join(root, "bundle.pem")
        out = os.path.join(d, "payer")
        cls.spiffe_id = agent_create(cls.server, "acme/fin/payer", out)
        cls.chain = os.path.join(out, "svid.pem")

    def test_openssl_verify_with_the_root_alone(self):
        r = run(["openssl", "verify", "-CAfile", self.bundle, "-untrusted", self.chain,
                 self.chain])
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertEqual(len(pem_blocks(read_bytes(self.bundle))), 1, "the bundle is the root")

    def test_the_server_publishes_the_root_not_the_intermediate(self):
        self.assertEqual(read_bytes(self.server.bundle_pem), read_bytes(self.bundle))


class UpstreamHsmIssuedRsaPss(UpstreamHsmIssued):
    """f. The same with the intermediate's key RSA-3072 in the token: the intermediate signs
    the SVID with RSA-PSS (the root's ECDSA signs the intermediate's PSS-signed request)."""

    KEY_TYPE = "rsa-3072"

    def test_the_svid_is_signed_with_rsa_pss(self):
        leaf = x509.load_pem_x509_certificate(read_bytes(self.chain))
        self.assertEqual(leaf.signature_algorithm_oid, x509.SignatureAlgorithmOID.RSASSA_PSS)


# ---------------------------------------------------------------------------------------------
# Negative cases: the same verifiers do reject
# ---------------------------------------------------------------------------------------------
class Rejections(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        d = tempfile.mkdtemp(prefix="tw-Rejections-", dir=WORK)
        cls.addClassCleanup(shutil.rmtree, d, True)
        ca = ca_init(os.path.join(d, "ca"))
        cls.bundle = os.path.join(ca, "bundle.pem")
        # Same trust domain name, different key: only its own leaves chain to it.
        cls.unrelated_bundle = os.path.join(ca_init(os.path.join(d, "unrelated")), "bundle.pem")
        pub = new_public_key(d)
        cls.spiffe_id = f"spiffe://{TD}/acme/fin/payer/{instance_id()}"
        cls.leaf = svid_issue(ca, cls.spiffe_id, pub, os.path.join(d, "leaf.pem"))
        cls.short = svid_issue(ca, f"spiffe://{TD}/acme/fin/payer/{instance_id()}", pub,
                               os.path.join(d, "short.pem"), ttl="1m")

    def assertRejected(self, r, reason):
        self.assertEqual(r.returncode, 1, f"accepted: {r.stdout}")
        self.assertIn(reason, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_control_accepted(self):
        r = go_verify(self.bundle, self.leaf, trust_domain=TD)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_go_rejects_unrelated_ca(self):
        self.assertRejected(go_verify(self.unrelated_bundle, self.leaf, trust_domain=TD),
                            "x509: certificate signed by unknown authority")

    def test_go_rejects_other_trust_domain(self):
        self.assertRejected(go_verify(self.bundle, self.leaf, trust_domain="other.org"),
                            'is not a member of trust domain "other.org"')

    def test_go_rejects_expired_leaf(self):
        end = not_after(self.short)
        r = go_verify(self.bundle, self.short, at=end - datetime.timedelta(seconds=1))
        self.assertEqual(r.returncode, 0, f"valid just before notAfter: {r.stderr}")
        r = go_verify(self.bundle, self.short, at=end + datetime.timedelta(seconds=1))
        self.assertRejected(r, "x509: certificate has expired or is not yet valid")

    def test_java_rejects_unrelated_ca(self):
        self.assertRejected(java_verify(self.unrelated_bundle, self.leaf),
                            "CertPathValidatorException")

    def test_java_rejects_expired_leaf(self):
        end = not_after(self.short)
        self.assertEqual(java_verify(self.bundle, self.short,
                                     at=end - datetime.timedelta(seconds=1)).returncode, 0)
        r = java_verify(self.bundle, self.short, at=end + datetime.timedelta(seconds=1))
        self.assertRejected(r, "validity check failed")

    def test_pyca_signature_fails_against_unrelated_root(self):
        leaf = x509.load_pem_x509_certificate(read_bytes(self.leaf))
        unrelated = x509.load_pem_x509_certificate(read_bytes(self.unrelated_bundle))
        self.assertFalse(issued_by(leaf, unrelated))


if __name__ == "__main__":
    unittest.main()
