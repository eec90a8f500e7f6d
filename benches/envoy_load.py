#!/usr/bin/env python3
"""Envoy load bench: each Palisade plugin against Envoy's native filter.

Every variant is the same Envoy binary (--concurrency 1) in front of the same
upstream (a second Envoy answering with a direct response), loaded by wrk on
loopback. Each round runs every variant once, in a fresh Envoy process and
in an order rotated by one from the round before, so drift and one process's
luck hit every variant alike; a second no-filter variant (A/A) shows how far
two identical setups differ. The table reports medians, ratios to the
no-filter baseline, and ours-to-native ratios. Writes benches/RESULTS.md.

Usage (via scripts/bench): envoy_load.py --envoy PATH --wrk PATH --root REPO
    [--rounds 3] [--duration 10] [--connections 16]
"""

import argparse
import base64
import datetime
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

RBAC_PLUGIN_CONFIG = {
    "policies": [
        {
            "name": "bench",
            "action": "ALLOW",
            "rules": [
                {
                    "paths": [{"prefix": "/bench"}],
                    "headers": [{"name": "x-team", "string_match": {"exact": "ops"}}],
                }
            ],
        }
    ]
}

# Envoy's RBAC filter with the same rule: allow prefix /bench with x-team: ops.
NATIVE_RBAC = {
    "name": "envoy.filters.http.rbac",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {
            "action": "ALLOW",
            "policies": {
                "bench": {
                    "permissions": [
                        {
                            "and_rules": {
                                "rules": [
                                    {"url_path": {"path": {"prefix": "/bench"}}},
                                    {
                                        "header": {
                                            "name": "x-team",
                                            "string_match": {"exact": "ops"},
                                        }
                                    },
                                ]
                            }
                        }
                    ],
                    "principals": [{"any": True}],
                }
            },
        },
    },
}

# A bucket that never limits, in both implementations: one bucket for every
# request, like local_ratelimit's token_bucket.
RATE_LIMIT_PLUGIN_CONFIG = {
    "response_headers": "none",
    "rules": [
        {
            "name": "bench",
            "limit": {"requests": 1000000000, "per": "second"},
        }
    ],
}

# The same, one bucket per client IP (what a deployment usually wants; native
# local_ratelimit needs descriptors for that).
RATE_LIMIT_PER_CLIENT_CONFIG = {
    "response_headers": "none",
    "rules": [dict(RATE_LIMIT_PLUGIN_CONFIG["rules"][0], key=["client_ip"])],
}

# The harness's SDK-example module in its `pass` mode: a Proxy-Wasm filter that
# does nothing. What it costs, every Proxy-Wasm plugin costs.
FLOOR_CONFIG = {"mode": "pass"}

# The same module in its `host-calls` mode, making per request only the host
# calls a plugin makes for the bench's request (no decision, no parsing):
# what those calls cost, whatever a plugin does with their results.
HOST_CALLS_CONFIG = {
    # rbac: the request header map; allowed, policy matched, action matched.
    "rbac": {"mode": "host-calls", "header_map": True, "counters": 3},
    # rate-limit: the clock; the bucket's slot read and compare-and-swap
    # write; the rule's allowed counter.
    "rate-limit": {"mode": "host-calls", "clock": True, "shared_cas": True, "counters": 1},
}

NATIVE_LOCAL_RATELIMIT = {
    "name": "envoy.filters.http.local_ratelimit",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "bench",
        "token_bucket": {
            "max_tokens": 1000000000,
            "tokens_per_fill": 1000000000,
            "fill_interval": "1s",
        },
        "filter_enabled": {
            "runtime_key": "bench_enabled",
            "default_value": {"numerator": 100, "denominator": "HUNDRED"},
        },
        "filter_enforced": {
            "runtime_key": "bench_enforced",
            "default_value": {"numerator": 100, "denominator": "HUNDRED"},
        },
    },
}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rs256_key_and_token(workdir, openssl="openssl"):
    """A fresh RSA-2048 key (JWKS) and an RS256 token for it, made with the
    openssl CLI, shared by the Palisade and the native jwt_authn variants."""
    key = os.path.join(workdir, "jwt-key.pem")
    subprocess.run([openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                   check=True, capture_output=True)
    modulus = subprocess.run([openssl, "rsa", "-in", key, "-noout", "-modulus"], check=True,
                             capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    jwks = {"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                      "n": b64url(bytes.fromhex(modulus)), "e": "AQAB"}]}
    header = b64url(json.dumps({"alg": "RS256", "kid": "bench", "typ": "JWT"}).encode())
    now = int(time.time())
    payload = b64url(json.dumps({"iss": "https://issuer.bench", "sub": "bench", "aud": "api",
                                 "iat": now, "exp": now + 86400}).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = subprocess.run([openssl, "dgst", "-sha256", "-sign", key], input=signing_input, check=True,
                         capture_output=True).stdout
    return json.dumps(jwks), f"{header}.{payload}.{b64url(sig)}"


def jwt_plugin_config(jwks):
    return {
        "providers": {"bench": {"issuer": "https://issuer.bench", "audiences": ["api"],
                                "local_jwks": {"inline_string": jwks}}},
        "rules": [{"match": {"paths": [{"prefix": "/"}]}, "requires": {"provider_name": "bench"}}],
    }


def native_jwt_authn(jwks):
    """Envoy's jwt_authn with the same provider, key and rule."""
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": {"issuer": "https://issuer.bench", "audiences": ["api"],
                                    "local_jwks": {"inline_string": jwks}}},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }


def wasm_filter(name, module, config):
    return {
        "name": f"palisade.{name}",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": f"palisade.{name}",
                "root_id": name,
                "fail_open": False,
                "vm_config": {
                    "vm_id": f"palisade.{name}",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": module}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json.dumps(config),
                },
            },
        },
    }


ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    },
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hcm(filters, route):
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "bench",
            "route_config": {
                "virtual_hosts": [
                    {"name": "all", "domains": ["*"], "routes": [dict(match={"prefix": "/"}, **route)]}
                ]
            },
            "http_filters": filters + [ROUTER],
        },
    }


def bootstrap(admin_port, listen_port, filters, route, clusters):
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                    "filter_chains": [{"filters": [hcm(filters, route)]}],
                }
            ],
            "clusters": clusters,
        },
    }


# The route every bench Envoy uses: all requests to the upstream cluster.
UPSTREAM_ROUTE = {"route": {"cluster": "upstream"}}


def upstream_setup():
    """The upstream the bench Envoys proxy to — a second Envoy that answers
    200 "ok" itself — as (its bootstrap, the cluster that reaches it, its
    port)."""
    port = free_port()
    config = bootstrap(free_port(), port, [], {"direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}, [])
    cluster = {
        "name": "upstream",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "upstream",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}],
        },
    }
    return config, cluster, port


def bench_arguments():
    """An argument parser with what scripts/bench passes every Envoy bench:
    the Envoy and wrk binaries and the repository root."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--envoy", required=True)
    ap.add_argument("--wrk", required=True)
    ap.add_argument("--root", required=True)
    return ap


class Envoy:
    """One Envoy process, stopped by its PID."""

    def __init__(self, binary, name, config, workdir, concurrency=1):
        self.name = name
        self.admin = config["admin"]["address"]["socket_address"]["port_value"]
        self.port = config["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
        path = os.path.join(workdir, f"{name}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.log = open(os.path.join(workdir, f"{name}.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "-c", path, "--concurrency", str(concurrency), "--disable-hot-restart", "--log-level", "warn"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy {name} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"envoy {name} not ready in 30 s")

    def cpu_seconds(self):
        """User + system CPU time Envoy has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def parse_duration_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(wrk, port, duration, connections, token):
    # Every variant gets the same request: the header rbac allows on and the
    # bearer token jwt-auth verifies (ignored by the others).
    cmd = [
        wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
        "-H", "x-team: ops", "-H", f"authorization: Bearer {token}",
        f"http://127.0.0.1:{port}/bench/item",
    ]
    return parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def parse_wrk(out):
    """req/s, requests completed, p50/p99 (ms) and non-2xx count from wrk --latency output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": rps,
        "requests": int(total.group(1)) if total else 0,
        "p50": parse_duration_ms(lat.get("50", "nan")),
        "p99": parse_duration_ms(lat.get("99", "nan")),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def machine_line():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Linux {platform.release()}"


def main():
    ap = bench_arguments()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    plugins = os.path.join(args.root, "target", "plugins")
    work = tempfile.mkdtemp(prefix="palisade-bench-")
    envoy_version = subprocess.run([args.envoy, "--version"], capture_output=True, text=True).stdout.strip()

    upstream_cfg, cluster, _ = upstream_setup()
    route = UPSTREAM_ROUTE
    jwks, token = rs256_key_and_token(work)
    floor_module = os.path.join(args.root, "target", "wasm32-wasip1", "release", "harness_test_modules.wasm")
    variants = [
        ("no filter", "baseline", []),
        ("no filter, again (A/A: the bench's noise)", "baseline-again", []),
        ("Proxy-Wasm floor (does nothing)", "floor", [wasm_filter("floor", floor_module, FLOOR_CONFIG)]),
        ("floor + rbac's host calls only", "calls-rbac",
         [wasm_filter("calls-rbac", floor_module, HOST_CALLS_CONFIG["rbac"])]),
        ("floor + rate-limit's host calls only", "calls-rate-limit",
         [wasm_filter("calls-rate-limit", floor_module, HOST_CALLS_CONFIG["rate-limit"])]),
        ("rbac (Palisade wasm)", "rbac", [wasm_filter("rbac", os.path.join(plugins, "rbac.wasm"), RBAC_PLUGIN_CONFIG)]),
        ("rbac (Envoy native)", "rbac-native", [NATIVE_RBAC]),
        ("rate-limit (Palisade wasm)", "rate-limit", [wasm_filter("rate-limit", os.path.join(plugins, "rate-limit.wasm"), RATE_LIMIT_PLUGIN_CONFIG)]),
        ("local_ratelimit (Envoy native)", "rate-limit-native", [NATIVE_LOCAL_RATELIMIT]),
        ("rate-limit per client IP (Palisade wasm)", "rate-limit-client",
         [wasm_filter("rate-limit", os.path.join(plugins, "rate-limit.wasm"), RATE_LIMIT_PER_CLIENT_CONFIG)]),
        ("jwt-auth RS256 (Palisade wasm)", "jwt-auth", [wasm_filter("jwt-auth", os.path.join(plugins, "jwt-auth.wasm"), jwt_plugin_config(jwks))]),
        ("jwt_authn RS256 (Envoy native)", "jwt-auth-native", [native_jwt_authn(jwks)]),
    ]
    pairs = [("rbac", "rbac-native"), ("rate-limit", "rate-limit-native"), ("jwt-auth", "jwt-auth-native")]

    # Each round starts a fresh Envoy per variant, in an order rotated by
    # one each round: a long-lived process per variant may carry its own
    # luck (memory layout, CPU placement) into every round — in one trial run
    # native rbac, which does more than no filter, measured 1.11x of it —
    # and a fixed order gives each variant the same neighbours. The A/A row
    # shows how much of such a gap is the machine's noise.
    results = {key: [] for _, key, _ in variants}
    rss = {key: [] for _, key, _ in variants}
    upstream = Envoy(args.envoy, "upstream", upstream_cfg, work)
    try:
        for rnd in range(args.rounds):
            shift = rnd % len(variants)
            for label, key, filters in variants[shift:] + variants[:shift]:
                cfg = bootstrap(free_port(), free_port(), filters, route, [cluster])
                envoy = Envoy(args.envoy, key, cfg, work)
                try:
                    run_wrk(args.wrk, envoy.port, 2, args.connections, token)  # warm-up
                    cpu_before = envoy.cpu_seconds()
                    r = run_wrk(args.wrk, envoy.port, args.duration, args.connections, token)
                    r["cpu_us"] = (envoy.cpu_seconds() - cpu_before) * 1e6 / max(r["requests"], 1)
                    rss[key].append(envoy.rss_kib())
                finally:
                    envoy.stop()
                if r["non2xx"]:
                    raise RuntimeError(f"{label}: {r['non2xx']} non-2xx responses; the bench rule must allow every request")
                results[key].append(r)
                print(f"round {rnd + 1} {label:40} {r['rps']:10.0f} req/s  p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  "
                      f"Envoy CPU {r['cpu_us']:.1f} us/req", flush=True)
    finally:
        upstream.stop()
    rss = {key: statistics.median(v) for key, v in rss.items()}

    med = {
        key: {m: statistics.median(r[m] for r in runs) for m in ("rps", "p50", "p99", "cpu_us")}
        for key, runs in results.items()
    }
    base = med["baseline"]
    lines = [
        "# Envoy load bench",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {machine_line()}.",
        f"Envoy: `{envoy_version}`, `--concurrency 1`; wrk 1 thread, {args.connections} connections, "
        f"{args.duration} s per run, {args.rounds} rounds, each running every variant once in a fresh Envoy (2 s warm-up) in an order "
        "rotated by one per round; medians. Upstream: a second Envoy "
        "with a direct response, on loopback like everything else.",
        "",
        "Reproduce: `scripts/bench` (or `scripts/bench --rounds 5 --duration 20`).",
        "",
        "Envoy CPU is the Envoy process's user + system time during the run divided by the requests wrk "
        "completed (it includes Envoy's own proxying).",
        "",
        "| variant | req/s | p50 ms | p99 ms | req/s vs no filter | p99 vs no filter | Envoy CPU µs/req | Envoy RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, key, _ in variants:
        m = med[key]
        lines.append(
            f"| {label} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {m['rps'] / base['rps']:.3f} | "
            f"{m['p99'] / base['p99']:.3f} | {m['cpu_us']:.1f} | {rss[key] / 1024:.1f} |"
        )

    def per_round(a, b):
        """Median, lowest and highest of a's req/s over b's, round by round
        (the two ran minutes apart at most, so slow drift cancels)."""
        ratios = [x["rps"] / y["rps"] for x, y in zip(results[a], results[b])]
        return statistics.median(ratios), min(ratios), max(ratios)

    aa, aa_lo, aa_hi = per_round("baseline-again", "baseline")
    lines += ["", f"A/A: two identical no-filter setups, round by round: the second measured {aa:.3f}× "
              f"the first's req/s (median; {aa_lo:.2f}–{aa_hi:.2f} across rounds). Ratios below are only as "
              "exact as that."]
    floor = med["floor"]
    lines += ["", "## Ours against Envoy's native filter", "",
              "Targets: req/s ≥ 0.9× native, p99 ≤ 1.2× native.", "",
              "The floor columns put the targets in proportion: *floor req/s vs native* is what a Proxy-Wasm "
              "filter that does nothing reaches against the native filter (no Proxy-Wasm plugin can do better "
              "in this Envoy); the CPU columns compare what each adds per request — ours over the floor, "
              "the native filter over no filter. *Host calls alone* is the floor filter making only the "
              "Proxy-Wasm host calls the plugin makes for this request (`HOST_CALLS_CONFIG` in "
              "`benches/envoy_load.py`): what those calls cost, before the plugin does anything with "
              "their results.", "",
              "*Round by round* is the median of ours over native in each round, with its lowest and highest: "
              "it cancels drift between rounds, where the ratio of medians does not. *Meets targets* needs both "
              "req/s ratios at 0.9 or more.", "",
              "| plugin | req/s ratio | round by round (range) | p99 ratio | meets targets | floor req/s vs native "
              "| host calls alone, req/s vs native | ours over floor, CPU µs/req "
              "| of which host calls, CPU µs/req | native over no filter, CPU µs/req |",
              "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for ours, native in pairs:
        rr = med[ours]["rps"] / med[native]["rps"]
        rnd, lo, hi = per_round(ours, native)
        pr = med[ours]["p99"] / med[native]["p99"]
        ok = "yes" if min(rr, rnd) >= 0.9 and pr <= 1.2 else "no"
        calls = med.get(f"calls-{ours}")
        calls_rr = f"{calls['rps'] / med[native]['rps']:.3f}" if calls else "—"
        calls_cpu = f"{calls['cpu_us'] - floor['cpu_us']:.1f}" if calls else "—"
        lines.append(
            f"| {ours} | {rr:.3f} | {rnd:.3f} ({lo:.2f}–{hi:.2f}) | {pr:.3f} | {ok} | {floor['rps'] / med[native]['rps']:.3f} | {calls_rr} | "
            f"{med[ours]['cpu_us'] - floor['cpu_us']:.1f} | {calls_cpu} | "
            f"{med[native]['cpu_us'] - base['cpu_us']:.1f} |"
        )
    lines += ["", "## Module sizes", "", "| module | bytes |", "| --- | ---: |"]
    for name in ("rbac", "rate-limit", "jwt-auth"):
        path = os.path.join(plugins, f"{name}.wasm")
        lines.append(f"| {name}.wasm | {os.path.getsize(path)} |")
    lines += ["", "Not yet in this table: waf (against ModSecurity on nginx: see the waf plugin's bench).", ""]
    out = args.out or os.path.join(args.root, "benches", "RESULTS.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
