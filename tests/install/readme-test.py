#!/usr/bin/env python3
"""The README shows files of the tree as they are: every code block preceded by a line
`<!-- file: PATH -->` must equal PATH (relative to the source root), so the README cannot drift
from what the test suite builds.

    readme-test.py <source root>
"""
import os
import re
import sys

root = sys.argv[1]
text = open(os.path.join(root, "README.md"), encoding="utf-8").read()
pattern = re.compile(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)\n```", re.S)
blocks = pattern.findall(text)
markers = text.count("<!-- file: ")
failures = 0
if markers != len(blocks):
    print(f"README: {markers} file markers, but only {len(blocks)} are followed by a code block")
    failures += 1
for path, shown in blocks:
    try:
        actual = open(os.path.join(root, path), encoding="utf-8").read().rstrip("\n")
    except OSError as e:
        print(f"README shows {path}, which cannot be read: {e}")
        failures += 1
        continue
    if shown != actual:
        print(f"README's copy of {path} differs from the file: update the README's block")
        failures += 1
    else:
        print(f"ok {path}")
if not blocks:
    print("README shows no file (expected the examples/downstream files)")
    failures += 1
sys.exit(1 if failures else 0)
