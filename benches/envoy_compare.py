#!/usr/bin/env python3
"""Two builds of one plugin, A and B, side by side in real Envoy: is B faster?

For telling a change's effect from this machine's noise, which the full
load bench (envoy_load.py) cannot do below about 10%. Each build runs in
`--instances` Envoys (`--concurrency 1`, the load bench's rule for the
plugin) that stay up for the whole run; each cycle runs wrk once against
every Envoy, `--duration` seconds each, in an order rotated by one per
cycle. For two Envoys the ratio is the median over cycles of their req/s
in the same cycle, so drift between cycles cancels. Prints a Markdown
report:

- B over A: the median and range of that ratio over every (B, A) pair of
  instances;
- A/A and B/B: the same between instances of one build — how much two
  identical Envoys differ (a process's own luck: memory layout, CPU
  placement). A B/A ratio inside that spread is no evidence.

Usage (via scripts/bench --compare): envoy_compare.py --envoy PATH --wrk PATH
    --root REPO --plugin rbac|rate-limit|jwt-auth --a A.wasm --b B.wasm
    [--instances 3] [--cycles 10] [--duration 3] [--connections 16]
"""

import itertools
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from envoy_load import (  # noqa: E402
    RATE_LIMIT_PLUGIN_CONFIG,
    RBAC_PLUGIN_CONFIG,
    UPSTREAM_ROUTE,
    Envoy,
    bench_arguments,
    bootstrap,
    free_port,
    jwt_plugin_config,
    machine_line,
    rs256_key_and_token,
    run_wrk,
    upstream_setup,
    wasm_filter,
)


def pair_ratios(results, a, b):
    """Per-cycle req/s of instance `a` over instance `b`, median over cycles."""
    return statistics.median(x["rps"] / y["rps"] for x, y in zip(results[a], results[b]))


def spread(ratios):
    return f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})"


def main():
    ap = bench_arguments()
    ap.add_argument("--plugin", required=True, choices=["rbac", "rate-limit", "jwt-auth"])
    ap.add_argument("--a", required=True, help="the baseline module (.wasm)")
    ap.add_argument("--b", required=True, help="the changed module (.wasm)")
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    if args.instances < 2 or args.cycles < 1 or args.duration < 1:
        ap.error("--instances must be at least 2 (for the A/A row), --cycles and --duration at least 1")
    modules = {"A": os.path.abspath(args.a), "B": os.path.abspath(args.b)}
    for label, path in modules.items():
        if not os.path.isfile(path):
            ap.error(f"--{label.lower()} {path}: no such file")

    work = tempfile.mkdtemp(prefix="palisade-compare-")
    token = "none"
    if args.plugin == "rbac":
        config = RBAC_PLUGIN_CONFIG
    elif args.plugin == "rate-limit":
        config = RATE_LIMIT_PLUGIN_CONFIG
    else:
        jwks, token = rs256_key_and_token(work)
        config = jwt_plugin_config(jwks)

    upstream_cfg, cluster, _ = upstream_setup()
    names = [f"{label}{i}" for label in modules for i in range(1, args.instances + 1)]
    envoys = {}
    upstream = Envoy(args.envoy, "upstream", upstream_cfg, work)
    try:
        for name in names:
            filters = [wasm_filter(args.plugin, modules[name[0]], config)]
            envoys[name] = Envoy(args.envoy, name, bootstrap(free_port(), free_port(), filters, UPSTREAM_ROUTE, [cluster]), work)
            run_wrk(args.wrk, envoys[name].port, 2, args.connections, token)  # warm-up
        results = {name: [] for name in names}
        for cycle in range(args.cycles):
            shift = cycle % len(names)
            for name in names[shift:] + names[:shift]:
                envoy = envoys[name]
                cpu_before = envoy.cpu_seconds()
                r = run_wrk(args.wrk, envoy.port, args.duration, args.connections, token)
                r["cpu_us"] = (envoy.cpu_seconds() - cpu_before) * 1e6 / max(r["requests"], 1)
                if r["non2xx"]:
                    raise RuntimeError(f"{name}: {r['non2xx']} non-2xx responses; the bench rule must allow every request")
                results[name].append(r)
            print(f"cycle {cycle + 1}: " + "  ".join(f"{n} {results[n][-1]['rps']:.0f}" for n in names),
                  file=sys.stderr, flush=True)
    finally:
        for envoy in envoys.values():
            envoy.stop()
        upstream.stop()

    a_names = [n for n in names if n[0] == "A"]
    b_names = [n for n in names if n[0] == "B"]
    b_over_a = [pair_ratios(results, b, a) for b in b_names for a in a_names]
    a_a = [pair_ratios(results, x, y) for x, y in itertools.permutations(a_names, 2)]
    b_b = [pair_ratios(results, x, y) for x, y in itertools.permutations(b_names, 2)]
    same = a_a + b_b
    lines = [
        f"# {args.plugin}: B against A in Envoy",
        "",
        f"Measured on {machine_line()}. A: `{modules['A']}`, B: `{modules['B']}`. "
        f"{args.instances} Envoys per build (`--concurrency 1`), {args.cycles} cycles of "
        f"{args.duration} s wrk runs (1 thread, {args.connections} connections) against each, "
        "in an order rotated per cycle.",
        "",
        "| Envoy | req/s (median) | Envoy CPU µs/req (median) |",
        "| --- | ---: | ---: |",
    ]
    for n in names:
        lines.append(f"| {n} | {statistics.median(r['rps'] for r in results[n]):.0f} | "
                     f"{statistics.median(r['cpu_us'] for r in results[n]):.1f} |")
    lines += [
        "",
        "Ratios of req/s: for each pair of Envoys, the median over cycles; then the median "
        "(and range) over the pairs.",
        "",
        "| comparison | pairs | ratio (range) |",
        "| --- | ---: | ---: |",
        f"| B / A | {len(b_over_a)} | {spread(b_over_a)} |",
        f"| A / A (noise) | {len(a_a)} | {spread(a_a)} |",
        f"| B / B (noise) | {len(b_b)} | {spread(b_b)} |",
        "",
    ]
    lo, hi = min(same), max(same)
    median = statistics.median(b_over_a)
    if lo <= median <= hi:
        lines.append(f"B / A ({median:.3f}) is inside the spread of identical Envoys ({lo:.3f}–{hi:.3f}): "
                     "no difference this run can show.")
    else:
        word = "faster" if median > hi else "slower"
        lines.append(f"B / A ({median:.3f}) is outside the spread of identical Envoys ({lo:.3f}–{hi:.3f}): "
                     f"B measured {word} than A.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
