"""The module graph of docs/architecture.md (STYLE.md "Layering"), checked on the includes.

Every source file under src/ belongs to one module; a file may include its own module's
headers and those of the modules below it, nothing else. Tests, benchmarks and fuzzers are
composition roots of their own and may include any module but the CLI; nothing else may
include a testing module.
"""

import os
import re
import unittest

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")

# Each module and the modules it may include directly (the rest follows transitively).
BELOW = {
    "base": [],
    "crypto": ["base"],
    "core": ["crypto"],
    "ca": ["core"],
    "policy": ["core"],
    "ledger": ["core"],
    "revocation": ["base"],
    "store": ["ledger", "revocation"],
    "store/sqlite": ["store"],
    "store/memory": ["store"],
    "ledger/service": ["ledger", "store"],
    "metrics": ["base"],
    "authority": ["ca", "policy", "ledger/service", "revocation", "metrics", "federation"],
    "net": ["crypto"],
    "federation": ["core", "net"],
    "server": ["authority"],
    "sdk": ["core", "ledger", "net"],
    "python": ["sdk"],
    "cli": ["server", "store/sqlite", "sdk", "net"],
    # Test fixtures.
    "base/testing": ["base"],
    "crypto/testing": ["crypto", "base/testing"],
    "core/testing": ["core"],
    "store/testing": ["store", "base/testing"],
    "server/testing": ["server", "store/sqlite", "base/testing"],
}
# Files of the ledger folder that run the ledger over the store: a module above it.
LEDGER_SERVICE = {"service.h", "service.cc", "forensics.cc"}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(rel):
    """The module a path under src/ (or an include path) belongs to."""
    parts = rel.split("/")
    if parts[0] == "ledger" and parts[-1] in LEDGER_SERVICE:
        return "ledger/service"
    if len(parts) > 2 and "/".join(parts[:2]) in BELOW:
        return "/".join(parts[:2])
    return parts[0]


def closure(module):
    seen, todo = set(), [module]
    while todo:
        for below in BELOW[todo.pop()]:
            if below not in seen:
                seen.add(below)
                todo.append(below)
    return seen


def is_root(filename):
    return re.search(r"_(test|benchmark|fuzzer)\.cc$", filename) is not None


def sources():
    for directory, _, files in os.walk(SRC):
        for f in files:
            if f.endswith((".h", ".cc")):
                path = os.path.join(directory, f)
                yield os.path.relpath(path, SRC).replace(os.sep, "/"), path


def violations():
    out = []
    for rel, path in sources():
        module = module_of(rel)
        allowed = closure(module) | {module}
        if is_root(rel):
            allowed = set(BELOW) - {"cli"}
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for target in INCLUDE.findall(text):
            if not os.path.isdir(os.path.join(SRC, target.split("/")[0])):
                continue  # a library's header, or the SDK's public ones (trustwarden/)
            dep = module_of(target)
            if dep not in BELOW:
                out.append(f"{rel}: includes {target} of no known module")
            elif dep not in allowed:
                out.append(f"{rel} ({module}) includes {target} ({dep})")
    return out


class IncludeGraphTest(unittest.TestCase):
    def test_every_module_is_a_folder_of_src(self):
        for module in BELOW:
            folder = module if module != "ledger/service" else "ledger"
            self.assertTrue(os.path.isdir(os.path.join(SRC, folder)), module)

    def test_the_graph_has_no_cycle(self):
        for module in BELOW:
            self.assertNotIn(module, closure(module), f"{module} depends on itself")

    def test_no_file_includes_above_its_module(self):
        self.assertEqual(violations(), [])

    def test_the_sdk_never_reaches_the_server_or_the_store(self):
        reach = closure("sdk")
        for forbidden in ("server", "store", "authority", "ledger/service"):
            self.assertNotIn(forbidden, reach)

    def test_the_python_binding_is_only_the_sdk(self):
        self.assertEqual(closure("python") - closure("sdk"), {"sdk"})

    def test_a_violation_is_caught(self):
        """The checker itself: an upward include is reported."""
        self.assertIn("store", closure("authority"))
        self.assertNotIn("server", closure("authority"))
        self.assertEqual(module_of("ledger/service.h"), "ledger/service")
        self.assertEqual(module_of("ledger/merkle.h"), "ledger")
        self.assertEqual(module_of("store/sqlite/db.h"), "store/sqlite")


if __name__ == "__main__":
    unittest.main()
