"""The operator's CLI end to end, as a newcomer meets it: usage errors that name the unknown
word and suggest the nearest command or flag, the documented exit codes (0 ok, 1 refused or
invalid, 2 usage, 3 unreachable), and the messages of the first mistakes people make."""

import json
import os
import pty
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from trustwarden_harness import (ADMIN_ENTRY, OPENSSL, TW_BIN, Server, ServerTestCase,  # noqa: E402
                                 cli_env, describe, new_key, public_pem, read_text, run, tw,
                                 write_file)


class UsageTest(unittest.TestCase):
    """Nothing here needs a server: the command line is refused before anything runs."""

    def usage_error(self, *argv):
        r = tw(*argv)
        self.assertEqual(r.returncode, 2, describe(r))
        self.assertEqual(r.stdout, "", describe(r))
        return r.stderr

    def test_a_mistyped_command_is_named_with_the_nearest(self):
        for argv, word, near in [(("agnet", "list"), "agnet", "agent"),
                                 (("agent", "lst"), "lst", "list"),
                                 (("revok", "--instance", "x"), "revok", "revoke"),
                                 (("ledgr", "verify"), "ledgr", "ledger"),
                                 (("policy", "aply", "f.toml"), "aply", "apply")]:
            err = self.usage_error(*argv)
            self.assertIn(f'unknown command "{word}"', err)
            self.assertIn(f'did you mean "{near}"?', err)

    def test_an_unknown_command_without_a_near_one_lists_the_choices(self):
        err = self.usage_error("agent", "delete")
        self.assertIn('unknown command "delete" for "trustwarden agent"', err)
        self.assertIn("(commands: create, list, show)", err)
        self.assertIn('Run "trustwarden agent --help"', err)

    def test_a_mistyped_flag_is_named_with_the_nearest(self):
        err = self.usage_error("agent", "list", "--jsn")
        self.assertIn('unknown flag "--jsn" for "trustwarden agent list"', err)
        self.assertIn('did you mean "--json"?', err)
        err = self.usage_error("agent", "create", "--nmae=x", "--out", "d")
        self.assertIn('unknown flag "--nmae"', err)
        self.assertIn('did you mean "--name"?', err)

    def test_a_group_without_its_command_names_its_commands(self):
        err = self.usage_error("token")
        self.assertIn('"trustwarden token" needs a command: create, list, revoke', err)

    def test_revoke_names_its_targets_when_none_or_two_are_given(self):
        for argv in (("revoke", "--reason", "r"), ("revoke", "--instance", "a", "--subtree", "b")):
            err = self.usage_error(*argv)
            self.assertIn("--instance,--agent,--subtree,--principal", err, argv)
            self.assertNotIn("needs a command", err, argv)

    def test_a_bad_time_is_named_with_the_forms_it_may_take(self):
        r = tw("audit", "query", "--since", "12x", env={"TRUSTWARDEN_SERVER": "https://127.0.0.1:1"})
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("duration ago (1h, 30m)", r.stderr)

    def test_help_and_version_exit_0(self):
        for argv in (("--help",), ("agent", "--help"), ("--version",)):
            r = tw(*argv)
            self.assertEqual(r.returncode, 0, describe(r))
            self.assertTrue(r.stdout.strip(), describe(r))


class CompletionAndManualTest(unittest.TestCase):
    """Both are generated from the command tree, so they name every command there is."""

    def complete(self, line):
        """What bash completion offers for `line` (the last word is the one being typed)."""
        script = tw("completion", "bash").stdout
        words = line.split(" ")
        program = (f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
                   f"COMP_CWORD={len(words) - 1}\n"
                   f"_trustwarden trustwarden {words[-1]!r} {words[-2]!r}\n"
                   "echo \"${COMPREPLY[*]}\"\n")
        r = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.split()

    def test_the_bash_script_parses_and_completes_commands_and_flags(self):
        r = tw("completion", "bash")
        self.assertEqual(r.returncode, 0, describe(r))
        check = subprocess.run(["bash", "-n"], input=r.stdout, capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertEqual(self.complete("trustwarden ag"), ["agent"])
        self.assertEqual(self.complete("trustwarden agent l"), ["list"])
        self.assertIn("--json", self.complete("trustwarden agent list --"))
        self.assertLessEqual({"apply", "validate", "diff", "show", "history"},
                             set(self.complete("trustwarden policy ")))
        # a flag's value in between does not lose the command
        self.assertEqual(self.complete("trustwarden --help ag"), ["agent"])

    def zsh_complete(self, line):
        """What the zsh script offers for `line`, called as zsh's bashcompinit calls a bash
        function: COMP_WORDS the words as a zsh array (numbered from 1), COMP_CWORD the
        current word's position - 1. zsh's compgen leaves matching the word being typed to
        compadd, so the candidates are filtered by its prefix here."""
        script = tw("completion", "zsh").stdout
        words = line.split(" ")
        program = ("autoload -U +X compinit && compinit -u\n" + script +
                   f"\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
                   f"COMP_CWORD={len(words) - 1}\n"
                   f"_trustwarden trustwarden {words[-1]!r} {words[-2]!r}\n"
                   "print -r -- \"${COMPREPLY[@]}\"\n")
        r = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [w for w in r.stdout.split() if w.startswith(words[-1])]

    def test_the_zsh_script_parses_and_completes_commands_and_flags(self):
        r = tw("completion", "zsh")
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertTrue(r.stdout.startswith("#compdef trustwarden"), r.stdout[:80])
        check = subprocess.run(["zsh", "-n"], input=r.stdout, capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertEqual(self.zsh_complete("trustwarden ag"), ["agent"])
        self.assertEqual(self.zsh_complete("trustwarden agent l"), ["list"])
        self.assertIn("--json", self.zsh_complete("trustwarden agent list --"))
        self.assertEqual(tw("completion", "fish").returncode, 2)

    def test_the_manual_page_renders_every_command(self):
        with tempfile.TemporaryDirectory() as tmp:
            page = write_file(os.path.join(tmp, "trustwarden.1"), tw("man").stdout)
            r = subprocess.run(["man", "-l", page], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="100"))
            self.assertEqual(r.returncode, 0, r.stderr)
        for text in ("EXIT STATUS", "trustwarden agent list", "trustwarden policy diff",
                     "trustwarden completion", "--json"):
            self.assertIn(text, r.stdout.replace("\u2010", "-"))


class OfflineTest(unittest.TestCase):

    def test_an_svid_outliving_its_ca_is_cut_and_says_so(self):
        with tempfile.TemporaryDirectory() as tmp:
            ca = os.path.join(tmp, "ca")
            r = tw("ca", "init", "--trust-domain", "x.test", "--out", ca, "--ttl", "30d")
            self.assertEqual(r.returncode, 0, describe(r))
            key = write_file(os.path.join(tmp, "pub.pem"), public_pem(new_key()))
            out = os.path.join(tmp, "svid.pem")
            argv = ("svid", "issue", "--ca", ca, "--spiffe-id", "spiffe://x.test/a",
                    "--public-key", key, "--out", out)
            r = tw(*argv, "--ttl", "400d")
            self.assertEqual(r.returncode, 0, describe(r))
            self.assertIn("warning: --ttl 400d ends after the CA certificate; cut to its end",
                          r.stderr)
            r = tw(*argv, "--ttl", "1h")
            self.assertEqual(r.returncode, 0, describe(r))
            self.assertEqual(r.stderr, "", describe(r))


class BundleTest(ServerTestCase):

    def test_jwt_verify_with_a_pem_bundle_says_what_is_missing(self):
        out = os.path.join(self.tmp, "jwt-ca")
        r = tw("ca", "init", "--trust-domain", "x.test", "--out", out)
        self.assertEqual(r.returncode, 0, describe(r))
        r = tw("jwt", "mint", "--ca", out, "--spiffe-id", "spiffe://x.test/a", "--audience", "b")
        self.assertEqual(r.returncode, 0, describe(r))
        token = r.stdout.strip().splitlines()[-1]
        r = tw("jwt", "verify", "--bundle", os.path.join(out, "bundle.pem"), "--audience", "b",
               token)
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("is a PEM bundle", r.stderr)
        self.assertIn("bundle.json", r.stderr)
        r = tw("jwt", "verify", "--bundle", os.path.join(out, "bundle.json"), "--audience", "b",
               token)
        self.assertEqual(r.returncode, 0, describe(r))

    def test_the_cli_defaults_to_the_json_bundle(self):
        env = cli_env(self.server, token=self.admin_token)
        del env["TRUSTWARDEN_BUNDLE"]
        r = tw("agent", "list", env=env, cwd=os.path.dirname(self.server.data_dir))
        self.assertEqual(r.returncode, 1, describe(r))  # run elsewhere: names the default
        self.assertIn("trustwarden-data/bundle.json", r.stderr)


class OfflineJsonTest(unittest.TestCase):
    """The offline tools print one JSON document with --json, and a failure's error too."""

    def doc(self, *argv, code=0):
        r = tw(*argv, "--json")
        self.assertEqual(r.returncode, code, describe(r))
        return json.loads(r.stdout)

    def test_every_offline_tool_prints_one_document(self):
        self.assertEqual(self.doc("id", "check", "spiffe://x.test/a/b"),
                         {"spiffe_id": "spiffe://x.test/a/b", "trust_domain": "x.test",
                          "path": "/a/b"})
        bad = self.doc("id", "check", "spiffe://X.test/a", code=1)
        self.assertEqual(bad["error"]["code"], "invalid_argument")
        with tempfile.TemporaryDirectory() as tmp:
            ca = os.path.join(tmp, "ca")
            init = self.doc("ca", "init", "--trust-domain", "x.test", "--out", ca)
            self.assertEqual(init["trust_domain"], "x.test")
            key = write_file(os.path.join(tmp, "pub.pem"), public_pem(new_key()))
            out = os.path.join(tmp, "svid.pem")
            issued = self.doc("svid", "issue", "--ca", ca, "--spiffe-id", "spiffe://x.test/a",
                              "--public-key", key, "--ttl", "1h", "--out", out)
            self.assertEqual((issued["spiffe_id"], issued["out"]), ("spiffe://x.test/a", out))
            verified = self.doc("svid", "verify", "--bundle", os.path.join(ca, "bundle.json"), out)
            self.assertEqual(verified, {"valid": True, "spiffe_id": "spiffe://x.test/a",
                                        "revocation_checked": False})
            minted = self.doc("jwt", "mint", "--ca", ca, "--spiffe-id", "spiffe://x.test/a",
                              "--audience", "b")
            checked = self.doc("jwt", "verify", "--bundle", os.path.join(ca, "bundle.json"),
                               "--audience", "b", minted["token"])
            self.assertEqual((checked["valid"], checked["spiffe_id"]), (True, "spiffe://x.test/a"))
            wrong = self.doc("jwt", "verify", "--bundle", os.path.join(ca, "bundle.json"),
                             "--audience", "c", minted["token"], code=1)
            self.assertIn("audience", wrong["error"]["message"])


class FailedStartTest(unittest.TestCase):
    """A server that cannot start leaves no half-made data directory, CA or token behind."""

    def test_port_in_use_and_bad_store_leave_nothing(self):
        with tempfile.TemporaryDirectory() as tmp, socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            fresh = os.path.join(tmp, "fresh")
            r = tw("server", "--data-dir", fresh, "--listen", f"127.0.0.1:{port}")
            self.assertEqual(r.returncode, 1, describe(r))
            self.assertIn("cannot listen", r.stderr)
            self.assertFalse(os.path.exists(fresh), "a data directory was left behind")
            empty = os.path.join(tmp, "empty")
            os.mkdir(empty)
            r = tw("server", "--data-dir", empty, "--listen", f"127.0.0.1:{port}")
            self.assertEqual(r.returncode, 1, describe(r))
            self.assertEqual(os.listdir(empty), [], "the CA or store was left behind")
            r = tw("server", "--data-dir", fresh, "--listen", "127.0.0.1:0", "--store",
                   "postgres://db.invalid/tw")
            self.assertEqual(r.returncode, 1, describe(r))
            self.assertFalse(os.path.exists(fresh))


class ExitCodeTest(ServerTestCase):

    def test_an_unreachable_server_exits_3(self):
        env = cli_env(self.server, token=self.admin_token)
        env["TRUSTWARDEN_SERVER"] = "https://127.0.0.1:1"
        r = tw("agent", "list", env=env)
        self.assertEqual(r.returncode, 3, describe(r))
        self.assertIn("error:", r.stderr)

    def test_a_missing_token_is_named_first(self):
        env = cli_env(self.server)  # no TRUSTWARDEN_TOKEN
        for argv in (("agent", "create", "--name", "a/b/c", "--out",
                      os.path.join(self.tmp, "no-token")),
                     ("revoke", "--instance", "inst-aaaaaaaaaaaaaaaa"),
                     ("agent", "list")):
            r = tw(*argv, env=env)
            self.assertEqual(r.returncode, 1, describe(r))
            self.assertTrue(r.stderr.startswith("error: no token: set TRUSTWARDEN_TOKEN or pass "
                                                "--token"), describe(r))

    def test_a_refusal_exits_1(self):
        r = tw("agent", "list", env=cli_env(self.server, token="tw_wrong_token"))
        self.assertEqual(r.returncode, 1, describe(r))



class ApiCommandsTest(ServerTestCase):
    """The API clients: --json on every one, tables with headers, revocation feedback."""

    def run_ok(self, *argv, env=None):
        r = tw(*argv, env=env or cli_env(self.server, token=self.admin_token))
        self.assertEqual(r.returncode, 0, describe(r))
        return r

    def document(self, *argv, env=None):
        r = self.run_ok(*argv, "--json", env=env)
        try:
            return json.loads(r.stdout)
        except ValueError:
            self.fail(f"not one JSON document: {describe(r)}")

    def new_agent(self, name):
        out = os.path.join(self.tmp, "cli", name.replace("/", "-"))
        return self.document("agent", "create", "--name", name, "--scope", "read:transactions",
                             "--out", out)

    def test_every_api_command_prints_one_json_document(self):
        created = self.new_agent("acme/fin/json-doc")
        self.assertEqual(set(created) >= {"spiffe_id", "instance_id", "expires_at", "directory",
                                          "files"}, True, created)
        instance = created["instance_id"]
        listed = self.document("agent", "list")
        self.assertIn(instance, [i["instance_id"] for i in listed["identities"]])
        shown = self.document("agent", "show", instance)
        self.assertEqual((shown["instance_id"], shown["revoked"]), (instance, False))
        revoked = self.document("revoke", "--instance", instance, "--reason", "test")
        self.assertEqual(revoked["revoked"], [instance])
        self.assertIsInstance(revoked["sequence"], int)
        policy_file = write_file(os.path.join(self.tmp, "policy.toml"), ADMIN_ENTRY)
        applied = self.document("policy", "apply", policy_file)
        self.assertIsInstance(applied["version"], int)
        self.assertEqual(self.document("policy", "show")["version"], applied["version"])
        self.assertIn(applied["version"],
                      [p["version"] for p in self.document("policy", "history")["policies"]])
        token = self.document("token", "create", "--principal", "ci-pipeline", "--ttl", "1h",
                              "--force")
        self.assertTrue(token["token"].startswith("tw_"), token)
        self.assertIn(token["id"], [t["id"] for t in self.document("token", "list")["tokens"]])
        self.assertEqual(self.document("token", "revoke", token["id"]),
                         {"id": token["id"], "revoked": True})
        self.assertIn("keys", self.document("bundle", "show"))

    def test_tables_have_headers(self):
        self.new_agent("acme/fin/tabled")
        for argv, header in [(("agent", "list"), ["INSTANCE", "SPIFFE", "ID", "EXPIRES", "STATUS"]),
                             (("token", "list"), ["ID", "PRINCIPAL", "KIND", "CREATED", "EXPIRES",
                                                  "REVOKED"]),
                             (("policy", "history"), ["VERSION", "APPLIED", "SHA256"])]:
            lines = self.run_ok(*argv).stdout.splitlines()
            self.assertEqual(lines[0].split(), header, lines)
            self.assertGreater(len(lines), 1, lines)
        shown = self.run_ok("agent", "show",
                            self.new_agent("acme/fin/shown")["instance_id"]).stdout
        self.assertIn("spiffe_id:", shown)
        self.assertIn("revoked:", shown)

    def test_agent_show_takes_a_spiffe_id_and_shows_the_revocation(self):
        parent = self.new_agent("acme/fin/shown-parent")
        child_dir = os.path.join(self.tmp, "cli", "shown-child")
        r = tw("agent", "create", "--name", "helper", "--scope", "read:transactions",
               "--parent-dir", parent["directory"], "--out", child_dir, "--json",
               env=cli_env(self.server, bundle=os.path.join(parent["directory"], "bundle.json")))
        self.assertEqual(r.returncode, 0, describe(r))
        child = json.loads(r.stdout)
        self.run_ok("revoke", "--subtree", parent["instance_id"], "--reason", "incident 7")
        shown = self.document("agent", "show", child["spiffe_id"])
        self.assertEqual(shown["instance_id"], child["instance_id"])
        rev = shown["revocation"]
        self.assertEqual((rev["reason"], rev["kind"], rev["cascaded_from"]),
                         ("incident 7", "subtree", parent["instance_id"]))
        self.assertTrue(rev["revoked_at"])
        self.assertEqual(rev["revoked_by"], "principal:admin")
        own = self.document("agent", "show", parent["instance_id"])["revocation"]
        self.assertIsNone(own["cascaded_from"])
        text = self.run_ok("agent", "show", child["instance_id"]).stdout
        self.assertIn("revoked_because:", text)
        self.assertRegex(text, rf"cascaded_from:\s+{parent['instance_id']}")
        self.assertRegex(text, r"revoked_by:\s+principal:admin")
        # The cascade is in the child's own audit trail.
        trail = self.document("audit", "query", "--instance", child["instance_id"],
                              "--type", "revocation")["events"]
        self.assertEqual([e["event"]["reason"] for e in trail],
                         [f"cascaded from subtree:{parent['instance_id']}: incident 7"])

    def test_long_operations_show_progress_on_a_terminal_only(self):
        self.new_agent("acme/fin/progress")
        env = cli_env(self.server, self.server.admin_token(), self.server.bundle_json)
        export = os.path.join(self.tmp, "progress.export")
        for argv in (("ledger", "verify", "--json"), ("ledger", "export", export, "--json")):
            # stderr on a pipe: nothing but errors.
            piped = tw(*argv, env=env)
            self.assertEqual(piped.returncode, 0, describe(piped))
            self.assertEqual(piped.stderr, "", argv)
            # stderr on a terminal: a progress line, erased before the result.
            master, slave = pty.openpty()
            p = subprocess.Popen([TW_BIN, *argv], env=env, stdout=subprocess.PIPE,
                                 stderr=slave, stdin=subprocess.DEVNULL)
            os.close(slave)
            seen = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the terminal's last writer exited
                    break
                if not chunk:
                    break
                seen += chunk
            os.close(master)
            out, _ = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, seen)
            json.loads(out)  # stdout is still one document
            self.assertRegex(seen, rb"(fetching|verifying|exporting)  [0-9,]+(/[0-9,]+)? entries",
                             argv)
            self.assertTrue(seen.endswith(b"\r\x1b[K"), seen)

    def test_audit_query_prints_a_table_or_says_nothing_matched(self):
        agent = self.new_agent("acme/fin/audit-tabled")
        text = self.run_ok("audit", "query", "--instance", agent["instance_id"]).stdout
        lines = text.splitlines()
        self.assertEqual(lines[0].split(), ["INDEX", "TIME", "TYPE", "DECISION", "SUBJECT",
                                            "ACTION", "RESOURCE", "REASON", "EVENT"])
        self.assertIn(agent["spiffe_id"], lines[1])
        self.assertEqual(lines[0].index("TYPE"), lines[1].index("issuance"), "aligned")
        none = self.run_ok("audit", "query", "--instance", "inst-aaaaaaaaaaaaaaaa").stdout
        self.assertEqual(none, "no events match\n")
        r = tw("audit", "query", "--instance", "garbage",
               env=cli_env(self.server, token=self.admin_token))
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("garbage", r.stderr)

    def test_a_wrong_bundle_is_named_with_the_fix(self):
        other = os.path.join(self.tmp, "other-ca")
        self.assertEqual(tw("ca", "init", "--trust-domain", "other.test", "--out", other).returncode, 0)
        r = tw("agent", "list", env=cli_env(self.server, token=self.admin_token,
                                             bundle=os.path.join(other, "bundle.json")))
        self.assertEqual(r.returncode, 3, describe(r))
        self.assertIn("does not chain to", r.stderr)
        self.assertIn("trustwarden bootstrap", r.stderr)

    def test_refused_requests_are_in_the_ledger(self):
        agent = self.new_agent("acme/fin/refused")
        other = self.new_agent("acme/fin/bystander")
        as_agent = self.server.client(cert=os.path.join(agent["directory"], "svid.pem"),
                                      key=os.path.join(agent["directory"], "key.pem"))
        r = as_agent.post("/v1/revocations", {"instance": other["instance_id"]})
        self.assertEqual(r.status, 403, r)
        denied = self.document("audit", "query", "--caller", agent["instance_id"],
                               "--decision", "deny", "--type", "revocation")["events"]
        self.assertEqual([e["event"]["resource"] for e in denied],
                         [f"instance:{other['instance_id']}"])
        self.assertIn("only itself or its subtree", denied[0]["event"]["reason"])

    def test_svid_verify_with_a_server_checks_its_revocation_log(self):
        created = self.new_agent("acme/fin/verify-me")
        svid = os.path.join(created["directory"], "svid.pem")
        bundle = self.server.bundle_json
        argv = ("svid", "verify", "--bundle", bundle, "--server", self.server.url, svid)
        r = tw(*argv, "--json", env={})
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(json.loads(r.stdout)["revocation_checked"], True)
        self.run_ok("revoke", "--instance", created["instance_id"], "--reason", "lost laptop")
        self.assertEqual(tw("svid", "verify", "--bundle", bundle, svid, env={}).returncode, 0,
                         "offline, a revoked SVID still verifies")
        r = tw(*argv, env={})
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("is revoked", r.stderr)
        self.assertIn("lost laptop", r.stderr)

    def test_revoking_nothing_is_an_error_and_uses_no_sequence(self):
        before = self.admin.get("/v1/revocations?after=0").json["sequence"]
        env = cli_env(self.server, token=self.admin_token)
        for argv in (("--agent", "acme/fin/nobody"), ("--principal", "nobody")):
            r = tw("revoke", *argv, env=env)
            self.assertEqual(r.returncode, 1, describe(r))
            self.assertIn("nothing to revoke", r.stderr)
        instance = self.new_agent("acme/fin/once")["instance_id"]
        self.run_ok("revoke", "--instance", instance)
        r = tw("revoke", "--instance", instance, env=env)  # again: already revoked
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("nothing to revoke", r.stderr)
        self.assertEqual(self.admin.get("/v1/revocations?after=0").json["sequence"], before + 1)



CHANGED_POLICY = ADMIN_ENTRY + """
[principals.ci-pipeline]
names = ["acme-corp/finance-team/*"]
scopes = ["read:transactions"]
max_ttl = "1h"
max_trust_level = "high"
may_delegate = false
max_depth = 0
"""


class PolicyCommandsTest(ServerTestCase):
    """policy validate / diff / apply --dry-run, identical documents, and tokens for
    principals the policy does not name."""

    def env(self):
        return cli_env(self.server, token=self.admin_token)

    def version(self):
        return self.admin.get("/v1/policies/current").json["version"]

    def test_validate_checks_offline(self):
        good = write_file(os.path.join(self.tmp, "good.toml"), CHANGED_POLICY)
        r = tw("policy", "validate", good, "--json", env={})
        self.assertEqual(r.returncode, 0, describe(r))
        doc = json.loads(r.stdout)
        self.assertEqual((doc["valid"], sorted(doc["principals"])), (True, ["admin", "ci-pipeline"]))
        bad = write_file(os.path.join(self.tmp, "bad.toml"), "[principals.x]\nnames = 3\n")
        r = tw("policy", "validate", bad, env={})
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("bad.toml", r.stderr)

    def test_diff_and_dry_run_change_nothing(self):
        before = self.version()
        unique = CHANGED_POLICY.replace("principals.ci-pipeline", "principals.diff-only")
        path = write_file(os.path.join(self.tmp, "changed.toml"), unique)
        r = tw("policy", "diff", path, env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertIn("+ /principals/diff-only", r.stdout)
        r = tw("policy", "apply", "--dry-run", path, "--json", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        doc = json.loads(r.stdout)
        self.assertEqual((doc["dry_run"], doc["unchanged"], doc["current_version"]),
                         (True, False, before))
        self.assertIn({"op": "add", "path": "/principals/diff-only"},
                      [{k: c[k] for k in ("op", "path")} for c in doc["changes"]])
        self.assertEqual(self.version(), before)

    def test_applying_an_identical_document_is_a_no_op(self):
        path = write_file(os.path.join(self.tmp, "same.toml"), "# v2\n" + CHANGED_POLICY)
        r = tw("policy", "apply", path, env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        applied = self.version()
        r = tw("policy", "apply", path, env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertIn("unchanged: identical to policy version", r.stdout)
        self.assertEqual(self.version(), applied)
        r = tw("policy", "diff", path, env=self.env())
        self.assertIn("no change", r.stdout)

    def test_a_refused_creation_is_recorded_in_the_ledger(self):
        path = write_file(os.path.join(self.tmp, "ci.toml"), CHANGED_POLICY)
        self.assertEqual(tw("policy", "apply", path, env=self.env()).returncode, 0)
        ci = tw("token", "create", "--principal", "ci-pipeline", env=self.env()).stdout.strip()
        r = tw("agent", "create", "--name", "acme-corp/other-team/bot", "--scope",
               "read:transactions", "--out", os.path.join(self.tmp, "refused"),
               env=cli_env(self.server, token=ci))
        self.assertEqual(r.returncode, 1, describe(r))
        events = self.admin.get("/v1/audit/events?type=issuance&decision=deny").json["events"]
        refused = [e["event"] for e in events
                   if e["event"].get("resource") == "agent:acme-corp/other-team/bot"]
        self.assertEqual(len(refused), 1, events)
        self.assertEqual(refused[0]["principal"], "ci-pipeline")
        self.assertTrue(refused[0]["reason"], refused[0])

    def test_a_token_for_a_principal_the_policy_does_not_name_needs_force(self):
        r = tw("token", "create", "--principal", "ci-pipelin", env=self.env())
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn('principal "ci-pipelin" is not named in policy version', r.stderr)
        self.assertEqual(r.stdout, "")
        r = tw("token", "create", "--principal", "ci-pipelin", "--force", env=self.env())
        self.assertEqual(r.returncode, 0, describe(r))
        r = tw("token", "create", "--principal", "soc", "--auditor", env=self.env())
        self.assertEqual(r.returncode, 0, "auditors need no policy entry" + describe(r))



class StatusTest(ServerTestCase):
    """trustwarden status against a healthy server, a stopped one, the wrong bundle and an
    expired token."""

    def status(self, env):
        r = tw("status", "--json", env=env)
        doc = json.loads(r.stdout)
        return r.returncode, {c["name"]: c for c in doc["checks"]}, doc

    def test_a_healthy_set_up_is_all_ok(self):
        code, checks, doc = self.status(cli_env(self.server, token=self.admin_token))
        self.assertEqual(code, 0, doc)
        self.assertTrue(doc["ok"])
        self.assertEqual(set(checks), {"server", "bundle", "clock", "token", "policy",
                                       "revocations", "ledger"})
        self.assertTrue(all(c["ok"] and c["fix"] is None for c in checks.values()), checks)
        self.assertIn("admin", checks["token"]["detail"])
        text = tw("status", env=cli_env(self.server, token=self.admin_token)).stdout
        self.assertEqual(text.splitlines()[0].split(), ["CHECK", "STATUS", "DETAIL"])
        self.assertNotIn("\033[", text, "no colour on a pipe")

    def test_the_wrong_bundle_is_named_with_its_fix(self):
        other = Server(os.path.join(self.tmp, "other"))
        self.addCleanup(other.stop)
        other.start()
        code, checks, _ = self.status(cli_env(self.server, token=self.admin_token,
                                              bundle=other.bundle_json))
        self.assertEqual(code, 1)
        self.assertFalse(checks["bundle"]["ok"])
        self.assertIn("does not chain to the local bundle", checks["bundle"]["detail"])
        self.assertTrue(checks["bundle"]["fix"])

    def test_a_principal_token_shows_its_principal_and_expiry(self):
        r = self.admin.post("/v1/tokens", {"principal": "ci-status", "ttl": "2h", "force": True})
        self.assertEqual(r.status, 201, r)
        code, checks, doc = self.status(cli_env(self.server, token=r.json["token"]))
        detail = checks["token"]["detail"]
        self.assertTrue(checks["token"]["ok"], doc)
        self.assertIn("principal token", detail)
        self.assertIn("principal ci-status", detail)
        self.assertIn(f"expires {r.json['expires_at']}", detail)
        self.assertIn(r.json["id"], detail)
        self.assertIn("needs the admin token", checks["policy"]["detail"])
        self.assertIn("needs an admin or auditor token", checks["ledger"]["detail"])

    def test_an_expired_token_is_named(self):
        r = self.admin.post("/v1/tokens", {"principal": "brief", "ttl": "1s", "force": True})
        self.assertEqual(r.status, 201, r)
        time.sleep(1.5)
        code, checks, _ = self.status(cli_env(self.server, token=r.json["token"]))
        self.assertEqual(code, 1)
        self.assertFalse(checks["token"]["ok"])
        self.assertIn("expired", checks["token"]["detail"])
        self.assertIn("token create", checks["token"]["fix"])

    def test_a_stopped_server_exits_3(self):
        other = Server(os.path.join(self.tmp, "stopped"))
        other.start()
        env = cli_env(other, token=other.admin_token())
        other.stop()
        code, checks, _ = self.status(env)
        self.assertEqual(code, 3)
        self.assertFalse(checks["server"]["ok"])
        self.assertIn("start it", checks["server"]["fix"])



class BootstrapTest(ServerTestCase):
    """First trust in a server, pinned by the CA fingerprint it printed at start."""

    def fingerprint(self):
        out = read_text(self.server.stdout_path(self.server.runs))
        return re.search(r"CA fingerprint \(SHA-256, for trustwarden bootstrap\): ([0-9a-f]{64})",
                         out).group(1)

    def client_dir(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        return d

    def env(self):
        env = cli_env(self.server, token=self.admin_token)
        del env["TRUSTWARDEN_BUNDLE"]  # the default: ./trustwarden-data/bundle.json
        return env

    def test_the_printed_fingerprint_is_the_ca_certificates(self):
        r = run([OPENSSL, "x509", "-noout", "-fingerprint", "-sha256", "-in",
                 self.server.bundle_pem])
        self.assertEqual(r.stdout.split("=")[1].strip().replace(":", "").lower(),
                         self.fingerprint())

    def test_a_wrong_fingerprint_writes_nothing(self):
        cwd = self.client_dir("wrong")
        r = tw("bootstrap", "--fingerprint", "ab" * 32, env=self.env(), cwd=cwd)
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("nothing was written", r.stderr)
        self.assertEqual(os.listdir(cwd), [])

    def test_bootstrap_then_every_command_trusts_the_server(self):
        cwd = self.client_dir("right")
        openssl_style = "sha256 Fingerprint=" + ":".join(
            re.findall("..", self.fingerprint().upper()))
        r = tw("bootstrap", "--fingerprint", openssl_style, "--json", env=self.env(), cwd=cwd)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertEqual(json.loads(r.stdout)["fingerprint"], self.fingerprint())
        written = json.loads(read_text(os.path.join(cwd, "trustwarden-data", "bundle.json")))
        self.assertEqual(written, json.loads(read_text(self.server.bundle_json)))
        r = tw("agent", "list", env=self.env(), cwd=cwd)
        self.assertEqual(r.returncode, 0, describe(r))
        # Another server's bundle does not replace this one without --force.
        other = Server(os.path.join(self.tmp, "other"))
        self.addCleanup(other.stop)
        other.start()
        env = cli_env(other)
        del env["TRUSTWARDEN_BUNDLE"]
        fp = re.search(r"bootstrap\): ([0-9a-f]{64})",
                       read_text(other.stdout_path(other.runs))).group(1)
        r = tw("bootstrap", "--fingerprint", fp, env=env, cwd=cwd)
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("--force", r.stderr)
        r = tw("bootstrap", "--fingerprint", fp, "--force", env=env, cwd=cwd)
        self.assertEqual(r.returncode, 0, describe(r))


if __name__ == "__main__":
    unittest.main(verbosity=2)
