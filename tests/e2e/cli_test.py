"""The operator's CLI end to end, as a newcomer meets it: usage errors that name the unknown
word and suggest the nearest command or flag, the documented exit codes (0 ok, 1 refused or
invalid, 2 usage, 3 unreachable), and the messages of the first mistakes people make."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from trustwarden_harness import ServerTestCase, cli_env, describe, tw  # noqa: E402


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

    def test_help_and_version_exit_0(self):
        for argv in (("--help",), ("agent", "--help"), ("--version",)):
            r = tw(*argv)
            self.assertEqual(r.returncode, 0, describe(r))
            self.assertTrue(r.stdout.strip(), describe(r))


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


if __name__ == "__main__":
    unittest.main(verbosity=2)
