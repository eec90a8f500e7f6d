//! The `palisade-harness` binary, subcommand by subcommand, against the real
//! plugin modules (`target/plugins/*.wasm`, built by `scripts/build`) and
//! the SDK-example test modules (`harness_test_modules.wasm`).
//!
//! The diff tests are the acceptance of the harness: every plugin's fixture
//! suite and the SDK-style test modules give the same outcomes in the
//! harness and in real Envoy.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A built module under `target/`, or a panic saying how to build it.
fn built(relative: &str, how: &str) -> PathBuf {
    let path = root().join("target").join(relative);
    assert!(path.exists(), "{} is missing: {how}", path.display());
    path
}

fn plugin(name: &str) -> PathBuf {
    built(&format!("plugins/{name}.wasm"), "run scripts/build first")
}

fn test_modules() -> PathBuf {
    built(
        "wasm32-wasip1/release/harness_test_modules.wasm",
        "run scripts/build (or cargo build --release --target wasm32-wasip1 -p harness-test-modules)",
    )
}

fn sdk_fixtures() -> PathBuf {
    root().join("host-test-harness/test-modules/fixtures")
}

fn cli(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_palisade-harness"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("palisade-harness runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code().unwrap_or(-1), text)
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("harness-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn fixtures_of(p: &str) -> PathBuf {
    root().join(format!("plugins/{p}/fixtures"))
}

/// Plugins with a fixture suite.
const PLUGINS: &[&str] = &["rbac", "rate-limit", "jwt-auth"];

#[test]
fn run_replays_every_plugin_fixture_suite() {
    for p in PLUGINS {
        let (code, out) = cli(&[&"run", &plugin(p), &"--fixtures", &fixtures_of(p)]);
        assert_eq!(code, 0, "{p}:\n{out}");
        assert!(
            out.contains("[harness]") && out.contains(" 0 failed\n"),
            "{out}"
        );
    }
}

#[test]
fn run_exits_1_with_a_readable_report_on_a_mismatch() {
    let fixture = temp_file(
        "wrong.yaml",
        "name: wrong\nconfig: { mode: headers }\ncases:\n  - name: expects a denial\n    request: { path: /x }\n    expect: { status: 403, headers: { powered-by: nobody } }\n",
    );
    let (code, out) = cli(&[&"run", &test_modules(), &"--fixtures", &fixture]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL expects a denial"), "{out}");
    assert!(out.contains("status: expected 403, got 200"), "{out}");
    assert!(
        out.contains(r#"headers.powered-by: expected "nobody", got "proxy-wasm""#),
        "{out}"
    );
    assert!(out.contains("0 cases passed, 1 failed"), "{out}");
}

#[test]
fn config_flag_replaces_the_fixture_configuration() {
    let config = temp_file(
        "config.yaml",
        "mode: config\nheader: x-from-flag\nvalue: yes-indeed\n",
    );
    let fixture = temp_file(
        "flag.yaml",
        "name: flag\nconfig: { mode: headers }\ncases:\n  - name: header from --config\n    request: {}\n    expect: { upstream_headers: { x-from-flag: yes-indeed } }\n",
    );
    let (code, out) = cli(&[
        &"run",
        &test_modules(),
        &"--fixtures",
        &fixture,
        &"--config",
        &config,
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn run_envoy_replays_the_sdk_examples_in_real_envoy() {
    let (code, out) = cli(&[
        &"run",
        &test_modules(),
        &"--fixtures",
        &sdk_fixtures(),
        &"--envoy",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("[envoy] sdk example http_auth_random (granted)"),
        "{out}"
    );
    // The gRPC stream fixtures, served by the runner's gRPC server.
    for name in STREAM_FIXTURES {
        assert!(out.contains(&format!("[envoy] {name}")), "{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
}

/// The names of the SDK-style gRPC stream fixture files.
const STREAM_FIXTURES: [&str; 5] = [
    "sdk-style gRPC stream (granted)",
    "sdk-style gRPC stream (denied)",
    "sdk-style gRPC stream (server fails)",
    "sdk-style gRPC stream (cancelled by the filter)",
    "sdk-style gRPC stream (no cluster)",
];

#[test]
fn run_replays_the_sdk_examples_in_the_harness() {
    let (code, out) = cli(&[&"run", &test_modules(), &"--fixtures", &sdk_fixtures()]);
    assert_eq!(code, 0, "{out}");
    for name in STREAM_FIXTURES {
        assert!(out.contains(&format!("[harness] {name}")), "{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
}

/// Runs `diff` and checks it found no difference; returns its output.
fn assert_no_difference(module: &Path, fixtures: &Path) -> String {
    let (code, out) = cli(&[&"diff", &module, &"--fixtures", &fixtures]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 differences\n"), "{out}");
    assert!(!out.contains("error in"), "{out}");
    out
}

#[test]
fn diff_sdk_examples_behave_the_same_in_envoy() {
    let out = assert_no_difference(&test_modules(), &sdk_fixtures());
    for name in STREAM_FIXTURES {
        assert!(out.contains(&format!("[diff] {name}: ")), "{out}");
    }
}

#[test]
fn diff_rbac_fixtures_behave_the_same_in_envoy() {
    assert_no_difference(&plugin("rbac"), &fixtures_of("rbac"));
}

#[test]
fn diff_rate_limit_fixtures_behave_the_same_in_envoy() {
    assert_no_difference(&plugin("rate-limit"), &fixtures_of("rate-limit"));
}

#[test]
fn diff_jwt_auth_fixtures_behave_the_same_in_envoy() {
    assert_no_difference(&plugin("jwt-auth"), &fixtures_of("jwt-auth"));
}

#[test]
fn diff_reports_each_difference_and_exits_1() {
    // Envoy cannot serve a successful gRPC answer, so the Envoy side fails
    // to start while the harness runs the case: a difference per case.
    let fixture = temp_file(
        "grpc.yaml",
        "name: grpc ok\nconfig: { mode: headers }\ncallouts: { rls: { grpc: { status: 0 } } }\ncases:\n  - name: plain\n    request: {}\n    expect: { status: 200 }\n",
    );
    let (code, out) = cli(&[&"diff", &test_modules(), &"--fixtures", &fixture]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("plain: error: harness no error / envoy an error"),
        "{out}"
    );
    assert!(out.contains("envoy error in plain"), "{out}");
    assert!(out.contains("1 files: 2 differences"), "{out}");
}

/// Iterations of the fuzz smoke tests: enough to go through every mutation
/// many times, few enough for a debug build on 2 cores. The 1,000,000-run
/// figures are in the README.
const SMOKE_ITERATIONS: &str = "500";

fn assert_fuzz_clean(module: &Path, extra: &[&dyn AsRef<std::ffi::OsStr>]) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"fuzz", &module, &"--iterations", &SMOKE_ITERATIONS];
    args.extend_from_slice(extra);
    let (code, out) = cli(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": 500 iterations (seed 1): 0 traps"), "{out}");
}

#[test]
fn fuzz_smoke_rbac() {
    assert_fuzz_clean(&plugin("rbac"), &[&"--fixtures", &fixtures_of("rbac")]);
}

#[test]
fn fuzz_smoke_rate_limit() {
    assert_fuzz_clean(
        &plugin("rate-limit"),
        &[&"--fixtures", &fixtures_of("rate-limit")],
    );
}

#[test]
fn fuzz_smoke_jwt_auth() {
    assert_fuzz_clean(
        &plugin("jwt-auth"),
        &[&"--fixtures", &fixtures_of("jwt-auth")],
    );
}

#[test]
fn fuzz_smoke_waf() {
    let config = root().join("host-test-harness/fuzz/waf.json");
    assert_fuzz_clean(&plugin("waf"), &[&"--config", &config]);
}

/// A module that traps (`unreachable`) on any request with a body.
const TRAPS_ON_BODIES: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (if (i32.gt_u (local.get 1) (i32.const 0)) (then unreachable))
    (i32.const 0)))"#;

#[test]
fn fuzz_reports_a_trap_with_a_seeded_reproducer_that_run_replays() {
    let module = temp_file("traps.wasm", "");
    std::fs::write(&module, wat::parse_str(TRAPS_ON_BODIES).unwrap()).unwrap();
    let (code, out) = cli(&[&"fuzz", &module, &"--iterations", &"200", &"--seed", &"7"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(seed 7): "), "{out}");
    assert!(out.contains("TRAP at iteration"), "{out}");
    assert!(out.contains("trapped in proxy_on_request_body"), "{out}");
    // The same seed finds the same first trap.
    let (_, again) = cli(&[&"fuzz", &module, &"--iterations", &"200", &"--seed", &"7"]);
    let first = |t: &str| {
        t.split("TRAP at iteration ")
            .nth(1)
            .map(|s| s[..8].to_string())
    };
    assert_eq!(first(&out), first(&again));
    // The reproducer is a fixture file that `run` replays into the trap.
    let yaml = out
        .split("--fixtures FILE`):\n")
        .nth(1)
        .and_then(|s| s.split("\nTRAP at").next())
        .expect("a reproducer follows the trap");
    let repro = temp_file("repro.yaml", yaml);
    let (code, replay) = cli(&[&"run", &module, &"--fixtures", &repro]);
    assert_eq!(code, 1, "{replay}");
    assert!(
        replay.contains("trapped in proxy_on_request_body"),
        "{replay}"
    );
}

#[test]
fn usage_errors_exit_2_and_say_why() {
    let (code, out) = cli(&[&"run", &"m.wasm"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("run needs --fixtures PATH"), "{out}");
    assert!(out.contains("usage:"), "{out}");
    let (code, out) = cli(&[&"run", &"/nonexistent.wasm", &"--fixtures", &sdk_fixtures()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("nonexistent.wasm"), "{out}");
}
