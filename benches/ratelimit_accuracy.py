#!/usr/bin/env python3
"""Rate-limit accuracy under load: how many requests the rate-limit plugin
admits in real Envoy with --concurrency 2 (two worker VMs sharing one bucket
through shared data), against the configured limit.

One rule, one bucket (no key), `requests` per second with `burst`. wrk drives
far more than the limit for `duration` seconds; the upstream Envoy counts what
got through (its own `http.bench.downstream_rq_2xx`). A GCRA bucket admits at
most burst + rate x T in T seconds, so the report gives admitted against that
bound, as a ratio. Appends a section to benches/RESULTS.md (after
envoy_load.py wrote it) or prints it with --print-only.

Usage (via scripts/bench): ratelimit_accuracy.py --envoy PATH --wrk PATH --root REPO
    [--rate 2000] [--burst 200] [--duration 20] [--rounds 3]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from envoy_load import UPSTREAM_ROUTE, Envoy, bench_arguments, bootstrap, free_port, machine_line, upstream_setup, wasm_filter  # noqa: E402


def stat(admin_port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/stats?format=json&filter=^{name}$", timeout=5) as r:
        stats = json.load(r)["stats"]
    return next((s["value"] for s in stats if s.get("name") == name), 0)


def main():
    ap = bench_arguments()
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--print-only", action="store_true")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="palisade-rl-accuracy-")
    module = os.path.join(args.root, "target", "plugins", "rate-limit.wasm")
    upstream_cfg, cluster, _ = upstream_setup()
    procs = []
    rows = []
    try:
        upstream = Envoy(args.envoy, "upstream", upstream_cfg, work)
        procs.append(upstream)
        for rnd in range(args.rounds):
            # A fresh limiter per round: a full bucket at the start.
            config = {"response_headers": "none", "rules": [
                {"name": "accuracy", "limit": {"requests": args.rate, "per": "second", "burst": args.burst}}]}
            cfg = bootstrap(free_port(), free_port(), [wasm_filter("rate-limit", module, config)],
                            UPSTREAM_ROUTE, [cluster])
            limiter = Envoy(args.envoy, f"limiter-{rnd}", cfg, work, concurrency=2)
            procs.append(limiter)
            before = stat(upstream.admin, "http.bench.downstream_rq_2xx")
            t0 = time.monotonic()
            out = subprocess.run([args.wrk, "-t2", "-c32", f"-d{args.duration}s",
                                  f"http://127.0.0.1:{limiter.port}/accuracy"],
                                 capture_output=True, text=True, check=True).stdout
            elapsed = time.monotonic() - t0
            admitted = stat(upstream.admin, "http.bench.downstream_rq_2xx") - before
            limited = stat(limiter.admin, "http.bench.downstream_rq_4xx")
            sent = int(next(l.split()[0] for l in out.splitlines() if "requests in" in l))
            bound = args.burst + args.rate * elapsed
            rows.append({"sent": sent, "admitted": admitted, "limited": limited, "elapsed": elapsed,
                         "bound": bound, "ratio": admitted / bound})
            print(f"round {rnd + 1}: sent {sent}, admitted {admitted}, 429 {limited}, "
                  f"bound {bound:.0f} over {elapsed:.2f} s, ratio {admitted / bound:.4f}", flush=True)
            limiter.stop()
            procs.remove(limiter)
    finally:
        for p in procs:
            p.stop()

    med = statistics.median(r["ratio"] for r in rows)
    worst = max(rows, key=lambda r: abs(r["ratio"] - 1))
    lines = [
        "",
        "## Rate-limit accuracy (issue 11)",
        "",
        f"Measured on {machine_line()}. Envoy `--concurrency 2` with the rate-limit plugin, one bucket of "
        f"{args.rate} requests/s with burst {args.burst}; wrk 2 threads, 32 connections, {args.duration} s per "
        f"round, {args.rounds} rounds, each against a fresh Envoy. Admitted = the upstream's 2xx count; the bound "
        "is burst + rate × wrk's wall time (which slightly over-counts the time requests flowed).",
        "",
        "Target: admitted within 1% of the bound.",
        "",
        "| round | sent | admitted | 429 | bound | admitted / bound |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, r in enumerate(rows, 1):
        lines.append(f"| {i} | {r['sent']} | {r['admitted']} | {r['limited']} | {r['bound']:.0f} | {r['ratio']:.4f} |")
    lines += ["", f"Median ratio {med:.4f}; furthest from 1: {worst['ratio']:.4f} "
              f"({'within' if abs(worst['ratio'] - 1) <= 0.01 else 'outside'} 1%).",
              "", "Reproduce: `scripts/bench --ratelimit-only`.", ""]
    text = "\n".join(lines)
    if args.print_only:
        print(text)
    else:
        out = os.path.join(args.root, "benches", "RESULTS.md")
        with open(out, "a") as f:
            f.write(text)
        print(f"appended to {out}")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
