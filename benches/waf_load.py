#!/usr/bin/env python3
"""WAF load bench: what full OWASP CRS costs in front of an upstream.

In one run, on this machine, with wrk (1 thread):

- Envoy 1.40 (--concurrency 1) with no filter, and with the Palisade WAF
  running CRS 4.25 at paranoia level 1 (blocking), as a req/s ratio;
- nginx (1 worker) with ModSecurity v3 off, and on with CRS 3.3.4 (Debian's
  libnginx-mod-http-modsecurity + modsecurity-crs, SecRuleEngine On), as a
  req/s ratio.

Every proxy forwards to the same upstream (an Envoy answering with a direct
response). Two workloads: a GET with a query string and a small JSON POST.
Every response must be 2xx (the WAFs must not block the benign requests).
Writes benches/WAF-RESULTS.md.

Usage: scripts/bench --waf-only [--rounds N --duration S --connections C]
   or: python3 benches/waf_load.py --envoy PATH --wrk PATH --root REPO
"""

import datetime
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from envoy_load import UPSTREAM_ROUTE, Envoy, bench_arguments, bootstrap, free_port, machine_line, parse_wrk, upstream_setup, wasm_filter  # noqa: E402

NGINX_MODULE = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"
MODSEC_RECOMMENDED = "/etc/nginx/modsecurity.conf"
# What Debian's owasp-crs.load includes, spelled out: libmodsecurity has no
# IncludeOptional.
CRS_INCLUDES = [
    "/etc/modsecurity/crs/crs-setup.conf",
    "/etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf",
    "/usr/share/modsecurity-crs/rules/*.conf",
    "/etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf",
]

HEADERS = [
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language: en-GB,en;q=0.9",
]

POST_LUA = """wrk.method = "POST"
wrk.body = '{"name":"Zo\\195\\171 \\195\\133ngstr\\195\\182m","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"Please leave the parcel at the back door."}'
wrk.headers["Content-Type"] = "application/json"
"""

WORKLOADS = [
    ("GET /search?q=running+shoes&page=2", "/search?q=running+shoes&page=2&sort=price", None),
    ("POST /api/orders (JSON, 150 B)", "/api/orders", "post.lua"),
]


class Nginx:
    """One nginx master (1 worker), stopped by its PID."""

    def __init__(self, name, port, upstream_port, modsecurity, work):
        self.name = name
        self.port = port
        conf = os.path.join(work, f"nginx-{name}.conf")
        modsec = ""
        if modsecurity:
            rules = os.path.join(work, "modsec-crs.conf")
            with open(rules, "w") as f:
                f.write(
                    f"Include {MODSEC_RECOMMENDED}\n"
                    "SecRuleEngine On\n"
                    "SecAuditEngine Off\n"
                    "SecResponseBodyAccess Off\n"
                    + "".join(f"Include {p}\n" for p in CRS_INCLUDES)
                )
            modsec = f"modsecurity on;\n    modsecurity_rules_file {rules};"
        prefix = os.path.join(work, f"nginx-{name}")
        os.makedirs(prefix, exist_ok=True)
        with open(conf, "w") as f:
            f.write(f"""load_module {NGINX_MODULE};
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    {modsec}
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
        self.log = open(os.path.join(prefix, "stdout.log"), "w")
        self.proc = subprocess.Popen(
            ["nginx", "-p", prefix, "-c", conf, "-g", "daemon off;"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx {name} exited with {self.proc.returncode}; see {prefix}")
            try:
                import socket

                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"nginx {name} not listening in 60 s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_wrk(wrk, port, path, script, duration, connections, work):
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for h in HEADERS:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", os.path.join(work, script)]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    return parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main():
    ap = bench_arguments()
    ap.add_argument("--crs", default=None, help="CRS 4 directory (default: ../shared/crs-4.25.0)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    crs = args.crs or os.path.join(args.root, "..", "shared", "crs-4.25.0")
    work = tempfile.mkdtemp(prefix="palisade-waf-bench-")
    with open(os.path.join(work, "post.lua"), "w") as f:
        f.write(POST_LUA)
    waf_json = os.path.join(work, "waf-crs.json")
    subprocess.run(
        ["cargo", "run", "-q", "--release", "--locked", "-p", "waf", "--bin", "waf-compile", "--",
         "--crs", crs, "--paranoia", "1", "-o", waf_json],
        cwd=args.root, check=True,
    )
    with open(waf_json) as f:
        import json

        waf_config = json.load(f)
    module = os.path.join(args.root, "target", "plugins", "waf.wasm")
    envoy_version = subprocess.run([args.envoy, "--version"], capture_output=True, text=True).stdout.strip()
    nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    crs3 = glob.glob("/usr/share/doc/modsecurity-crs/changelog*")

    upstream_cfg, cluster, upstream_port = upstream_setup()
    route = UPSTREAM_ROUTE
    procs = []
    results = {}
    try:
        procs.append(Envoy(args.envoy, "upstream", upstream_cfg, work))
        servers = {}
        servers["envoy"] = Envoy(args.envoy, "envoy-plain", bootstrap(free_port(), free_port(), [], route, [cluster]), work)
        procs.append(servers["envoy"])
        servers["envoy-waf"] = Envoy(
            args.envoy, "envoy-waf",
            bootstrap(free_port(), free_port(), [wasm_filter("waf", module, waf_config)], route, [cluster]), work,
        )
        procs.append(servers["envoy-waf"])
        servers["nginx"] = Nginx("plain", free_port(), upstream_port, False, work)
        procs.append(servers["nginx"])
        servers["nginx-modsec"] = Nginx("modsec", free_port(), upstream_port, True, work)
        procs.append(servers["nginx-modsec"])
        labels = {
            "envoy": "Envoy, no WAF",
            "envoy-waf": "Envoy + Palisade WAF (CRS 4.25 PL1)",
            "nginx": "nginx, ModSecurity off",
            "nginx-modsec": "nginx + ModSecurity v3 (CRS 3.3.4)",
        }
        for wl, path, script in WORKLOADS:
            for key in servers:
                run_wrk(args.wrk, servers[key].port, path, script, 2, args.connections, work)
            for rnd in range(args.rounds):
                for key, srv in servers.items():
                    r = run_wrk(args.wrk, srv.port, path, script, args.duration, args.connections, work)
                    if r["non2xx"]:
                        raise RuntimeError(f"{labels[key]} / {wl}: {r['non2xx']} non-2xx responses (the WAF blocked a benign request)")
                    results.setdefault((wl, key), []).append(r)
                    print(f"round {rnd + 1} {wl:36} {labels[key]:38} {r['rps']:9.0f} req/s  p99 {r['p99']:.3f} ms", flush=True)
        rss = {key: (srv.rss_kib() if hasattr(srv, "rss_kib") else None) for key, srv in servers.items()}
    finally:
        for p in procs:
            p.stop()

    med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50", "p99")} for k, v in results.items()}
    lines = [
        "# WAF load bench",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {machine_line()}.",
        f"Envoy: `{envoy_version}`, `--concurrency 1`. nginx: `{nginx_version}`, 1 worker, "
        "ModSecurity v3 connector and CRS 3.3.4 from Debian (`SecRuleEngine On`, audit log off, "
        f"response body access off{'' if crs3 else '; CRS package docs not found'}). "
        f"wrk 1 thread, {args.connections} connections, {args.duration} s per run, {args.rounds} rounds; medians. "
        "Upstream: an Envoy with a direct response. The Palisade WAF runs CRS 4.25 at paranoia level 1, blocking.",
        "",
        "Reproduce: `scripts/bench --waf-only` (installs nginx and ModSecurity with `scripts/install-waf-bench-deps`).",
        "",
        "| workload | proxy | req/s | p50 ms | p99 ms | req/s with WAF / without |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for wl, _, _ in WORKLOADS:
        for base, waf in (("envoy", "envoy-waf"), ("nginx", "nginx-modsec")):
            b, w = med[(wl, base)], med[(wl, waf)]
            lines.append(f"| {wl} | {labels[base]} | {b['rps']:.0f} | {b['p50']:.3f} | {b['p99']:.3f} | |")
            lines.append(f"| {wl} | {labels[waf]} | {w['rps']:.0f} | {w['p50']:.3f} | {w['p99']:.3f} | **{w['rps'] / b['rps']:.3f}** |")
    lines += ["", f"Envoy RSS after the run: no WAF {rss['envoy'] / 1024:.1f} MiB, with the WAF {rss['envoy-waf'] / 1024:.1f} MiB "
              "(three configured VMs).", ""]
    out = args.out or os.path.join(args.root, "benches", "WAF-RESULTS.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
