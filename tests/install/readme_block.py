#!/usr/bin/env python3
"""Prints the README's block marked `<!-- README test: NAME -->`, for the install tests that
build or run it as it stands."""
import os
import re
import sys

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md"),
          encoding="utf-8") as f:
    readme = f.read()
m = re.search(r"<!-- README test: %s -->\n```\w*\n(.*?)\n```" % re.escape(sys.argv[1]), readme,
              re.S)
if m is None:
    sys.exit(f"README.md has no block marked {sys.argv[1]!r}")
print(m.group(1))
