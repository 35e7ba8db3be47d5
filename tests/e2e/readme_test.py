"""The README's commands, run as they stand, so the README cannot drift from the CLI: every
fenced block the README marks with `<!-- README test: NAME -->` is extracted and run here
(shell blocks against a throwaway server, with only its port and the binary's path put in;
the policy TOML through `policy validate` and `policy apply`)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from trustwarden_harness import (REPO, TW_BIN, Server, cli_env, describe, read_text,  # noqa: E402
                                 tw, write_file)

MARKED = re.compile(r"<!-- README test: (\w+) -->\n```(\w*)\n(.*?)\n```", re.S)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_blocks():
    return {name: (lang, body)
            for name, lang, body in MARKED.findall(read_text(os.path.join(REPO, "README.md")))}


class ReadmeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.blocks = readme_blocks()
        cls.tmp = tempfile.mkdtemp(prefix="tw-readme-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        # As `make run` lays it out: ./trustwarden-data beside where the commands run.
        cls.server = Server(cls.tmp, data_dir=os.path.join(cls.tmp, "trustwarden-data"))
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()

    def test_the_marked_blocks_exist(self):
        self.assertEqual(self.blocks["walkthrough"][0], "sh")
        self.assertEqual(self.blocks["policy"][0], "toml")
        self.assertEqual(self.blocks["audit"][0], "sh")
        self.assertEqual(self.blocks["hsm"][0], "sh")

    def test_the_server_walkthrough_runs_as_written(self):
        body = self.blocks["walkthrough"][1]
        self.assertIn("127.0.0.1:8443", body)
        script = (body.replace("127.0.0.1:8443", f"127.0.0.1:{self.server.port}")
                  .replace("T=build/bin/trustwarden", f"T={TW_BIN}"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTWARDEN_")}
        r = subprocess.run(
            ["bash", "-c", "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + script],
            cwd=self.tmp, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr}")
        self.assertIn("revoked 2 instance(s)", r.stdout)
        self.assertIn("revoked", r.stderr.splitlines()[-1])  # the last create was refused

    def test_the_audit_walkthrough_runs_as_written(self):
        """The incident's forensic commands, with the README's example instance and event
        ids replaced by real ones and its home directory by a temporary one."""
        body = self.blocks["audit"][1]
        env = cli_env(self.server, token=self.server.admin_token())
        out = os.path.join(self.tmp, "audited")
        r = tw("agent", "create", "--name", "acme/fin/audited", "--scope", "read:x",
               "--out", out, "--json", env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        instance = json.loads(r.stdout)["instance_id"]
        r = tw("audit", "query", "--instance", instance, "--json", env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        event_id = json.loads(r.stdout)["events"][0]["event_id"]
        time.sleep(1.5)  # a signed tree head covers every entry (sth_interval 1s)
        for placeholder in ("inst-x7k2mq4pad3bxxxx", "evt-019a3f0c5e7d2b81c4a6",
                            "127.0.0.1:8443", "$PWD/build/bin", "~/anchors"):
            self.assertIn(placeholder, body)
        home = os.path.join(self.tmp, "home")
        script = (body.replace("inst-x7k2mq4pad3bxxxx", instance)
                  .replace("evt-019a3f0c5e7d2b81c4a6", event_id)
                  .replace("127.0.0.1:8443", f"127.0.0.1:{self.server.port}")
                  .replace("$PWD/build/bin", os.path.dirname(TW_BIN))
                  .replace("~/anchors", os.path.join(home, "anchors")))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTWARDEN_")}
        r = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=self.tmp,
                           env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr}")
        self.assertIn(instance, r.stdout)        # audit query --instance
        self.assertIn(event_id, r.stdout)        # audit trace
        self.assertEqual(r.stdout.count("ledger intact"), 4, r.stdout)  # every verify

    def test_the_hsm_walkthrough_starts_a_server_with_every_key_in_the_token(self):
        """The SoftHSM2 block, in a directory of its own, with the server's port made free
        and the server run in the background; then an agent is issued by it."""
        body = self.blocks["hsm"][1]
        self.assertIn("127.0.0.1:8444", body)
        work = os.path.join(self.tmp, "hsm")
        os.makedirs(work)
        port = free_port()
        script = body.replace("127.0.0.1:8444", f"127.0.0.1:{port}")
        # The server command (with its continuation lines) goes to the background.
        script = re.sub(r"^(trustwarden server (?:.*\\\n)*.*)$", r"\1 >server.out 2>&1 &",
                        script, flags=re.M)
        self.assertIn("&\n", script + "\n")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TRUSTWARDEN_") and k != "SOFTHSM2_CONF"}
        env["PATH"] = os.path.dirname(TW_BIN) + os.pathsep + env.get("PATH", "")
        wait = (f"for i in $(seq 100); do grep -q listening server.out && break; sleep 0.1; done\n"
                f"export TRUSTWARDEN_SERVER=https://127.0.0.1:{port}\n"
                "export TRUSTWARDEN_BUNDLE=hsm-data/bundle.json\n"
                "export TRUSTWARDEN_TOKEN=$(cat hsm-data/admin.token)\n"
                "trustwarden agent create --name acme/fin/in-token --scope read:x --out a1\n"
                "openssl verify -CAfile hsm-data/bundle.pem a1/svid.pem\n"
                "ls hsm-data\n")
        r = subprocess.run(
            ["bash", "-c", "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n"
             + script + "\n" + wait],
            cwd=work, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr}\n"
                         + (read_text(os.path.join(work, "server.out"))
                            if os.path.exists(os.path.join(work, "server.out")) else ""))
        self.assertIn("a1/svid.pem: OK", r.stdout)
        self.assertIn("pkcs11:token=tw", r.stdout)  # what hsm init printed
        listed = r.stdout.split("a1/svid.pem: OK")[1].split()
        self.assertIn("ca.pem", listed)
        self.assertFalse([n for n in listed if n.endswith(".key.pem")], listed)

    def test_the_policy_example_is_valid_and_applies(self):
        path = write_file(os.path.join(self.tmp, "policy.toml"), self.blocks["policy"][1])
        r = tw("policy", "validate", path)
        self.assertEqual(r.returncode, 0, describe(r))
        r = tw("policy", "apply", path, env=cli_env(self.server, token=self.server.admin_token()))
        self.assertEqual(r.returncode, 0, describe(r))
        r = tw("token", "create", "--principal", "ci-pipeline",
               env=cli_env(self.server, token=self.server.admin_token()))
        self.assertEqual(r.returncode, 0, "the README's own principal" + describe(r))

    def test_the_foreign_grant_example_applies_and_is_published(self):
        path = write_file(os.path.join(self.tmp, "foreign.toml"),
                          self.blocks["policy"][1] + "\n" + self.blocks["foreign"][1])
        r = tw("policy", "apply", path, env=cli_env(self.server, token=self.server.admin_token()))
        self.assertEqual(r.returncode, 0, describe(r))
        grants = self.server.client().get("/v1/federation/grants").json["grants"]
        self.assertEqual([(g["trust_domain"], g["names"], g["scopes"]) for g in grants],
                         [("traffic.city", ["city/signals/*"], ["reduce:load"])])


if __name__ == "__main__":
    unittest.main(verbosity=2)
