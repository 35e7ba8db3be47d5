#!/usr/bin/env python3
"""Runs one unittest suite file for ctest and fails unless it really tested something.

    run_suite.py --min-tests N SUITE.py [TEST_NAME ...]

Exit status 0 only when every test passed, at least N tests (and at least one) ran, and not
every test was skipped. Skipped tests are listed with their reasons either way, so a partly
skipped suite is visible in the log instead of passing silently.
"""

import argparse
import faulthandler
import importlib
import os
import sys
import unittest

# A crash in native code (the SDK's module, a server the harness drives) prints every
# thread's Python stack instead of a bare SEGFAULT in the ctest log.
faulthandler.enable(all_threads=True)


def load(suite_path, names):
    """The tests of the suite file (all, or the named ones), imported under its module name so
    that its setUpModule runs."""
    directory, filename = os.path.split(os.path.abspath(suite_path))
    sys.path.insert(0, directory)
    module = importlib.import_module(os.path.splitext(filename)[0])
    loader = unittest.defaultTestLoader
    if names:
        return loader.loadTestsFromNames(names, module)
    return loader.loadTestsFromModule(module)


def verdict(result, min_tests):
    """The reasons (possibly none) the run fails beyond failures and errors."""
    problems = []
    ran, skipped = result.testsRun, len(result.skipped)
    if ran == 0:
        problems.append("no test ran")
    elif ran < min_tests:
        problems.append(f"{ran} tests ran, fewer than the {min_tests} expected")
    if ran and skipped == ran:
        problems.append("every test was skipped")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-tests", type=int, required=True,
                        help="fail when fewer tests than this ran")
    parser.add_argument("suite", help="the suite's .py file")
    parser.add_argument("names", nargs="*", help="only these tests (unittest names)")
    args = parser.parse_args()

    result = unittest.TextTestRunner(verbosity=2).run(load(args.suite, args.names))
    for test, reason in result.skipped:
        print(f"SKIPPED {test.id()}: {reason}")
    problems = verdict(result, args.min_tests)
    for problem in problems:
        print(f"FAILED: {problem}")
    print(f"{os.path.basename(args.suite)}: {result.testsRun} ran, {len(result.skipped)} "
          f"skipped, {len(result.failures)} failures, {len(result.errors)} errors")
    return 0 if result.wasSuccessful() and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
