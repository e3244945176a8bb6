#!/usr/bin/env python3
"""The layers' include direction: every #include "X/..." of a file in layer L names a layer at or
below L, and nothing outside examples/T/ includes examples/T/.

    autograd -> nn -> optim -> train -> text -> analysis -> report -> vision -> onnx -> cli -> examples

tests/ and bench/ may include any layer (a test of examples/T/ lives in examples/T/tests/).

    check_layers.py ROOT        checks the tree at ROOT; exit 1 and one line per violation
    check_layers.py --self-test plants violations in a scratch tree and checks that each is caught
"""
import os
import re
import sys
import tempfile

LAYERS = ["autograd", "nn", "optim", "train", "text", "analysis", "report", "vision", "onnx", "cli", "examples"]
FREE = {"tests", "bench"}  # may include anything
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCES = (".cpp", ".hpp", ".h", ".cc")


def violations(root):
    found = []
    for top in LAYERS + sorted(FREE):
        for folder, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith(SOURCES):
                    continue
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                parts = rel.split("/")
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for m in INCLUDE.finditer(text):
                    target = m.group(1)
                    line = text.count("\n", 0, m.start()) + 1
                    head = target.split("/")[0]
                    if head not in LAYERS:
                        continue  # a system or sibling header, or tests/ and bench/ helpers
                    where = f"{rel}:{line}: includes {target}"
                    if head == "examples":
                        task = target.split("/")[1] if target.count("/") >= 2 else ""
                        if parts[0] != "examples" or parts[1] != task:
                            found.append(f"{where}: only examples/{task}/ may include examples/{task}/")
                        continue
                    if parts[0] in FREE:
                        continue
                    if LAYERS.index(head) > LAYERS.index(parts[0]):
                        found.append(f"{where}: {parts[0]}/ is below {head}/ and may not include it")
    return found


def self_test():
    """Each planted include must be reported; the clean tree must not be."""
    planted = {
        "nn/bad.hpp": '#include "train/task.hpp"\n',             # up one layer
        "autograd/bad.cpp": '#include "cli/command.hpp"\n',      # up many
        "onnx/bad.cpp": '#include "cli/command.hpp"\n',          # the ONNX layer under cli
        "report/bad.cpp": '#include "examples/vit/vit_task.hpp"\n',  # into a task
        "examples/a/bad.cpp": '#include "examples/b/b.hpp"\n',   # one task into another
        "tests/bad.cpp": '#include "examples/vit/vit_task.hpp"\n',  # tests of a task live with it
    }
    clean = {
        "nn/ok.hpp": '#include "autograd/ops.hpp"\n#include <vector>\n',
        "cli/ok.cpp": '#include "report/plot.hpp"\n#include "train/task.hpp"\n',
        "onnx/ok.cpp": '#include "nn/vit.hpp"\n#include <onnx/onnx_pb.h>\n',
        "examples/a/ok.cpp": '#include "examples/a/a.hpp"\n#include "cli/command.hpp"\n',
        "examples/a/tests/ok.cpp": '#include "examples/a/a.hpp"\n#include "tests/helpers.hpp"\n',
        "bench/ok.cpp": '#include "nn/seq2seq.hpp"\n',
    }
    with tempfile.TemporaryDirectory() as root:
        for rel, text in {**planted, **clean}.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        found = violations(root)
    ok = True
    for rel in planted:
        hits = [v for v in found if v.startswith(rel + ":")]
        print(f"planted {rel}: {'caught' if hits else 'MISSED'}{': ' + hits[0] if hits else ''}")
        ok &= len(hits) == 1
    for rel in clean:
        hits = [v for v in found if v.startswith(rel + ":")]
        if hits:
            print(f"clean {rel} reported: {hits[0]}")
            ok = False
    print("self-test passed" if ok else "self-test FAILED")
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = violations(sys.argv[1])
    for v in found:
        print(v)
    print(f"{len(found)} include(s) against the layers ({' -> '.join(LAYERS)})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
