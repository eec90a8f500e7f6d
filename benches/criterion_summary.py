#!/usr/bin/env python3
"""Appends the criterion results of `cargo bench -p palisade-benches` to
benches/RESULTS.md: the median time per benchmark (criterion's
target/criterion/<group>/.../new/estimates.json) and, inside each group,
the ratio to the group's baseline entry where it has one.

Usage (via scripts/bench): criterion_summary.py --root REPO
"""

import argparse
import json
import os
import sys

# group -> (id of the baseline entry, what it is); ratios are to it.
BASELINES = {
    "waf_inspect": ("one_rule", "an engine with one rule that never matches"),
    "harness_request": ("floor", "the harness test module in `pass` mode, which does nothing"),
}


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def read(root):
    """{full_id: median ns} for every benchmark criterion has measured."""
    out = {}
    base = os.path.join(root, "target", "criterion")
    for dirpath, _dirs, files in os.walk(base):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        meta = os.path.join(dirpath, "benchmark.json")
        if not os.path.exists(meta):
            continue
        with open(meta) as f:
            full_id = json.load(f)["full_id"]
        with open(os.path.join(dirpath, "estimates.json")) as f:
            out[full_id] = json.load(f)["median"]["point_estimate"]
    return out


def table(results):
    lines = ["| benchmark | median | ratio to the group's baseline |", "| --- | ---: | ---: |"]
    for full_id in sorted(results):
        group, _, rest = full_id.partition("/")
        ratio = ""
        if group in BASELINES:
            base_id, _ = BASELINES[group]
            parts = rest.split("/")
            if parts[0] != base_id and len(parts) > 1:
                base = results.get("/".join([group, base_id] + parts[1:]))
                if base:
                    ratio = f"{results[full_id] / base:.1f}×"
        lines.append(f"| `{full_id}` | {fmt_ns(results[full_id])} | {ratio} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    results = read(args.root)
    if not results:
        sys.exit("criterion_summary: no results under target/criterion; run cargo bench first")
    lines = ["", "## Criterion benches (`cargo bench -p palisade-benches`)", "",
             "Native policy decisions and one request through each module in the wasmtime "
             "harness, medians from criterion on the same machine as above."]
    for group, (base_id, what) in BASELINES.items():
        lines.append(f"`{group}` ratios are to `{base_id}`: {what}.")
    lines += [""] + table(results) + ["", "Reproduce: `cargo bench -p palisade-benches` (after `scripts/build`).", ""]
    path = os.path.join(args.root, "benches", "RESULTS.md")
    with open(path, "a") as f:
        f.write("\n".join(lines))
    print(f"appended {len(results)} criterion results to {path}")


if __name__ == "__main__":
    main()
