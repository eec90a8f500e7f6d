//! The WAF in real Envoy 1.40 with the full OWASP CRS 4.25 loaded: blocking
//! and passing requests, the body limit, metrics, the audit line, the
//! shipped example, and a sampled subset of CRS's regression tests.

mod ftw;

use host_test_harness::envoy::{self, Bootstrap, EchoUpstream, Envoy, EnvoyOptions, WasmFilter};
use host_test_harness::fixture::{Outcome, Request};
use std::path::{Path, PathBuf};
use waf::compile::CompileOptions;
use waf::config::{BodyOverflow, Mode};

fn root() -> PathBuf {
    envoy::workspace_root().expect("run inside the Palisade workspace")
}

fn module() -> PathBuf {
    let m = root().join("target/plugins/waf.wasm");
    assert!(
        m.exists(),
        "{} is missing: run scripts/build first",
        m.display()
    );
    m
}

fn start(config: &waf::WafConfig) -> (EchoUpstream, Envoy) {
    let upstream = EchoUpstream::start().unwrap();
    let filter = WasmFilter::new("palisade.waf", module())
        .root_id("waf")
        .config(serde_json::to_string(config).unwrap());
    let boot = Bootstrap::new(vec![filter], upstream.addr());
    let proxy = Envoy::start_bootstrap(&boot, &EnvoyOptions::default()).expect("envoy starts");
    (upstream, proxy)
}

/// CRS at paranoia level 1, blocking, 8 KiB body limit, reject past it.
fn crs_pl1() -> waf::WafConfig {
    let mut o = CompileOptions::new(ftw::crs_dir());
    o.paranoia_level = Some(1);
    o.request_body_limit = 8192;
    o.body_overflow = BodyOverflow::Reject;
    waf::compile::compile(&o).expect("CRS compiles")
}

fn get(path: &str) -> Request {
    Request {
        path: path.into(),
        headers: vec![
            (
                "user-agent".into(),
                "Mozilla/5.0 (X11; Linux x86_64)".into(),
            ),
            ("accept".into(), "text/html".into()),
        ],
        ..Default::default()
    }
}

fn post(path: &str, content_type: &str, body: &str) -> Request {
    let mut r = get(path);
    r.method = "POST".into();
    r.headers.push(("content-type".into(), content_type.into()));
    r.body = Some(body.into());
    r
}

fn json(o: &Outcome) -> serde_json::Value {
    serde_json::from_slice(&o.body).unwrap_or_default()
}

#[test]
fn crs_blocks_attacks_and_passes_clean_traffic() {
    let (_upstream, proxy) = start(&crs_pl1());
    let addr = proxy.listener_addr();

    let mut sqli = get("/products?id=1%27%20OR%20%271%27%3D%271");
    sqli.headers
        .push(("x-request-id".into(), "rid-sqli".into()));
    let out = envoy::send(addr, &sqli).unwrap();
    assert_eq!(out.status, 403, "{out:?}");
    assert!(out.upstream.is_none());
    assert_eq!(json(&out)["code"], "waf_blocked");

    let xss = post(
        "/comment",
        "application/x-www-form-urlencoded",
        "text=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
    );
    let out = envoy::send(addr, &xss).unwrap();
    assert_eq!(out.status, 403, "{out:?}");

    let clean = get("/index.html?page=2&sort=price");
    let out = envoy::send(addr, &clean).unwrap();
    assert_eq!(out.status, 200, "{out:?}");

    let body = r#"{"name":"Zoë","tags":["a","b"],"qty":3}"#;
    let out = envoy::send(addr, &post("/api/items", "application/json", body)).unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.upstream.expect("forwarded").body, body);

    let big = "a=".to_string() + &"x".repeat(9000);
    let out = envoy::send(
        addr,
        &post("/upload", "application/x-www-form-urlencoded", &big),
    )
    .unwrap();
    assert_eq!(out.status, 413, "{out:?}");
    assert_eq!(json(&out)["code"], "waf_body_too_large");

    assert_eq!(proxy.metric("palisade_waf_blocked").unwrap(), Some(2.0));
    assert_eq!(
        proxy.metric("palisade_waf_body_overflow").unwrap(),
        Some(1.0)
    );
    assert!(proxy
        .metric("palisade_waf_family_942_application_attack_sqli_matched")
        .unwrap()
        .is_some_and(|n| n >= 1.0));
    let log = proxy.log();
    let line = log
        .lines()
        .find(|l| l.contains(r#""action":"deny""#) && l.contains("rid-sqli"))
        .unwrap_or_else(|| panic!("no audit line for the SQLi request:\n{log}"));
    assert!(line.contains(r#""rule_id":949110"#), "{line}");
    assert!(
        line.contains("942100"),
        "libinjection rule id missing: {line}"
    );
    assert!(log.contains("waf 0.1.0 (commit"), "configure line missing");
}

#[test]
fn shipped_example_validates() {
    let out = envoy::validate_file(
        &root().join("envoy-examples/waf.yaml"),
        &EnvoyOptions::default(),
    )
    .expect("envoy --mode validate accepts envoy-examples/waf.yaml");
    assert!(out.contains("OK"), "{out}");
    // Envoy only checks the JSON is a string; the plugin must accept it too.
    let text = std::fs::read_to_string(root().join("envoy-examples/waf.yaml")).unwrap();
    let start = text.find("value: |").expect("inline configuration") + "value: |".len();
    let end = text.find("- name: envoy.filters.http.router").unwrap();
    let waf =
        waf::Waf::from_json(text[start..end].trim().as_bytes()).expect("example config loads");
    assert_eq!(waf.rules.rules.len(), 3);
}

/// Every 25th request-phase CRS test the client can send, through Envoy in
/// detection-only mode: the rule ids in the audit line must meet the
/// test's `expect_ids` / `no_expect_ids`.
#[test]
fn crs_sample_through_envoy() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("crs-envoy");
    let mut cfg = ftw::compile_crs(&tmp, Mode::DetectionOnly);
    cfg.request_body_limit = 1024 * 1024;
    let (_upstream, proxy) = start(&cfg);
    let addr = proxy.listener_addr();
    let (mut passed, mut failed) = (0u32, Vec::new());
    let mut candidates = 0usize;
    for (family, label, stages) in ftw::all_tests() {
        let Ok(ftw::FixtureCase {
            request: req,
            expect,
            no_expect,
            ..
        }) = ftw::fixture_case(&family, &stages)
        else {
            continue;
        };
        candidates += 1;
        if (candidates - 1) % 25 != 0 {
            continue;
        }
        let before = proxy.log().len();
        let out = match envoy::send(addr, &req) {
            Ok(o) => o,
            Err(e) => {
                failed.push(format!("{label}: {e}"));
                continue;
            }
        };
        let logged = ftw::logged_ids(&proxy.log(), before);
        let (missing, unexpected) = ftw::compare(&expect, &no_expect, &logged);
        if missing.is_empty() && unexpected.is_empty() {
            passed += 1;
        } else {
            failed.push(format!(
                "{label}: status {}, missing {missing:?}, unexpected {unexpected:?}",
                out.status
            ));
        }
    }
    for f in &failed {
        println!("FAIL {f}");
    }
    println!("crs via envoy: {passed} passed, {} failed", failed.len());
    assert!(
        passed >= 100,
        "only {passed} sampled CRS tests passed through Envoy"
    );
    assert!(
        passed * 100 >= (passed + failed.len() as u32) * 90,
        "fewer than 90% of the sampled CRS tests pass through Envoy"
    );
}

/// Linear memory one VM holds after loading full CRS (from the filter's
/// configure line), and Envoy's resident size with full CRS versus a
/// one-rule configuration (`--concurrency 1`: a main-thread and a worker
/// VM). Printed for the README; bounded so a regression shows.
#[test]
fn memory_with_full_crs_loaded() {
    let linear = |log: &str| -> Vec<u64> {
        log.lines()
            .filter_map(|l| l.split("linear memory ").nth(1))
            .filter_map(|r| r.split(' ').next()?.parse().ok())
            .collect()
    };
    let rss_kib = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    };
    let (_u1, crs) = start(&crs_pl1());
    let crs_linear = linear(&crs.log());
    let crs_rss = rss_kib(crs.pid());
    let small: waf::WafConfig = serde_json::from_str(
        r#"{"rules":[{"name":"one.conf","text":"SecRule ARGS \"@rx bad\" \"id:1,phase:2,deny\""}]}"#,
    )
    .unwrap();
    let (_u2, one) = start(&small);
    let one_linear = linear(&one.log());
    let one_rss = rss_kib(one.pid());
    println!(
        "linear memory per VM: full CRS {crs_linear:?} bytes, one rule {one_linear:?} bytes; \
         Envoy RSS: full CRS {crs_rss} KiB, one rule {one_rss} KiB"
    );
    let per_vm = *crs_linear
        .iter()
        .max()
        .expect("configure line with linear memory");
    assert!(
        per_vm < 64 << 20,
        "a VM with CRS uses {per_vm} bytes of linear memory"
    );
}
