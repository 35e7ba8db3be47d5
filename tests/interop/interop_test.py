#!/usr/bin/env python3
"""Interoperability tests: the trustwarden CLI against OpenSSL, pyca/cryptography and PyJWT.

    TW_BIN=build/bin/trustwarden /usr/bin/python3 tests/interop/interop_test.py -v

Uses only the standard library, python3-cryptography (38), python3-jwt (PyJWT 2.6) and the
`openssl` CLI. Every test creates its own CA in its own temporary directory; nothing is
skipped (a missing or unusable TW_BIN is an error). Section numbers refer to
/work/shared/SPIFFE.md; the CLI contract is the CLI section of /work/shared/API.md.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import stat
import sys
import tempfile
import unittest
from collections import namedtuple

import jwt  # PyJWT
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import trustwarden_harness as harness  # noqa: E402
from trustwarden_harness import (  # noqa: E402
    OPENSSL, UTC, b64u, der_to_pem, describe, new_key, pem_blocks, pem_to_der, read_bytes,
    rfc3339, run, tw, unb64u, write_file)

# ---------------------------------------------------------------------------------------------
# Rejection reasons: the substring of stderr that names why each case is refused, one specific
# message per reason. Reconcile these with the implementation's messages here, in one place.
# ---------------------------------------------------------------------------------------------
REASONS = {
    # svid verify (SPIFFE.md §2.2, §2.3)
    "no_uri_san": "leaf must have exactly one URI SAN (it has 0)",
    "many_uri_sans": "leaf must have exactly one URI SAN (it has 2)",
    "not_spiffe_scheme": "leaf URI SAN: SPIFFE ID: scheme must be 'spiffe://'",
    "root_id": "leaf SPIFFE ID has no path",
    "uppercase_trust_domain": "leaf URI SAN: SPIFFE ID: trust domain must be lowercase",
    "leaf_dot_segment": "leaf URI SAN: SPIFFE ID: path has a '.' or '..' segment",
    "leaf_is_ca": "leaf is a CA (cA=true)",
    "leaf_key_cert_sign": "leaf has the keyCertSign key usage",
    "leaf_crl_sign": "leaf has the cRLSign key usage",
    "leaf_no_digital_signature": "leaf lacks the digitalSignature key usage",
    "expired": "leaf expired at",
    "intermediate_expired": "intermediate CA expired at",
    "not_yet_valid": "leaf is not yet valid",
    "wrong_trust_domain": "no bundle for trust domain",
    "untrusted_signer": "no path to an authority of trust domain",
    "bad_signature": "a signature does not verify against the bundle authority",
    "intermediate_not_ca": "intermediate CA is not a CA (cA=false)",
    "intermediate_no_key_cert_sign": "intermediate CA lacks the keyCertSign key usage",
    "unknown_critical_extension": "leaf has an unsupported critical extension",
    "empty_chain": "no certificate",
    # svid issue refusals (SPIFFE.md §2.1)
    "issue_root_id": "a leaf SVID's SPIFFE ID needs a path",
    "issue_foreign_trust_domain": "is not in trust domain example.org",
    "issue_invalid_id": "path has a '.' or '..' segment",
    "issue_bad_csr_signature": "CSR: its signature does not verify",
    # jwt verify (SPIFFE.md §3.2, §3.3)
    "jwt_alg_none": 'algorithm "none" is not allowed',
    "jwt_alg_hs256": 'algorithm "HS256" is not allowed',
    "jwt_alg_not_the_keys": "does not fit the key",
    "jwt_audience": "is not in aud",
    "jwt_expired": "token expired",
    "jwt_missing_sub": "sub is missing",
    "jwt_sub_not_spiffe_id": "sub: SPIFFE ID: scheme must be 'spiffe://'",
    "jwt_missing_exp": "exp is missing",
    "jwt_not_yet_valid": "token is not yet valid (nbf)",
    "jwt_typ": "typ must be JWT or JOSE",
    "jwt_crit": 'header member "crit" is not allowed',
    "jwt_unknown_kid": 'no JWT authority with kid "not-in-the-bundle"',
    "jwt_bad_signature": "signature does not verify",
    "jwt_missing_aud": "aud is missing",
    "jwt_wrong_trust_domain": 'no bundle for trust domain "other.example"',
    # id check (SPIFFE.md §1.2)
    "id_empty": "SPIFFE ID: is empty",
    "id_scheme": "scheme must be 'spiffe://'",
    "id_scheme_case": "scheme must be lowercase",
    "id_trust_domain_missing": "trust domain is missing",
    "id_trust_domain_percent": "trust domain contains '%'",
    "id_trust_domain_port": "trust domain contains ':' (a port is not allowed)",
    "id_trust_domain_userinfo": "trust domain contains '@' (userinfo is not allowed)",
    "id_trust_domain_char": "trust domain contains the invalid character",
    "id_trust_domain_case": "trust domain must be lowercase",
    "id_trust_domain_too_long": "trust domain is longer than 255 bytes",
    "id_path_percent": "path contains '%'",
    "id_path_char": "path contains the invalid character",
    "id_dot_segment": "path has a '.' or '..' segment",
    "id_query": "a query is not allowed",
    "id_fragment": "a fragment is not allowed",
    "id_trailing_slash": "path has a trailing '/'",
    "id_empty_segment": "path has an empty segment",
    "id_too_long": "is longer than 2048 bytes",
}

# TrustWarden's private certificate extension (DESIGN.md "Identity model").
TW_EXTENSION_OID = "1.2.840.113556.1.8000.2554.16020.10140.60418.20114.34655.4233063.3621013.1"
# DER (tag, length, contents) of that OID.
TW_EXTENSION_OID_DER = bytes.fromhex(
    "0621" "2a864886f71401be40937afd14cf1c83d802819d12828e5f8282ae6781dd811501")

TD = "example.org"
OTHER_TD = "other.example"
LEAF_ID = "spiffe://example.org/acme-corp/finance-team/payment-processor/inst-x7k2mq4p9d3b"
OTHER_TD_ID = "spiffe://other.example/acme-corp/finance-team/payment-processor/inst-0000000001"
AUDIENCE = "spiffe://example.org/ledger-api"
SCOPES = ("read:transactions", "write:ledger")
TRUST_LEVEL = "high"
JWT_ALGS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]


def setUpModule():
    harness.require("openssl")


# ---------------------------------------------------------------------------------------------
# Small helpers: time, certificates, keys
# ---------------------------------------------------------------------------------------------
def now():
    return datetime.datetime.now(UTC).replace(microsecond=0)


def aware(t):
    """cryptography 38 returns naive UTC datetimes."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def hash_for(key):
    size = key.curve.key_size if isinstance(key, (ec.EllipticCurvePrivateKey,
                                                  ec.EllipticCurvePublicKey)) else 256
    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[size]


# ---------------------------------------------------------------------------------------------
# Certificate builder
# ---------------------------------------------------------------------------------------------
LEAF_KEY_USAGE = frozenset({"digital_signature"})
CA_KEY_USAGE = frozenset({"key_cert_sign", "crl_sign"})
KEY_USAGE_FLAGS = ("digital_signature", "content_commitment", "key_encipherment",
                   "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                   "encipher_only", "decipher_only")
DEFAULT_SUBJECT = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Interop Test")])


def make_cert(*, issuer_key, public_key, issuer_cert=None, uris=(LEAF_ID,), dns_names=(),
              subject=DEFAULT_SUBJECT, is_ca=False, basic_constraints=True,
              key_usage=LEAF_KEY_USAGE, eku=True, not_before=None, not_after=None,
              san_critical=False, extra_extensions=(), aki=True, ski=None):
    """Builds and signs one certificate. Defaults give a conformant X.509-SVID leaf.

    issuer_cert supplies the issuer name and the AuthorityKeyIdentifier (None = self-signed);
    issuer_key signs (it may deliberately not belong to issuer_cert). key_usage is a set of
    cryptography KeyUsage flag names, or None to omit the extension. extra_extensions is a
    sequence of (ExtensionType, critical).
    """
    t = now()
    not_before = not_before or t - datetime.timedelta(minutes=1)
    not_after = not_after or t + datetime.timedelta(hours=1)
    b = (x509.CertificateBuilder()
         .subject_name(subject)
         .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
         .public_key(public_key)
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before)
         .not_valid_after(not_after))
    if basic_constraints:
        b = b.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    if key_usage is not None:
        unknown = set(key_usage) - set(KEY_USAGE_FLAGS)
        if unknown:
            raise ValueError(f"unknown KeyUsage flags {sorted(unknown)}")
        b = b.add_extension(x509.KeyUsage(**{f: f in key_usage for f in KEY_USAGE_FLAGS}),
                            critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
                            critical=False)
    names = [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.DNSName(d) for d in dns_names]
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=san_critical)
    if is_ca if ski is None else ski:  # SKI defaults to CA certificates only
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    if aki and issuer_cert is not None:
        try:
            issuer_ski = issuer_cert.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier).value
            value = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)
        except x509.ExtensionNotFound:
            value = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())
        b = b.add_extension(value, critical=False)
    for ext, critical in extra_extensions:
        b = b.add_extension(ext, critical=critical)
    return b.sign(issuer_key, hash_for(issuer_key))


def flip_last_byte(cert):
    """Flips one bit in the last byte of the DER: the low byte of the ECDSA signature's s."""
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    return bytes(der)


# ---------------------------------------------------------------------------------------------
# A CA made by `trustwarden ca init`
# ---------------------------------------------------------------------------------------------
Ca = namedtuple("Ca", "dir td cert key bundle_json bundle_pem jwt_key kid")


class InteropTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="tw-interop-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    # --- running the CLI -----------------------------------------------------------------
    def tw_ok(self, *args):
        result = tw(*args)
        self.assertEqual(result.returncode, 0, "command failed" + describe(result))
        return result

    def assert_accepted(self, result, spiffe_id):
        self.assertEqual(result.returncode, 0, "expected acceptance" + describe(result))
        self.assertEqual(result.stdout.strip(), spiffe_id,
                         "stdout must be exactly the SPIFFE ID" + describe(result))

    def assert_rejected(self, result, reason, *claimed_ids):
        """Exit code 1, REASONS[reason] on stderr, and no claimed SPIFFE ID on stdout."""
        self.assertEqual(result.returncode, 1, "expected rejection (exit 1)" + describe(result))
        for spiffe_id in claimed_ids:
            if spiffe_id:
                self.assertNotIn(spiffe_id, result.stdout,
                                 "rejected ID printed on stdout" + describe(result))
        self.assertIn(REASONS[reason], result.stderr,
                      f"stderr does not give reason {reason!r}" + describe(result))

    # --- CA and issuance -------------------------------------------------------------------
    def init_ca(self, td=TD, key_type=None, name=None):
        out = self.path(name or f"ca-{td}")
        args = ["ca", "init", "--trust-domain", td, "--out", out]
        if key_type:
            args += ["--key-type", key_type]
        self.tw_ok(*args)
        ca_cert = x509.load_pem_x509_certificate(read_bytes(os.path.join(out, "ca.pem")))
        ca_key = serialization.load_pem_private_key(read_bytes(os.path.join(out, "ca.key.pem")),
                                                    None)
        jwt_key = serialization.load_pem_private_key(read_bytes(os.path.join(out, "jwt.key.pem")),
                                                     None)
        bundle = json.loads(read_bytes(os.path.join(out, "bundle.json")))
        jwt_entries = [k for k in bundle.get("keys", []) if k.get("use") == "jwt-svid"]
        kid = jwt_entries[0].get("kid") if jwt_entries else None
        return Ca(out, td, ca_cert, ca_key, os.path.join(out, "bundle.json"),
                  os.path.join(out, "bundle.pem"), jwt_key, kid)

    def write_public_key(self, key, name="pub.pem", encoding=serialization.Encoding.PEM):
        data = key.public_key().public_bytes(encoding,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        return write_file(self.path(name), data)

    def write_csr(self, key, name="csr.pem", encoding=serialization.Encoding.PEM,
                  subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent")])):
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hash_for(key))
        return write_file(self.path(name), csr.public_bytes(encoding))

    def openssl_csr(self, name="openssl"):
        key_path, csr_path = self.path(f"{name}.key.pem"), self.path(f"{name}.csr.pem")
        result = run([OPENSSL, "req", "-new", "-newkey", "ec",
                      "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key_path,
                      "-out", csr_path, "-subj", "/O=Interop/CN=openssl-agent"])
        self.assertEqual(result.returncode, 0, describe(result))
        key = serialization.load_pem_private_key(read_bytes(key_path), None)
        return csr_path, key

    def issue(self, ca, source_args, spiffe_id=LEAF_ID, ttl="30m", scopes=SCOPES,
              trust_level=TRUST_LEVEL, name="svid.pem"):
        out = self.path(name)
        args = ["svid", "issue", "--ca", ca.dir, "--spiffe-id", spiffe_id, *source_args,
                "--ttl", ttl]
        for s in scopes:
            args += ["--scope", s]
        if trust_level:
            args += ["--trust-level", trust_level]
        self.tw_ok(*args, "--out", out)
        return out

    def issue_sources(self, ca):
        """(label, issue args, private key) for every way of presenting a key to `svid issue`."""
        sources = []
        k = new_key()
        sources.append(("public key PEM", ["--public-key", self.write_public_key(k, "k1.pem")], k))
        k = new_key()
        sources.append(("public key DER", ["--public-key", self.write_public_key(
            k, "k2.der", serialization.Encoding.DER)], k))
        k = new_key()
        sources.append(("cryptography CSR PEM", ["--csr", self.write_csr(k, "c1.pem")], k))
        k = new_key()
        sources.append(("cryptography CSR DER", ["--csr", self.write_csr(
            k, "c2.der", serialization.Encoding.DER)], k))
        k = new_key()
        sources.append(("CSR with an empty subject", ["--csr", self.write_csr(
            k, "c3.pem", subject=x509.Name([]))], k))
        csr_path, k = self.openssl_csr()
        sources.append(("openssl req CSR", ["--csr", csr_path], k))
        return sources

    def issued_leaves(self, ca):
        """Issues one SVID per key source; yields (label, chain path, private key)."""
        for i, (label, args, key) in enumerate(self.issue_sources(ca)):
            yield label, self.issue(ca, args, name=f"svid-{i}.pem"), key

    def split_chain(self, chain_path):
        certs = pem_blocks(read_bytes(chain_path))
        self.assertGreaterEqual(len(certs), 1, f"no certificate in {chain_path}")
        leaf = write_file(chain_path + ".leaf", certs[0] + "\n")
        rest = write_file(chain_path + ".rest", "\n".join(certs[1:]) + "\n") \
            if len(certs) > 1 else None
        return leaf, rest

    def openssl_verify(self, ca, chain_path, *extra):
        leaf, rest = self.split_chain(chain_path)
        argv = [OPENSSL, "verify", *extra, "-CAfile", ca.bundle_pem]
        if rest:
            argv += ["-untrusted", rest]
        return run(argv + [leaf])

    def openssl_fields(self, chain_path):
        """serial, notBefore and notAfter of the chain's leaf, read by the openssl CLI."""
        leaf, _ = self.split_chain(chain_path)
        result = run([OPENSSL, "x509", "-in", leaf, "-noout", "-serial", "-startdate",
                      "-enddate", "-dateopt", "iso_8601"])
        self.assertEqual(result.returncode, 0, describe(result))
        fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        parse = lambda v: datetime.datetime.strptime(v.strip(), "%Y-%m-%d %H:%M:%SZ").replace(
            tzinfo=UTC)
        return int(fields["serial"], 16), parse(fields["notBefore"]), parse(fields["notAfter"])

    def load_leaf(self, chain_path):
        """Parses the first certificate of a chain with pyca/cryptography, byte for byte as
        issued (Debian 12's cryptography 38 refuses OID arcs of 2^31 or more)."""
        der = pem_to_der(pem_blocks(read_bytes(chain_path))[0])
        self.assertEqual(der.count(TW_EXTENSION_OID_DER), 1, "extension OID present once")
        return x509.load_der_x509_certificate(der)

    # --- crafted chains ----------------------------------------------------------------------
    def write_chain(self, *certs, name="chain.pem"):
        """Writes certificates (objects, or PEM text) into one chain file."""
        return write_file(self.path(name), b"".join(
            c.encode() if isinstance(c, str) else cert_pem(c) for c in certs))

    def craft_leaf(self, ca, name="chain.pem", **kwargs):
        """A leaf signed directly by the CA key (overridable), written as a chain file."""
        kwargs.setdefault("issuer_cert", ca.cert)
        kwargs.setdefault("issuer_key", ca.key)
        kwargs.setdefault("public_key", new_key().public_key())
        return self.write_chain(make_cert(**kwargs), name=name)

    def make_intermediate(self, ca, **kwargs):
        key = new_key()
        kwargs.setdefault("uris", (f"spiffe://{ca.td}",))
        kwargs.setdefault("is_ca", True)
        kwargs.setdefault("key_usage", CA_KEY_USAGE)
        kwargs.setdefault("eku", False)
        kwargs.setdefault("ski", True)
        kwargs.setdefault("subject", x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Interop Intermediate")]))
        cert = make_cert(issuer_cert=ca.cert, issuer_key=ca.key, public_key=key.public_key(),
                         **kwargs)
        return cert, key

    def craft_via_intermediate(self, ca, intermediate_kwargs=None, name="chain.pem",
                               **leaf_kwargs):
        """Leaf signed by a crafted intermediate; chain file = leaf, then intermediate."""
        inter, inter_key = self.make_intermediate(ca, **(intermediate_kwargs or {}))
        leaf = make_cert(issuer_cert=inter, issuer_key=inter_key,
                         public_key=new_key().public_key(), **leaf_kwargs)
        return self.write_chain(leaf, inter, name=name)

    def svid_verify(self, bundle, chain, *options):
        return tw("svid", "verify", "--bundle", bundle, *options, chain)

    # --- JWTs --------------------------------------------------------------------------------
    def jwt_claims(self, ca, **overrides):
        t = int(now().timestamp())
        claims = {"sub": LEAF_ID, "aud": [AUDIENCE], "exp": t + 300, "iat": t}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def craft_jwt(self, ca, claims=None, headers="default", key=None, alg=None):
        """Signs with DIR/jwt.key.pem via PyJWT. headers=None sends only alg and typ JWT."""
        if headers == "default":
            headers = {"kid": ca.kid}
        key = key or ca.jwt_key
        if alg is None and isinstance(key, rsa.RSAPrivateKey):
            alg = "RS256"
        elif alg is None:
            alg = {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
        return jwt.encode(self.jwt_claims(ca) if claims is None else claims, key,
                          algorithm=alg, headers=headers)

    def jwt_verify(self, ca, token, *options, audience=AUDIENCE):
        return tw("jwt", "verify", "--bundle", ca.bundle_json, *options, "--audience", audience,
                  token)

    def bundle_jwk(self, ca, kid):
        bundle = json.loads(read_bytes(ca.bundle_json))
        matches = [k for k in bundle["keys"] if k.get("use") == "jwt-svid" and k.get("kid") == kid]
        self.assertEqual(len(matches), 1, f"exactly one jwt-svid JWK with kid {kid!r}")
        return matches[0]


# =============================================================================================
# 1. `ca init` outputs and issuance interop
# =============================================================================================
class CaInitTest(InteropTestCase):

    def test_private_keys_are_pkcs8_pem_mode_0600(self):
        ca = self.init_ca()
        for name in ("ca.key.pem", "jwt.key.pem"):
            with self.subTest(file=name):
                p = os.path.join(ca.dir, name)
                self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600)
                self.assertIn(b"-----BEGIN PRIVATE KEY-----", read_bytes(p))

    def test_ca_certificate_is_a_spiffe_signing_certificate(self):
        ca = self.init_ca()
        ext = ca.cert.extensions
        bc = ext.get_extension_for_class(x509.BasicConstraints)
        self.assertTrue(bc.critical)
        self.assertTrue(bc.value.ca)
        ku = ext.get_extension_for_class(x509.KeyUsage)
        self.assertTrue(ku.critical)
        self.assertTrue(ku.value.key_cert_sign)
        uris = ext.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.UniformResourceIdentifier)
        self.assertEqual(uris, [f"spiffe://{TD}"])
        self.assertEqual(ca.cert.issuer, ca.cert.subject)
        ca.cert.public_key().verify(ca.cert.signature, ca.cert.tbs_certificate_bytes,
                                    ec.ECDSA(ca.cert.signature_hash_algorithm))

    def test_bundle_json_x509_authority_is_the_ca_certificate(self):
        ca = self.init_ca()
        entries = [k for k in json.loads(read_bytes(ca.bundle_json))["keys"]
                   if k.get("use") == "x509-svid"]
        self.assertEqual(len(entries), 1)
        entry = entries[0]
        self.assertNotIn("kid", entry, "x509-svid JWKs MUST NOT have kid (§4)")
        self.assertEqual(len(entry.get("x5c", [])), 1)
        der = base64.b64decode(entry["x5c"][0], validate=True)
        self.assertEqual(der, ca.cert.public_bytes(serialization.Encoding.DER))
        self.assertEqual(jwt.PyJWK(entry).key.public_numbers(),
                         ca.cert.public_key().public_numbers())

    def test_bundle_json_jwt_authority_matches_jwt_key(self):
        ca = self.init_ca()
        entries = [k for k in json.loads(read_bytes(ca.bundle_json))["keys"]
                   if k.get("use") == "jwt-svid"]
        self.assertEqual(len(entries), 1)
        entry = entries[0]
        self.assertTrue(entry.get("kid"), "jwt-svid JWKs MUST have kid (§4)")
        self.assertNotIn("x5c", entry)
        self.assertEqual(jwt.PyJWK(entry).key.public_numbers(),
                         ca.jwt_key.public_key().public_numbers())

    def test_bundle_pem_holds_the_ca_certificate(self):
        ca = self.init_ca()
        certs = [x509.load_pem_x509_certificate(b.encode())
                 for b in pem_blocks(read_bytes(ca.bundle_pem))]
        self.assertIn(ca.cert, certs)


class IssuanceTest(InteropTestCase):

    def test_openssl_verifies_issued_leaf(self):
        ca = self.init_ca()
        for label, chain, _ in self.issued_leaves(ca):
            with self.subTest(source=label):
                result = self.openssl_verify(ca, chain)
                self.assertEqual(result.returncode, 0, describe(result))
                self.assertIn(": OK", result.stdout)

    def test_openssl_verifies_issued_leaf_for_tls_server_and_client_purposes(self):
        ca = self.init_ca()
        k = new_key()
        chain = self.issue(ca, ["--public-key", self.write_public_key(k)])
        for purpose in ("sslserver", "sslclient"):
            with self.subTest(purpose=purpose):
                result = self.openssl_verify(ca, chain, "-purpose", purpose)
                self.assertEqual(result.returncode, 0, describe(result))

    def test_openssl_x509_strict_accepts_issued_leaf(self):
        # Python >= 3.13 sets VERIFY_X509_STRICT by default (AKI required, etc.).
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())])
        result = self.openssl_verify(ca, chain, "-x509_strict")
        self.assertEqual(result.returncode, 0, describe(result))

    def test_openssl_text_shows_spiffe_profile(self):
        ca = self.init_ca()
        for label, chain, _ in self.issued_leaves(ca):
            with self.subTest(source=label):
                leaf, _ = self.split_chain(chain)
                result = run([OPENSSL, "x509", "-in", leaf, "-text", "-noout"])
                self.assertEqual(result.returncode, 0, describe(result))
                text = result.stdout
                self.assertIn(f"URI:{LEAF_ID}", text)
                self.assertEqual(text.count("URI:"), 1, "exactly one URI SAN")
                self.assertIn("CA:FALSE", text)
                self.assertIn("Digital Signature", text)
                self.assertIn("X509v3 Key Usage: critical", text)
                self.assertIn("X509v3 Basic Constraints: critical", text)
                self.assertNotIn("Certificate Sign", text)
                self.assertNotIn("CRL Sign", text)
                self.assertIn("TLS Web Server Authentication", text)
                self.assertIn("TLS Web Client Authentication", text)

    def test_openssl_sees_a_subject_or_a_critical_san(self):
        # RFC 5280 §4.1.2.6, SPIFFE.md §2.1: an empty Subject requires a critical SAN. Our CA
        # names every leaf, even one requested with an empty subject, and keeps its SAN
        # non-critical; openssl must see one or the other on every issued leaf.
        ca = self.init_ca()
        for label, chain, _ in self.issued_leaves(ca):
            with self.subTest(source=label):
                leaf, _ = self.split_chain(chain)
                result = run([OPENSSL, "x509", "-in", leaf, "-noout", "-subject", "-nameopt",
                              "RFC2253", "-text"])
                self.assertEqual(result.returncode, 0, describe(result))
                subject = result.stdout.splitlines()[0].partition("=")[2].strip()
                san_critical = "X509v3 Subject Alternative Name: critical" in result.stdout
                self.assertTrue(subject or san_critical,
                                "empty Subject with a non-critical SAN" + describe(result))

    def test_issued_leaf_has_x509_svid_profile(self):
        ca = self.init_ca()
        for label, chain, key in self.issued_leaves(ca):
            with self.subTest(source=label):
                leaf = self.load_leaf(chain)
                ext = leaf.extensions
                san = ext.get_extension_for_class(x509.SubjectAlternativeName)
                self.assertEqual(san.value.get_values_for_type(x509.UniformResourceIdentifier),
                                 [LEAF_ID], "exactly one URI SAN")
                self.assertTrue(len(leaf.subject) > 0 or san.critical,
                                "empty Subject requires a critical SAN")
                bc = ext.get_extension_for_class(x509.BasicConstraints)
                self.assertTrue(bc.critical)
                self.assertFalse(bc.value.ca)
                ku = ext.get_extension_for_class(x509.KeyUsage)
                self.assertTrue(ku.critical)
                self.assertTrue(ku.value.digital_signature)
                self.assertFalse(ku.value.key_cert_sign)
                self.assertFalse(ku.value.crl_sign)
                eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
                self.assertIn(ExtendedKeyUsageOID.SERVER_AUTH, eku)
                self.assertIn(ExtendedKeyUsageOID.CLIENT_AUTH, eku)
                self.assertLessEqual(leaf.not_valid_after, ca.cert.not_valid_after)
                tw_ext = [e for e in ext if e.oid.dotted_string == TW_EXTENSION_OID]
                self.assertEqual([e.critical for e in tw_ext], [False],
                                 f"one non-critical extension {TW_EXTENSION_OID}")
                self.assertEqual(leaf.issuer, ca.cert.subject)
                self.assertEqual(leaf.public_key().public_numbers(),
                                 key.public_key().public_numbers(),
                                 "the leaf must certify the presented key")

    def test_issued_leaf_carries_trustwarden_extension(self):
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())])
        leaf, _ = self.split_chain(chain)
        result = run([OPENSSL, "x509", "-in", leaf, "-noout", "-text"])
        self.assertEqual(result.returncode, 0, describe(result))
        lines = [l.strip() for l in result.stdout.splitlines()
                 if l.strip().startswith(TW_EXTENSION_OID + ":")]
        self.assertEqual(lines, [TW_EXTENSION_OID + ":"], "present once, and not critical")

    def test_issued_leaf_lifetime_follows_ttl(self):
        ca = self.init_ca()
        before = now()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())], ttl="30m")
        _, not_before, not_after = self.openssl_fields(chain)
        expected = before + datetime.timedelta(minutes=30)
        self.assertLessEqual(abs((not_after - expected).total_seconds()), 120)
        self.assertLessEqual(not_before, now())

    def test_ttl_beyond_ca_lifetime_is_capped_at_the_ca_end(self):
        # SPIFFE.md §2.1: notAfter is capped at the issuing chain's expiry.
        ca = self.init_ca()
        out = self.path("long.pem")
        # A little past the CA's own end of life, but a plausible duration (< 10 years).
        ca_life = aware(ca.cert.not_valid_after) - now()
        ttl = f"{int(ca_life.total_seconds() // 3600) + 48}h"
        result = tw("svid", "issue", "--ca", ca.dir, "--spiffe-id", LEAF_ID, "--public-key",
                    self.write_public_key(new_key()), "--ttl", ttl, "--out", out)
        self.assertEqual(result.returncode, 0, describe(result))
        _, _, not_after = self.openssl_fields(out)
        self.assertEqual(not_after, aware(ca.cert.not_valid_after), "notAfter is the CA's")
        self.assertIn(f"valid until {rfc3339(not_after)}", result.stdout, describe(result))

    def test_ttl_beyond_ten_years_is_refused(self):
        ca = self.init_ca()
        out = self.path("refused.pem")
        result = tw("svid", "issue", "--ca", ca.dir, "--spiffe-id", LEAF_ID, "--public-key",
                    self.write_public_key(new_key()), "--ttl", "100000h", "--out", out)
        self.assertEqual(result.returncode, 1, describe(result))
        self.assertIn('duration "100000h": longer than 3650 days', result.stderr,
                      describe(result))
        self.assertFalse(os.path.exists(out), "a refused issuance wrote its output")

    def test_inspect_json_reports_scopes_and_trust_level(self):
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())])
        result = self.tw_ok("svid", "inspect", chain, "--json")
        doc = json.loads(result.stdout)
        for key in ("spiffe_id", "serial", "not_before", "not_after", "scopes", "trust_level",
                    "parent", "principal", "policy_version"):
            self.assertIn(key, doc)
        self.assertEqual(doc["spiffe_id"], LEAF_ID)
        self.assertIsInstance(doc["scopes"], list)
        self.assertEqual(sorted(doc["scopes"]), sorted(SCOPES))
        self.assertEqual(doc["trust_level"], TRUST_LEVEL)

    def test_inspect_json_serial_and_validity_match_certificate(self):
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())])
        serial, not_before, not_after = self.openssl_fields(chain)
        doc = json.loads(self.tw_ok("svid", "inspect", chain, "--json").stdout)
        got = str(doc["serial"]).replace(":", "").lower()
        self.assertIn(got.lstrip("0") or "0", {format(serial, "x"), str(serial)},
                      "serial is the certificate serial, as hex or decimal")
        for key, cert_time in (("not_before", not_before), ("not_after", not_after)):
            json_time = datetime.datetime.fromisoformat(str(doc[key]).replace("Z", "+00:00"))
            self.assertEqual(json_time, cert_time, f"{key} (RFC 3339)")

    def test_p384_ca_issues_verifiable_leaf(self):
        ca = self.init_ca(key_type="ec-p384")
        self.assertIsInstance(ca.cert.public_key().curve, ec.SECP384R1)
        self.assertIsInstance(ca.key.curve, ec.SECP384R1)
        chain = self.issue(ca, ["--csr", self.write_csr(new_key())])
        result = self.openssl_verify(ca, chain)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assert_accepted(self.svid_verify(ca.bundle_json, chain), LEAF_ID)

    # Issuer-side refusals (strict in what we emit, SPIFFE.md §2.1).
    def _issue_result(self, ca, spiffe_id, source_args=None):
        source_args = source_args or ["--public-key", self.write_public_key(new_key())]
        return tw("svid", "issue", "--ca", ca.dir, "--spiffe-id", spiffe_id, *source_args,
                  "--ttl", "30m", "--out", self.path("refused.pem"))

    def test_issue_refuses_root_id(self):
        ca = self.init_ca()
        self.assert_rejected(self._issue_result(ca, f"spiffe://{TD}"), "issue_root_id")
        self.assertFalse(os.path.exists(self.path("refused.pem")))

    def test_issue_refuses_foreign_trust_domain(self):
        ca = self.init_ca()
        self.assert_rejected(self._issue_result(ca, OTHER_TD_ID), "issue_foreign_trust_domain")

    def test_issue_refuses_invalid_id(self):
        ca = self.init_ca()
        self.assert_rejected(self._issue_result(ca, f"spiffe://{TD}/a/../b"), "issue_invalid_id")

    def test_issue_refuses_csr_with_bad_signature(self):
        ca = self.init_ca()
        der = bytearray(read_bytes(self.write_csr(new_key(), "c.der", serialization.Encoding.DER)))
        der[-1] ^= 0x01
        bad = write_file(self.path("bad.der"), bytes(der))
        self.assert_rejected(self._issue_result(ca, LEAF_ID, ["--csr", bad]),
                             "issue_bad_csr_signature")


# =============================================================================================
# 2. X.509-SVID verification (`svid verify`)
# =============================================================================================
class SvidVerifyAcceptTest(InteropTestCase):

    def test_accepts_leaf_issued_by_cli(self):
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())])
        self.assert_accepted(self.svid_verify(ca.bundle_json, chain), LEAF_ID)

    def test_accepts_leaf_issued_by_cli_with_explicit_trust_domain(self):
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())])
        self.assert_accepted(self.svid_verify(ca.bundle_json, chain, "--trust-domain", TD),
                             LEAF_ID)

    def test_accepts_leaf_with_pem_bundle(self):
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())])
        self.assert_accepted(self.svid_verify(ca.bundle_pem, chain), LEAF_ID)

    def test_accepts_leaf_at_time_inside_validity(self):
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())], ttl="1h")
        at = rfc3339(now() + datetime.timedelta(minutes=50))
        self.assert_accepted(self.svid_verify(ca.bundle_json, chain, "--at", at), LEAF_ID)

    def test_accepts_crafted_leaf_signed_by_ca_key(self):
        ca = self.init_ca()
        self.assert_accepted(self.svid_verify(ca.bundle_json, self.craft_leaf(ca)), LEAF_ID)

    def test_accepts_leaf_via_intermediate(self):
        ca = self.init_ca()
        chain = self.craft_via_intermediate(ca)
        self.assert_accepted(self.svid_verify(ca.bundle_json, chain), LEAF_ID)

    def test_accepts_leaf_with_extra_dns_sans(self):
        ca = self.init_ca()
        chain = self.craft_leaf(ca, dns_names=("payments.example.org", "localhost"))
        self.assert_accepted(self.svid_verify(ca.bundle_json, chain), LEAF_ID)

    def test_accepts_empty_subject_with_critical_uri_san(self):
        ca = self.init_ca()
        chain = self.craft_leaf(ca, subject=x509.Name([]), san_critical=True)
        self.assert_accepted(self.svid_verify(ca.bundle_json, chain), LEAF_ID)


class IntermediateCaTest(InteropTestCase):
    """`ca init --parent` makes an intermediate CA; its leaves chain to the root."""

    def test_leaf_from_an_intermediate_ca_verifies_with_openssl_and_trustwarden(self):
        root = self.init_ca()
        inter_dir = self.path("inter")
        self.tw_ok("ca", "init", "--parent", root.dir, "--out", inter_dir)
        inter = Ca(inter_dir, TD, None, None, os.path.join(inter_dir, "bundle.json"),
                   os.path.join(inter_dir, "bundle.pem"), None, None)
        chain = self.issue(inter, ["--public-key", self.write_public_key(new_key())])
        self.assertEqual(len(pem_blocks(read_bytes(chain))), 2, "leaf, then the intermediate")
        result = run([OPENSSL, "verify", "-CAfile", root.bundle_pem, "-untrusted", chain, chain])
        self.assertEqual(result.returncode, 0, describe(result))
        for bundle in (root.bundle_json, inter.bundle_json, root.bundle_pem):
            self.assert_accepted(self.svid_verify(bundle, chain), LEAF_ID)
        leaf_only = write_file(self.path("leaf.pem"), pem_blocks(read_bytes(chain))[0] + "\n")
        self.assert_rejected(self.svid_verify(root.bundle_json, leaf_only), "untrusted_signer",
                             LEAF_ID)


class NameConstraintsTest(InteropTestCase):
    """URI name constraints on an intermediate (X509-SVID §4.2), crafted with cryptography
    and cross-checked with `openssl verify`."""

    def constrained_chain(self, ca, permitted=None, excluded=None, name="chain.pem"):
        nc = x509.NameConstraints(
            permitted_subtrees=[x509.UniformResourceIdentifier(u) for u in permitted]
            if permitted else None,
            excluded_subtrees=[x509.UniformResourceIdentifier(u) for u in excluded]
            if excluded else None)
        return self.craft_via_intermediate(
            ca, intermediate_kwargs={"extra_extensions": [(nc, True)]}, name=name)

    def test_permitted_trust_domain_is_accepted(self):
        ca = self.init_ca()
        chain = self.constrained_chain(ca, permitted=[TD])
        leaf, rest = self.split_chain(chain)
        result = run([OPENSSL, "verify", "-CAfile", ca.bundle_pem, "-untrusted", rest, leaf])
        self.assertEqual(result.returncode, 0, describe(result))
        self.assert_accepted(self.svid_verify(ca.bundle_json, chain), LEAF_ID)

    def test_leaf_outside_the_constraints_is_rejected(self):
        ca = self.init_ca()
        for label, kwargs in (("permitted other", {"permitted": [OTHER_TD]}),
                              ("excluded own", {"excluded": [TD]})):
            with self.subTest(label):
                chain = self.constrained_chain(ca, name=f"{label}.pem", **kwargs)
                leaf, rest = self.split_chain(chain)
                result = run([OPENSSL, "verify", "-CAfile", ca.bundle_pem, "-untrusted", rest,
                              leaf])
                self.assertNotEqual(result.returncode, 0, "openssl agrees: " + describe(result))
                result = self.svid_verify(ca.bundle_json, chain)
                self.assertEqual(result.returncode, 1, describe(result))
                self.assertIn("name constraints", result.stderr)


class FederationTest(InteropTestCase):
    """A SPIFFE bundle map (Trust Domain and Bundle §5) holds several trust domains; each
    SVID is checked only against the bundle of its own trust domain."""

    def write_bundle_map(self, *cas):
        doc = {"trust_domains": {ca.td: json.loads(read_bytes(ca.bundle_json)) for ca in cas}}
        return write_file(self.path("map.json"), json.dumps(doc).encode())

    def test_bundle_map_verifies_each_trust_domain_with_its_own_bundle(self):
        ca_a, ca_b = self.init_ca(), self.init_ca(OTHER_TD)
        bundle_map = self.write_bundle_map(ca_a, ca_b)
        key = self.write_public_key(new_key())
        chain_a = self.issue(ca_a, ["--public-key", key], name="a.pem")
        chain_b = self.issue(ca_b, ["--public-key", key], spiffe_id=OTHER_TD_ID, name="b.pem")
        self.assert_accepted(self.svid_verify(bundle_map, chain_a), LEAF_ID)
        self.assert_accepted(self.svid_verify(bundle_map, chain_b), OTHER_TD_ID)
        # Claims trust domain B, signed by A's CA: B's bundle has no path to it.
        forged = self.craft_leaf(ca_a, uris=(OTHER_TD_ID,), name="forged.pem")
        self.assert_rejected(self.svid_verify(bundle_map, forged), "untrusted_signer",
                             OTHER_TD_ID)

    def test_bundle_map_with_a_duplicate_trust_domain_is_refused(self):
        ca = self.init_ca()
        bundle = read_bytes(ca.bundle_json).decode()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())])
        for second_key, reason in ((TD, "duplicate member"),
                                   ("spiffe://" + TD, "appears twice")):
            with self.subTest(second_key=second_key):
                doc = '{"trust_domains": {"%s": %s, "%s": %s}}' % (TD, bundle, second_key, bundle)
                bundle_map = write_file(self.path("dup.json"), doc.encode())
                result = self.svid_verify(bundle_map, chain)
                self.assertEqual(result.returncode, 1, describe(result))
                self.assertIn(reason, result.stderr)


class SvidVerifyRejectTest(InteropTestCase):

    def assert_svid_rejected(self, ca, chain, reason, *claimed_ids, bundle=None, options=()):
        result = self.svid_verify(bundle or ca.bundle_json, chain, *options)
        self.assert_rejected(result, reason, *(claimed_ids or (LEAF_ID,)))

    # --- URI SAN ---------------------------------------------------------------------------
    def test_rejects_two_uri_sans(self):
        ca = self.init_ca()
        second = f"spiffe://{TD}/other-workload"
        chain = self.craft_leaf(ca, uris=(LEAF_ID, second))
        self.assert_svid_rejected(ca, chain, "many_uri_sans", LEAF_ID, second)

    def test_rejects_two_identical_uri_sans(self):
        ca = self.init_ca()
        chain = self.craft_leaf(ca, uris=(LEAF_ID, LEAF_ID))
        self.assert_svid_rejected(ca, chain, "many_uri_sans")

    def test_rejects_spiffe_uri_plus_https_uri(self):
        ca = self.init_ca()
        chain = self.craft_leaf(ca, uris=(LEAF_ID, "https://payments.example.org/"))
        self.assert_svid_rejected(ca, chain, "many_uri_sans")

    def test_rejects_leaf_without_uri_san(self):
        ca = self.init_ca()
        for label, kwargs in (("DNS SAN only", {"uris": (), "dns_names": ("a.example.org",)}),
                              ("no SAN extension", {"uris": ()})):
            with self.subTest(label):
                chain = self.craft_leaf(ca, **kwargs)
                self.assert_svid_rejected(ca, chain, "no_uri_san", "spiffe://")

    def test_rejects_non_spiffe_scheme(self):
        ca = self.init_ca()
        uri = "sparfe://example.org/workload"
        self.assert_svid_rejected(ca, self.craft_leaf(ca, uris=(uri,)), "not_spiffe_scheme", uri)

    # --- leaf constraints ------------------------------------------------------------------
    def test_rejects_leaf_with_ca_true(self):
        ca = self.init_ca()
        self.assert_svid_rejected(ca, self.craft_leaf(ca, is_ca=True), "leaf_is_ca")

    def test_rejects_leaf_with_key_cert_sign(self):
        ca = self.init_ca()
        chain = self.craft_leaf(ca, key_usage={"digital_signature", "key_cert_sign"})
        self.assert_svid_rejected(ca, chain, "leaf_key_cert_sign")

    def test_rejects_leaf_with_crl_sign(self):
        ca = self.init_ca()
        chain = self.craft_leaf(ca, key_usage={"digital_signature", "crl_sign"})
        self.assert_svid_rejected(ca, chain, "leaf_crl_sign")

    def test_rejects_leaf_without_digital_signature(self):
        ca = self.init_ca()
        chain = self.craft_leaf(ca, key_usage={"key_agreement"})
        self.assert_svid_rejected(ca, chain, "leaf_no_digital_signature")

    def test_rejects_unknown_critical_extension_on_leaf(self):
        ca = self.init_ca()
        unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.42"),
                                             b"\x05\x00")
        chain = self.craft_leaf(ca, extra_extensions=[(unknown, True)])
        self.assert_svid_rejected(ca, chain, "unknown_critical_extension")

    # --- the SPIFFE ID ---------------------------------------------------------------------
    def test_rejects_bare_trust_domain_id(self):
        ca = self.init_ca()
        bare = f"spiffe://{TD}"
        self.assert_svid_rejected(ca, self.craft_leaf(ca, uris=(bare,)), "root_id", bare)

    def test_rejects_uppercase_trust_domain(self):
        ca = self.init_ca()
        upper = "spiffe://EXAMPLE.ORG/workload"
        self.assert_svid_rejected(ca, self.craft_leaf(ca, uris=(upper,)),
                                  "uppercase_trust_domain", upper)

    def test_rejects_dot_dot_segment(self):
        ca = self.init_ca()
        dotted = f"spiffe://{TD}/a/../workload"
        self.assert_svid_rejected(ca, self.craft_leaf(ca, uris=(dotted,)), "leaf_dot_segment",
                                  dotted)

    # --- validity window -------------------------------------------------------------------
    def test_rejects_expired_leaf(self):
        ca = self.init_ca()
        t = now()
        chain = self.craft_leaf(ca, not_before=t - datetime.timedelta(hours=2),
                                not_after=t - datetime.timedelta(hours=1))
        self.assert_svid_rejected(ca, chain, "expired")

    def test_rejects_not_yet_valid_leaf(self):
        ca = self.init_ca()
        t = now()
        chain = self.craft_leaf(ca, not_before=t + datetime.timedelta(hours=1),
                                not_after=t + datetime.timedelta(hours=2))
        self.assert_svid_rejected(ca, chain, "not_yet_valid")

    def test_rejects_issued_leaf_at_time_after_not_after(self):
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())], ttl="1h")
        at = rfc3339(now() + datetime.timedelta(hours=2))
        self.assert_svid_rejected(ca, chain, "expired", options=("--at", at))

    def test_rejects_issued_leaf_at_time_before_not_before(self):
        ca = self.init_ca()
        chain = self.issue(ca, ["--public-key", self.write_public_key(new_key())], ttl="1h")
        at = rfc3339(now() - datetime.timedelta(days=1))
        self.assert_svid_rejected(ca, chain, "not_yet_valid", options=("--at", at))

    # --- trust domain / bundle selection ---------------------------------------------------
    def test_rejects_id_of_other_trust_domain_with_trust_domain_flag(self):
        ca = self.init_ca()
        chain = self.craft_leaf(ca, uris=(OTHER_TD_ID,))
        self.assert_svid_rejected(ca, chain, "wrong_trust_domain", OTHER_TD_ID,
                                  options=("--trust-domain", TD))

    def test_rejects_id_of_other_trust_domain_against_each_bundle(self):
        # The leaf claims TD B but is signed by TD A's CA (SPIFFE.md §2.3, C XF-2).
        ca_a = self.init_ca(TD)
        ca_b = self.init_ca(OTHER_TD)
        chain = self.craft_leaf(ca_a, uris=(OTHER_TD_ID,))
        runs = (("bundle A", ca_a, (), "wrong_trust_domain"),
                ("bundle A, --trust-domain A", ca_a, ("--trust-domain", TD),
                 "wrong_trust_domain"),
                ("bundle B", ca_b, (), "untrusted_signer"),
                ("bundle B, --trust-domain B", ca_b, ("--trust-domain", OTHER_TD),
                 "untrusted_signer"))
        for label, bundle_ca, options, reason in runs:
            with self.subTest(label):
                self.assert_svid_rejected(bundle_ca, chain, reason, OTHER_TD_ID, options=options)

    def test_rejects_leaf_issued_in_other_trust_domain(self):
        ca_a = self.init_ca(TD)
        ca_b = self.init_ca(OTHER_TD)
        chain = self.issue(ca_b, ["--public-key", self.write_public_key(new_key())],
                           spiffe_id=OTHER_TD_ID)
        self.assert_svid_rejected(ca_a, chain, "wrong_trust_domain", OTHER_TD_ID)

    # --- path validation -------------------------------------------------------------------
    def test_rejects_leaf_signed_by_other_ca_with_same_subject(self):
        ca = self.init_ca()
        rogue_key = new_key()
        rogue_ca = make_cert(issuer_key=rogue_key, public_key=rogue_key.public_key(),
                             subject=ca.cert.subject, uris=(f"spiffe://{TD}",), is_ca=True,
                             key_usage=CA_KEY_USAGE, eku=False)
        leaf = make_cert(issuer_cert=rogue_ca, issuer_key=rogue_key,
                         public_key=new_key().public_key())
        # Same issuer name and AKI as the real CA; only the signing key differs.
        forged_aki = make_cert(issuer_cert=ca.cert, issuer_key=rogue_key,
                               public_key=new_key().public_key())
        # Whatever names the real CA (the rogue's issuer name, the real AKI) is checked against
        # the real CA's key and fails; the leaf alone names a key the bundle does not hold.
        chains = (("rogue CA sent along", (leaf, rogue_ca), "bad_signature"),
                  ("leaf only", (leaf,), "untrusted_signer"),
                  ("AKI of the real CA", (forged_aki,), "bad_signature"))
        for label, certs, reason in chains:
            with self.subTest(label):
                chain = self.write_chain(*certs, name=f"{len(certs)}-{label[0]}.pem")
                self.assert_svid_rejected(ca, chain, reason)

    def test_rejects_flipped_byte_in_leaf_signature(self):
        ca = self.init_ca()
        leaf = make_cert(issuer_cert=ca.cert, issuer_key=ca.key,
                         public_key=new_key().public_key())
        chain = self.write_chain(der_to_pem(flip_last_byte(leaf)))
        self.assert_svid_rejected(ca, chain, "bad_signature")

    def test_rejects_intermediate_without_ca(self):
        ca = self.init_ca()
        chain = self.craft_via_intermediate(ca, {"is_ca": False})
        self.assert_svid_rejected(ca, chain, "intermediate_not_ca")

    def test_rejects_intermediate_without_key_cert_sign(self):
        ca = self.init_ca()
        chain = self.craft_via_intermediate(ca, {"key_usage": {"digital_signature"}})
        self.assert_svid_rejected(ca, chain, "intermediate_no_key_cert_sign")

    def test_rejects_expired_intermediate(self):
        ca = self.init_ca()
        t = now()
        chain = self.craft_via_intermediate(ca, {"not_before": t - datetime.timedelta(hours=2),
                                                 "not_after": t - datetime.timedelta(hours=1)})
        self.assert_svid_rejected(ca, chain, "intermediate_expired")

    def test_rejects_empty_chain_file(self):
        ca = self.init_ca()
        chain = write_file(self.path("empty.pem"), b"")
        self.assert_svid_rejected(ca, chain, "empty_chain")

    # --- PEM bundle ------------------------------------------------------------------------
    def test_pem_bundle_rejects_leaf_with_ca_true(self):
        ca = self.init_ca()
        self.assert_svid_rejected(ca, self.craft_leaf(ca, is_ca=True), "leaf_is_ca",
                                  bundle=ca.bundle_pem)


# =============================================================================================
# 3. JWT-SVID
# =============================================================================================
class JwtMintTest(InteropTestCase):

    def mint(self, ca, ttl="5m"):
        args = ["jwt", "mint", "--ca", ca.dir, "--spiffe-id", LEAF_ID, "--audience", AUDIENCE,
                "--ttl", ttl]
        for s in SCOPES:
            args += ["--scope", s]
        token = self.tw_ok(*args).stdout.strip()
        self.assertEqual(token.count("."), 2, f"compact JWS expected, got {token!r}")
        return token

    def decode_with_bundle(self, ca, token):
        header = jwt.get_unverified_header(token)
        jwk = jwt.PyJWK(self.bundle_jwk(ca, header.get("kid")))
        return jwt.decode(token, jwk.key, algorithms=JWT_ALGS, audience=AUDIENCE,
                          options={"require": ["sub", "aud", "exp"]})

    def test_pyjwt_verifies_minted_token_with_bundle_key(self):
        ca = self.init_ca()
        self.decode_with_bundle(ca, self.mint(ca))

    def test_minted_token_claims(self):
        ca = self.init_ca()
        before = int(now().timestamp())
        claims = self.decode_with_bundle(ca, self.mint(ca, ttl="5m"))
        self.assertEqual(claims["sub"], LEAF_ID)
        self.assertIn(claims["aud"], (AUDIENCE, [AUDIENCE]))
        self.assertIsInstance(claims["exp"], int)
        self.assertLessEqual(abs(claims["exp"] - (before + 300)), 60)
        self.assertIsInstance(claims.get("scope"), str)
        self.assertEqual(sorted(claims["scope"].split(" ")), sorted(SCOPES))

    def test_minted_token_header_is_jwt_svid_conformant(self):
        ca = self.init_ca()
        header = jwt.get_unverified_header(self.mint(ca))
        self.assertLessEqual(set(header), {"alg", "kid", "typ"}, "§3.1 allowed header fields")
        self.assertEqual(header["alg"], "ES256")
        self.assertEqual(header.get("kid"), ca.kid)
        self.assertIn(header.get("typ", "JWT"), ("JWT", "JOSE"))

    def test_cli_verifies_minted_token(self):
        ca = self.init_ca()
        self.assert_accepted(self.jwt_verify(ca, self.mint(ca)), LEAF_ID)


class JwtVerifyRejectTest(InteropTestCase):

    def assert_jwt_rejected(self, ca, token, reason, *claimed, options=(), audience=AUDIENCE):
        result = self.jwt_verify(ca, token, *options, audience=audience)
        self.assert_rejected(result, reason, *(claimed or (LEAF_ID,)))

    def test_rejects_alg_none(self):
        ca = self.init_ca()
        token = jwt.encode(self.jwt_claims(ca), None, algorithm="none",
                           headers={"kid": ca.kid})
        self.assert_jwt_rejected(ca, token, "jwt_alg_none")

    def test_rejects_hs256_keyed_with_bundle_public_key(self):
        # PyJWT refuses PEM keys as HMAC secrets, so this one is signed with hmac directly.
        ca = self.init_ca()
        public_pem = ca.jwt_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        header = {"alg": "HS256", "kid": ca.kid, "typ": "JWT"}
        signing_input = (b64u(json.dumps(header).encode()) + "." +
                         b64u(json.dumps(self.jwt_claims(ca)).encode()))
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        self.assert_jwt_rejected(ca, signing_input + "." + b64u(mac), "jwt_alg_hs256")

    def test_rejects_wrong_audience(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, self.jwt_claims(ca, aud=["spiffe://example.org/someone-else"]))
        self.assert_jwt_rejected(ca, token, "jwt_audience")

    def test_rejects_expired(self):
        ca = self.init_ca()
        t = int(now().timestamp())
        token = self.craft_jwt(ca, self.jwt_claims(ca, exp=t - 300, iat=t - 600))
        self.assert_jwt_rejected(ca, token, "jwt_expired")

    def test_rejects_missing_sub(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, self.jwt_claims(ca, sub=None))
        self.assert_jwt_rejected(ca, token, "jwt_missing_sub")

    def test_rejects_sub_not_a_spiffe_id(self):
        ca = self.init_ca()
        sub = "https://example.org/workload"
        token = self.craft_jwt(ca, self.jwt_claims(ca, sub=sub))
        self.assert_jwt_rejected(ca, token, "jwt_sub_not_spiffe_id", sub)

    def test_rejects_missing_exp(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, self.jwt_claims(ca, exp=None))
        self.assert_jwt_rejected(ca, token, "jwt_missing_exp")

    def test_rejects_nbf_five_minutes_ahead(self):
        ca = self.init_ca()
        t = int(now().timestamp())
        token = self.craft_jwt(ca, self.jwt_claims(ca, nbf=t + 300, exp=t + 900))
        self.assert_jwt_rejected(ca, token, "jwt_not_yet_valid")

    def test_rejects_typ_xyz(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, headers={"kid": ca.kid, "typ": "xyz"})
        self.assert_jwt_rejected(ca, token, "jwt_typ")

    def test_rejects_crit_header(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, headers={"kid": ca.kid, "crit": ["urn:example:unknown"],
                                            "urn:example:unknown": True})
        self.assert_jwt_rejected(ca, token, "jwt_crit")

    def test_rejects_kid_not_in_bundle(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, headers={"kid": "not-in-the-bundle"})
        self.assert_jwt_rejected(ca, token, "jwt_unknown_kid")

    def test_rejects_tampered_payload(self):
        ca = self.init_ca()
        header, _, signature = self.craft_jwt(ca).split(".")
        forged = self.jwt_claims(ca, sub=f"spiffe://{TD}/admin")
        token = ".".join([header, b64u(json.dumps(forged).encode()), signature])
        self.assert_jwt_rejected(ca, token, "jwt_bad_signature", f"spiffe://{TD}/admin")

    # Further SPIFFE.md §3.3 vectors.
    def test_rejects_missing_aud(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, self.jwt_claims(ca, aud=None))
        self.assert_jwt_rejected(ca, token, "jwt_missing_aud")

    def test_rejects_alg_not_matching_key(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, alg="ES384")  # P-256 key, ES384 header and hash
        self.assert_jwt_rejected(ca, token, "jwt_alg_not_the_keys")

    def test_rejects_right_kid_other_key(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, key=new_key())
        self.assert_jwt_rejected(ca, token, "jwt_bad_signature")

    def test_rejects_one_bit_flipped_in_signature(self):
        ca = self.init_ca()
        header, payload, signature = self.craft_jwt(ca).split(".")
        raw = bytearray(unb64u(signature))
        raw[-1] ^= 0x01
        token = ".".join([header, payload, b64u(bytes(raw))])
        self.assert_jwt_rejected(ca, token, "jwt_bad_signature")

    def test_rejects_token_signed_by_x509_authority_key(self):
        # The CA key is in the bundle, but as use=x509-svid: it must not validate JWTs (JB-5),
        # not even through the missing-kid fallback, which tries the JWT authorities only.
        ca = self.init_ca()
        self.assertIsInstance(ca.key.curve, ec.SECP256R1)
        token = self.craft_jwt(ca, headers=None, key=ca.key)
        self.assert_jwt_rejected(ca, token, "jwt_bad_signature")

    def test_rejects_sub_in_other_trust_domain(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, self.jwt_claims(ca, sub=OTHER_TD_ID))
        for options in ((), ("--trust-domain", TD)):
            with self.subTest(options=options):
                self.assert_jwt_rejected(ca, token, "jwt_wrong_trust_domain", OTHER_TD_ID,
                                         options=options)


class JwtVerifyAcceptTest(InteropTestCase):

    def assert_jwt_accepted(self, ca, token):
        self.assert_accepted(self.jwt_verify(ca, token), LEAF_ID)

    def test_accepts_crafted_token_with_kid(self):
        ca = self.init_ca()
        self.assert_jwt_accepted(ca, self.craft_jwt(ca))

    def test_accepts_aud_as_string(self):
        ca = self.init_ca()
        self.assert_jwt_accepted(ca, self.craft_jwt(ca, self.jwt_claims(ca, aud=AUDIENCE)))

    def test_accepts_aud_array_containing_us(self):
        ca = self.init_ca()
        aud = ["spiffe://example.org/someone-else", AUDIENCE]
        self.assert_jwt_accepted(ca, self.craft_jwt(ca, self.jwt_claims(ca, aud=aud)))

    def test_accepts_typ_absent_jwt_and_jose(self):
        ca = self.init_ca()
        for typ in (None, "JWT", "JOSE"):
            with self.subTest(typ=typ):
                token = self.craft_jwt(ca, headers={"kid": ca.kid, "typ": typ})
                self.assertEqual(jwt.get_unverified_header(token).get("typ"), typ)
                self.assert_jwt_accepted(ca, token)

    def test_accepts_missing_kid(self):
        ca = self.init_ca()
        token = self.craft_jwt(ca, headers=None)
        self.assertNotIn("kid", jwt.get_unverified_header(token))
        self.assert_jwt_accepted(ca, token)


# =============================================================================================
# 4. SPIFFE ID parsing (`id check`, SPIFFE.md §1.2)
# =============================================================================================
VALID_IDS = [
    "spiffe://trustdomain",
    "spiffe://trustdomain/path",
    "spiffe://example.org/ns/staging/sa/default",
    "spiffe://trust_domain-1.example.org/a",
    "spiffe://192.168.1.1/workload",
    "spiffe://trustdomain/Path/Mixed_Case-01.x",
    "spiffe://trustdomain/.path",
    "spiffe://trustdomain/..path",
    "spiffe://trustdomain/...",
    "spiffe://-/x",
    "spiffe://trustdomain/" + "a" * (2048 - len("spiffe://trustdomain/")),
]

INVALID_IDS = [
    ("", "id_empty"),
    ("s", "id_scheme"),
    ("spiffe:/trustdomain/path", "id_scheme"),
    ("http://trustdomain/path", "id_scheme"),
    ("Spiffe://trustdomain/path", "id_scheme_case"),
    ("spiffe://", "id_trust_domain_missing"),
    ("spiffe:///path", "id_trust_domain_missing"),
    ("spiffe://trustdomain/", "id_trailing_slash"),
    ("spiffe://trustdomain/path/", "id_trailing_slash"),
    ("spiffe://trustdomain//path", "id_empty_segment"),
    ("spiffe://trustdomain/.", "id_dot_segment"),
    ("spiffe://trustdomain/./path", "id_dot_segment"),
    ("spiffe://trustdomain/path/../other", "id_dot_segment"),
    ("spiffe://trustdomain/..", "id_dot_segment"),
    ("spiffe://%62%61%64/path", "id_trust_domain_percent"),
    ("spiffe://trustdomain/%62%61%64", "id_path_percent"),
    ("spiffe://trustdomain:8080/path", "id_trust_domain_port"),
    ("spiffe://user@trustdomain/path", "id_trust_domain_userinfo"),
    ("spiffe://trustdomain/path?x=1", "id_query"),
    ("spiffe://trustdomain/path#frag", "id_fragment"),
    ("spiffe://trust$domain/path", "id_trust_domain_char"),
    ("spiffe://trustdomain/path$", "id_path_char"),
    ("spiffe://TrustDomain/path", "id_trust_domain_case"),
    ("spiffe://[::1]/path", "id_trust_domain_char"),
    ("spiffe://trustdomain/a b", "id_path_char"),
    ("spiffe://trustdomain/p\u00e4th", "id_path_char"),
    (" spiffe://trustdomain/path", "id_scheme"),
    ("spiffe://trustdomain/path ", "id_path_char"),
    ("spiffe://" + "t" * 256 + "/path", "id_trust_domain_too_long"),
    ("spiffe://trustdomain/" + "a" * (2049 - len("spiffe://trustdomain/")), "id_too_long"),
]


class IdCheckTest(InteropTestCase):

    def test_lengths_of_boundary_vectors(self):
        self.assertEqual(len(VALID_IDS[-1]), 2048)
        self.assertEqual(len(INVALID_IDS[-1][0]), 2049)

    def test_accepts_valid_ids(self):
        for spiffe_id in VALID_IDS:
            with self.subTest(id=spiffe_id[:80]):
                result = tw("id", "check", spiffe_id)
                self.assertEqual(result.returncode, 0, describe(result))

    def test_rejects_invalid_ids(self):
        for spiffe_id, reason in INVALID_IDS:
            with self.subTest(id=spiffe_id[:80]):
                self.assert_rejected(tw("id", "check", spiffe_id), reason)


if __name__ == "__main__":
    unittest.main()
