#!/usr/bin/env python3
"""Markdown tables for docs/ONNX.md from `shoal conformance --report OUT.json`.

    scripts/onnx-conformance-table.py build/onnx-conformance.json

Prints: pass/fail/skip per category; the node cases whose ops shoal maps (a SKIP there is a
feature of a mapped op that shoal lacks: an attribute value, an element type, an empty
tensor, a shape only known at run time); and the ops behind the skips, most cases first.
"""
import collections
import json
import re
import sys

# Skip reasons that mean "an op shoal does not have" (rather than a feature of an op it has).
MISSING_OP = [
    (re.compile(r"shoal has no mapping for op (\w+)"), None),
    (re.compile(r"(\w+) on values computed at run time \(shoal has no \w+ op yet\)"), None),
    (re.compile(r"domain '([\w.]+)'"), "domain {}"),
    (re.compile(r"imports no ai.onnx opset, only domain '([\w.]+)'"), "domain {}"),
]


def missing_op(message):
    """The op (or domain) a SKIP lacks, from the innermost reason of its message."""
    # A function body's failure comes last: "...; its ONNX function body has node ... (Op, ...)".
    last = message.split("; its ONNX function body has ")[-1]
    for pattern, fmt in MISSING_OP:
        m = pattern.search(last)
        if m:
            return fmt.format(m.group(1)) if fmt else m.group(1)
    return None


def feature(message):
    """The feature of a mapped op a SKIP lacks, shortened."""
    last = message.split("; its ONNX function body has ")[-1]
    m = re.search(r"\((\w+), domain [\w.]+, opset \d+\): unsupported: (.*)", last)
    if m:
        what = re.sub(r"'[^']*'", "'…'", m.group(2))
        what = re.sub(r"\d+x[\dx]+", "…", what)
        return f"{m.group(1)}: {what}"
    m = re.search(r"unsupported: (.*)", last)
    what = m.group(1) if m else last
    what = re.sub(r"'[^']*'", "'…'", what)
    return what


def main(path):
    report = json.load(open(path))
    cases = report["cases"]
    by_cat = collections.OrderedDict()
    for c in cases:
        by_cat.setdefault(c["category"], []).append(c)

    print("| category | cases | pass | fail | skip | pass rate |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    tot = collections.Counter()
    for cat, cs in by_cat.items():
        n = collections.Counter(c["status"] for c in cs)
        tot.update(n)
        tot["cases"] += len(cs)
        print(f"| {cat} | {len(cs)} | {n['PASS']} | {n['FAIL']} | {n['SKIP']} | {100 * n['PASS'] / len(cs):.1f}% |")
    print(f"| all | {tot['cases']} | {tot['PASS']} | {tot['FAIL']} | {tot['SKIP']} | {100 * tot['PASS'] / tot['cases']:.1f}% |")
    three = [c for c in cases if c["category"] in ("pytorch-converted", "pytorch-operator", "simple")]
    if three:
        p = sum(c["status"] == "PASS" for c in three)
        print(f"\npytorch-converted + pytorch-operator + simple: {p} of {len(three)} pass ({100 * p / len(three):.1f}%).")

    node = by_cat.get("node", [])
    if node:
        # A case's ops are implemented when shoal's op table maps each of its op types (or it
        # passes, through an op's ONNX function body).
        mapped = [c for c in node if c.get("ops_mapped") or c["status"] == "PASS"]
        p = sum(c["status"] == "PASS" for c in mapped)
        print(f"\nnode cases whose ops shoal maps: {p} of {len(mapped)} pass ({100 * p / max(len(mapped), 1):.1f}%); "
              f"the other {len(node) - len(mapped)} use an op shoal lacks.")

    ops = collections.Counter()
    features = collections.Counter()
    for c in cases:
        if c["status"] != "SKIP":
            continue
        op = missing_op(c["message"])
        if op:
            ops[op] += 1
        else:
            features[feature(c["message"])] += 1
    print("\nOps behind the skips (cases):\n")
    print(", ".join(f"{op} ({n})" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))))
    print("\nFeatures of mapped ops behind the other skips (cases):\n")
    for what, n in sorted(features.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"- {what} ({n})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/onnx-conformance.json")
