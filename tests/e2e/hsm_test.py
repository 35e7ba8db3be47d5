"""The server with every key in a PKCS#11 token: SoftHSM2 from Debian, set up with its own
tool (softhsm2-util) in a temporary directory with its own SOFTHSM2_CONF, the keys made by
`trustwarden hsm init` and checked from outside with OpenSC's pkcs11-tool and OpenSSL."""

import base64
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from trustwarden_harness import (OPENSSL, TW_BIN, Server, cli_env, describe,  # noqa: E402
                                 read_text, run, tw, write_file)

SOFTHSM = os.environ.get("TW_SOFTHSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
FLAKY = os.environ.get("TW_FLAKY_PKCS11") or os.path.join(
    os.path.dirname(os.path.dirname(TW_BIN)), "src", "crypto", "libtw_flaky_pkcs11.so")


def setUpModule():
    for tool in ("softhsm2-util", "pkcs11-tool"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/bootstrap")
    for module in (SOFTHSM, FLAKY):
        if not os.path.isfile(module):
            raise RuntimeError(f"{module} is missing (SoftHSM2 from scripts/bootstrap, the flaky "
                               "module from the build)")


class Token:
    """A SoftHSM2 token of its own: configuration, token directory, label and PINs."""

    def __init__(self, workdir, label="tw"):
        self.dir = os.path.join(workdir, "softhsm")
        os.makedirs(os.path.join(self.dir, "tokens"))
        self.conf = write_file(os.path.join(self.dir, "softhsm2.conf"),
                               f"directories.tokendir = {self.dir}/tokens\n"
                               "objectstore.backend = file\nlog.level = ERROR\n")
        self.label, self.pin, self.so_pin = label, "246810", "13579111"
        self.pin_file = write_file(os.path.join(self.dir, "pin"), self.pin + "\n", 0o600)
        os.environ["SOFTHSM2_CONF"] = self.conf  # the CLI and the servers started below
        r = run(["softhsm2-util", "--init-token", "--free", "--label", label,
                 "--so-pin", self.so_pin, "--pin", self.pin])
        if r.returncode != 0:
            raise AssertionError(describe(r))

    def pkcs11_tool(self, *args):
        return run(["pkcs11-tool", "--module", SOFTHSM, "--token-label", self.label,
                    "--login", "--pin", self.pin, *args])


class TokenServerCase(unittest.TestCase):
    """A server started with the three keys `hsm init` made (given INIT_ARGS) in a token of
    its own, labelled LABEL."""

    LABEL = "tw"
    INIT_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=f"tw-{cls.LABEL}-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.token = Token(cls.tmp, label=cls.LABEL)
        r = tw("hsm", "init", "--module", SOFTHSM, "--token", cls.LABEL, "--pin-file",
               cls.token.pin_file, "--json", *cls.INIT_ARGS)
        if r.returncode != 0:
            raise AssertionError(describe(r))
        cls.keys = json.loads(r.stdout)
        cls.server = Server(os.path.join(cls.tmp, "server"), extra_args=[
            "--ca-key", cls.keys["ca_key"], "--jwt-key", cls.keys["jwt_key"],
            "--ledger-key", cls.keys["ledger_key"]])
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()

    def env(self):
        return cli_env(self.server, token=self.server.admin_token())

    def agent_dir(self, name):
        return os.path.join(self.tmp, name.replace("/", "-"))

    def new_agent(self, name):
        r = tw("agent", "create", "--name", name, "--scope", "read:x", "--out",
               self.agent_dir(name), "--json", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        return json.loads(r.stdout)


class HsmTest(TokenServerCase):

    def test_hsm_init_made_three_private_keys_in_the_token(self):
        self.assertEqual(set(self.keys), {"ca_key", "jwt_key", "ledger_key"})
        for uri in self.keys.values():
            self.assertTrue(uri.startswith("pkcs11:"), uri)
            self.assertIn("token=tw", uri)
            self.assertNotIn(self.token.pin, uri)
        r = self.token.pkcs11_tool("--list-objects", "--type", "privkey")
        self.assertEqual(r.returncode, 0, describe(r))
        for label in ("trustwarden-ca", "trustwarden-jwt", "trustwarden-ledger"):
            self.assertIn(f"label:      {label}", r.stdout)
        self.assertEqual(r.stdout.count("never extractable"), 3, r.stdout)
        # Again: the labels are taken, nothing is replaced.
        again = tw("hsm", "init", "--module", SOFTHSM, "--token", "tw", "--pin-file",
                   self.token.pin_file)
        self.assertEqual(again.returncode, 1, describe(again))
        self.assertIn("already holds", again.stderr)

    def test_the_private_keys_are_sensitive_and_sign_only(self):
        # (The C++ suite reads CKA_VALUE and gets CKR_ATTRIBUTE_SENSITIVE; pkcs11-tool does not
        # try to read private keys.) What the token says of each key:
        r = self.token.pkcs11_tool("--list-objects", "--type", "privkey")
        self.assertEqual(r.returncode, 0, describe(r))
        blocks = {}
        for block in r.stdout.split("Private Key Object")[1:]:
            fields = dict(line.strip().split(":", 1) for line in block.splitlines()[1:]
                          if ":" in line)
            blocks[fields["label"].strip()] = {k: v.strip() for k, v in fields.items()}
        for label in ("trustwarden-ca", "trustwarden-jwt", "trustwarden-ledger"):
            self.assertEqual(blocks[label]["Usage"], "sign", label)
            access = {a.strip() for a in blocks[label]["Access"].split(",")}
            self.assertLessEqual({"sensitive", "always sensitive", "never extractable", "local"},
                                 access, label)

    def test_no_private_key_file_is_in_the_data_directory(self):
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(self.server.data_dir, "*")))
        self.assertNotIn("ca.key.pem", names)
        self.assertNotIn("jwt.key.pem", names)
        self.assertNotIn("ledger.key.pem", names)
        self.assertIn("ledger.pub.pem", names)
        for path in glob.glob(os.path.join(self.server.data_dir, "*.pem")):
            self.assertNotIn("PRIVATE KEY", read_text(path), path)

    def test_svids_issued_by_the_token_verify_with_openssl_and_the_cli(self):
        agent = self.new_agent("acme/fin/hsm-agent")
        svid = os.path.join(self.tmp, "acme-fin-hsm-agent", "svid.pem")
        r = run([OPENSSL, "verify", "-CAfile", self.server.bundle_pem, svid])
        self.assertEqual(r.returncode, 0, describe(r))
        r = tw("svid", "verify", "--bundle", self.server.bundle_json, svid)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, agent["spiffe_id"]), describe(r))
        # The CA certificate's key is the token's.
        spki = os.path.join(self.tmp, "ca-pub.der")
        r = self.token.pkcs11_tool("--read-object", "--type", "pubkey", "--label",
                                   "trustwarden-ca", "--output-file", spki)
        self.assertEqual(r.returncode, 0, describe(r))
        in_token = run([OPENSSL, "pkey", "-pubin", "-inform", "DER", "-in", spki])
        in_cert = run([OPENSSL, "x509", "-in", os.path.join(self.server.data_dir, "ca.pem"),
                       "-noout", "-pubkey"])
        self.assertEqual(in_token.returncode, 0, describe(in_token))
        self.assertEqual(in_token.stdout, in_cert.stdout)

    def test_jwt_svids_and_the_ledger_are_signed_in_the_token(self):
        agent = self.new_agent("acme/fin/hsm-jwt")
        directory = os.path.join(self.tmp, "acme-fin-hsm-jwt")
        c = self.server.client(cert=os.path.join(directory, "svid.pem"),
                               key=os.path.join(directory, "key.pem"))
        r = c.post("/v1/jwt-svids", {"audience": ["db"]})
        self.assertEqual(r.status, 200, r)
        v = tw("jwt", "verify", "--bundle", self.server.bundle_json, "--audience", "db",
               r.json["token"])
        self.assertEqual(v.returncode, 0, describe(v))
        self.assertIn(agent["spiffe_id"], v.stdout)
        time.sleep(1.2)  # a tree head signed after the issuance
        r = tw("ledger", "verify", "--ledger-key",
               os.path.join(self.server.data_dir, "ledger.pub.pem"), env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertIn("ledger intact", r.stdout)

    def test_a_restart_finds_the_keys_again(self):
        before = read_text(self.server.bundle_json)
        self.server.stop()
        self.server.start()
        self.assertEqual(read_text(self.server.bundle_json), before)
        self.new_agent("acme/fin/after-restart")

    def test_z_a_rotation_makes_its_keys_in_the_same_token(self):
        # (Named to run last: it changes the CA the other tests use.)
        before = os.path.join(self.tmp, "ca-1.pem")
        shutil.copy(os.path.join(self.server.data_dir, "ca.pem"), before)
        r = tw("ca", "prepare", "--json", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        prepared = json.loads(r.stdout)
        self.assertIn("object=trustwarden-ca-2", prepared["ca_key"])
        self.assertIn("object=trustwarden-jwt-2", prepared["jwt_key"])
        listed = self.token.pkcs11_tool("--list-objects", "--type", "privkey").stdout
        for label in ("trustwarden-ca-2", "trustwarden-jwt-2"):
            self.assertIn(f"label:      {label}", listed)
        self.assertEqual(tw("ca", "activate", "--force", env=self.env()).returncode, 0)
        agent = self.new_agent("acme/fin/rotated")
        svid = os.path.join(self.tmp, "acme-fin-rotated", "svid.pem")
        r = run([OPENSSL, "verify", "-CAfile", self.server.bundle_pem, svid])
        self.assertEqual(r.returncode, 0, describe(r))
        # Signed by the new authority (ca.pem is the active chain), not the first.
        self.assertEqual(run([OPENSSL, "verify", "-CAfile",
                              os.path.join(self.server.data_dir, "ca.pem"), svid]).returncode, 0)
        self.assertNotEqual(run([OPENSSL, "verify", "-CAfile", before, svid]).returncode, 0)
        states = [a["state"] for a in
                  json.loads(tw("ca", "status", "--json", env=self.env()).stdout)["authorities"]]
        self.assertEqual(states, ["old", "active"])
        self.assertTrue(agent["spiffe_id"].startswith("spiffe://trustwarden/acme/fin/rotated/"))
        self.assertFalse(glob.glob(os.path.join(self.server.data_dir, "*.key.pem")))


class RsaPssTest(TokenServerCase):
    """The CA and JWT keys RSA-3072 in the token, signing with RSA-PSS (PS256)."""

    LABEL = "tw-rsa"
    INIT_ARGS = ("--key-type", "rsa-3072")

    def test_the_keys_are_rsa_3072_but_the_ledgers_which_stays_p256(self):
        listed = self.token.pkcs11_tool("--list-objects", "--type", "privkey").stdout
        blocks = {b.split("label:")[1].split()[0]: b
                  for b in listed.split("Private Key Object")[1:]}
        self.assertIn("RSA", blocks["trustwarden-ca"])
        self.assertIn("RSA", blocks["trustwarden-jwt"])
        self.assertIn("EC", blocks["trustwarden-ledger"])
        ca = run([OPENSSL, "x509", "-in", os.path.join(self.server.data_dir, "ca.pem"), "-noout",
                  "-text"]).stdout
        self.assertIn("Public-Key: (3072 bit)", ca)
        # RFC 4055 parameters, explicit: SHA-256, MGF1 with SHA-256, 32-byte salt.
        self.assertIn("Signature Algorithm: rsassaPss", ca)
        self.assertIn("Hash Algorithm: sha256", ca)
        self.assertIn("Mask Algorithm: mgf1 with sha256", ca)
        self.assertIn("Salt Length: 0x20", ca)

    def test_svids_verify_with_openssl_the_cli_and_over_mtls(self):
        agent = self.new_agent("acme/fin/rsa-agent")  # over TLS to a PSS-signed server cert
        out = self.agent_dir("acme/fin/rsa-agent")
        svid = os.path.join(out, "svid.pem")
        text = run([OPENSSL, "x509", "-in", svid, "-noout", "-text"]).stdout
        self.assertIn("Signature Algorithm: rsassaPss", text)
        self.assertIn("ASN1 OID: prime256v1", text)  # the agent's own key stays EC
        r = run([OPENSSL, "verify", "-x509_strict", "-CAfile", self.server.bundle_pem, svid])
        self.assertEqual(r.returncode, 0, describe(r))
        r = tw("svid", "verify", "--bundle", self.server.bundle_json, svid)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, agent["spiffe_id"]), describe(r))
        # mTLS with the SVID: the server checks its PSS chain, Python's ssl the server's.
        c = self.server.client(cert=svid, key=os.path.join(out, "key.pem"))
        r = c.post("/v1/jwt-svids", {"audience": ["db"]})
        self.assertEqual(r.status, 200, r)

    def test_jwt_svids_are_ps256_and_verify_against_the_bundles_rsa_key(self):
        agent = self.new_agent("acme/fin/rsa-jwt")
        out = self.agent_dir("acme/fin/rsa-jwt")
        c = self.server.client(cert=os.path.join(out, "svid.pem"),
                               key=os.path.join(out, "key.pem"))
        r = c.post("/v1/jwt-svids", {"audience": ["db"]})
        self.assertEqual(r.status, 200, r)
        token = r.json["token"]
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        self.assertEqual(header["alg"], "PS256")
        keys = json.loads(read_text(self.server.bundle_json))["keys"]
        jwt_keys = [k for k in keys if k.get("use") == "jwt-svid"]
        self.assertEqual([k["kty"] for k in jwt_keys], ["RSA"])
        self.assertEqual(jwt_keys[0]["kid"], header["kid"])
        v = tw("jwt", "verify", "--bundle", self.server.bundle_json, "--audience", "db", token)
        self.assertEqual(v.returncode, 0, describe(v))
        self.assertIn(agent["spiffe_id"], v.stdout)
        # One signature bit flipped: refused.
        head, claims, sig = token.split(".")
        raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
        raw[-1] ^= 1
        forged = ".".join([head, claims, base64.urlsafe_b64encode(raw).rstrip(b"=").decode()])
        v = tw("jwt", "verify", "--bundle", self.server.bundle_json, "--audience", "db", forged)
        self.assertEqual(v.returncode, 1, describe(v))


class HsmStartFailureTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tw-hsm-fail-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.token = Token(self.tmp, label="tw2")

    def test_a_wrong_pin_stops_the_start_without_showing_it(self):
        r = tw("hsm", "init", "--module", SOFTHSM, "--token", "tw2", "--pin-file",
               self.token.pin_file, "--json")
        self.assertEqual(r.returncode, 0, describe(r))
        keys = json.loads(r.stdout)
        wrong = write_file(os.path.join(self.tmp, "wrong.pin"), "999999\n", 0o600)
        ca = keys["ca_key"].replace(self.token.pin_file.replace("/", "%2F"),
                                    wrong.replace("/", "%2F"))
        self.assertNotEqual(ca, keys["ca_key"])
        data = os.path.join(self.tmp, "data")
        r = tw("server", "--data-dir", data, "--listen", "127.0.0.1:0", "--ca-key", ca,
               "--jwt-key", keys["jwt_key"], "--ledger-key", keys["ledger_key"])
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("refused the PIN", r.stderr)
        self.assertNotIn("999999", r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(data, "ca.pem")))

    def test_a_pin_in_the_uri_is_refused(self):
        r = tw("server", "--data-dir", os.path.join(self.tmp, "data"), "--listen", "127.0.0.1:0",
               "--ca-key", f"pkcs11:token=tw2;object=x?module-path={SOFTHSM}&pin-value=246810")
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("pin-value is refused", r.stderr)


class TokenOutageTest(unittest.TestCase):
    """The token goes away under a running server (the flaky module in front of SoftHSM2
    fails as a removed token while a file exists), then comes back."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tw-hsm-outage-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.token = Token(self.tmp, label="tw3")
        self.down = os.path.join(self.tmp, "down")
        os.environ["TW_FLAKY_PKCS11_MODULE"] = SOFTHSM
        os.environ["TW_FLAKY_PKCS11_DOWN"] = self.down
        r = tw("hsm", "init", "--module", FLAKY, "--token", "tw3", "--pin-file",
               self.token.pin_file, "--json")
        self.assertEqual(r.returncode, 0, describe(r))
        keys = json.loads(r.stdout)
        self.server = Server(os.path.join(self.tmp, "server"), extra_args=[
            "--ca-key", keys["ca_key"], "--jwt-key", keys["jwt_key"],
            "--ledger-key", keys["ledger_key"]])
        self.addCleanup(self.server.stop)
        self.server.start()
        self.admin = self.server.client(token=self.server.admin_token())

    def create(self, name):
        r = tw("agent", "create", "--name", name, "--scope", "read:x", "--out",
               os.path.join(self.tmp, name.replace("/", "-")), "--json",
               env=cli_env(self.server, token=self.server.admin_token()))
        return r

    def test_issuance_answers_503_while_the_token_is_away_then_recovers(self):
        self.assertEqual(self.create("acme/fin/before").returncode, 0)
        before = len(self.admin.get("/v1/identities").json["identities"])
        write_file(self.down, "")
        for i in range(5):
            r = self.create(f"acme/fin/during-{i}")
            self.assertEqual(r.returncode, 3, describe(r))
            self.assertIn("unavailable", r.stderr)
        raw = self.admin.get("/healthz")
        self.assertEqual(raw.status, 200, "the server itself stays up")
        # Nothing half-made: no instance and no issuance event for the refused requests.
        self.assertEqual(len(self.admin.get("/v1/identities").json["identities"]), before)
        os.unlink(self.down)
        deadline = time.monotonic() + 10
        while True:
            r = self.create("acme/fin/after")
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(len(self.admin.get("/v1/identities").json["identities"]), before + 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
