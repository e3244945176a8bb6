#!/usr/bin/env python3
"""Code that a doc shows verbatim stays the code of its file. In a Markdown file, the line

    <!-- verbatim: tests/parity/runestone_torch.py -->

is followed by a fenced code block (```python ... ```) that must hold that file's text exactly
(paths from the tree's root). Checked in every README.md and docs/**/*.md.

    check_docs.py ROOT          checks the tree at ROOT; exit 1 and one line per stale block
    check_docs.py ROOT --write  copies each file's text into its block
    check_docs.py --self-test   plants a drift, a missing file and a missing block in a scratch tree
                                and checks that each is caught, and that --write repairs the drift
"""
import os
import re
import sys
import tempfile

MARK = re.compile(r"^<!-- verbatim: (\S+) -->\n(```[^\n]*\n)(.*?)^```$", re.M | re.S)
BARE = re.compile(r"^<!-- verbatim: (\S+) -->$", re.M)


def markdown_files(root):
    if os.path.isfile(os.path.join(root, "README.md")):
        yield os.path.join(root, "README.md")
    for folder, _, files in sorted(os.walk(os.path.join(root, "docs"))):
        for name in sorted(files):
            if name.endswith(".md"):
                yield os.path.join(folder, name)


def check(root, write=False):
    problems = []
    for path in markdown_files(root):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        rel = os.path.relpath(path, root)
        if len(BARE.findall(text)) != len(MARK.findall(text)):
            problems.append(f"{rel}: a '<!-- verbatim: FILE -->' line without a fenced block right after it")

        def replace(m):
            source = os.path.join(root, m.group(1))
            if not os.path.isfile(source):
                problems.append(f"{rel}: verbatim file {m.group(1)} does not exist")
                return m.group(0)
            with open(source, encoding="utf-8") as f:
                code = f.read()
            if m.group(3) != code:
                if not write:
                    problems.append(f"{rel}: the block of {m.group(1)} differs from the file "
                                    f"(tests/check_docs.py ROOT --write copies it)")
                return f"<!-- verbatim: {m.group(1)} -->\n{m.group(2)}{code}```"
            return m.group(0)

        new = MARK.sub(replace, text)
        if write and new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"wrote {rel}")
    return problems


def self_test():
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "docs"))
        with open(os.path.join(root, "code.py"), "w") as f:
            f.write("x = 1\n")
        doc = os.path.join(root, "docs", "a.md")

        def with_doc(text):
            with open(doc, "w") as f:
                f.write(text)
            return check(root)

        failures = []
        if with_doc("# A\n\n<!-- verbatim: code.py -->\n```python\nx = 1\n```\n"):
            failures.append("a block equal to its file is reported")
        cases = {
            "a drifted block": "<!-- verbatim: code.py -->\n```python\nx = 2\n```\n",
            "a missing file": "<!-- verbatim: gone.py -->\n```python\nx = 1\n```\n",
            "a missing block": "<!-- verbatim: code.py -->\n\nx = 1\n",
        }
        for name, text in cases.items():
            if not with_doc(text):
                failures.append(f"{name} is not caught")
        with_doc(cases["a drifted block"])
        check(root, write=True)
        if check(root):
            failures.append("--write does not repair a drifted block")
    for f in failures:
        print("self-test:", f)
    return 1 if failures else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["--write"]):
        sys.exit(__doc__)
    problems = check(sys.argv[1], write=sys.argv[2:] == ["--write"])
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
