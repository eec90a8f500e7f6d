//! The CRS regression suite (ftw YAML) against the native engine.
//!
//! `cargo test -p waf --test crs_regression -- --ignored --nocapture` (add `--release` for ~3 s)
//!
//! Reads `../shared/crs-4.25.0` (relative to the repository root), loads CRS
//! with `crs-setup.conf.example` plus rule 900005 from the suite's README
//! (DetectionOnly, blocking paranoia level 4), builds each test's request
//! the way go-ftw sends it, runs phases 1-5 and compares the logged rule
//! ids with `expect_ids` / `no_expect_ids`. Prints one line per rule file
//! and ends with `crs: N passed, N failed, N skipped`; skipped and failed
//! tests are listed with reasons in `target/tmp/crs-regression/`.
//!
//! `POST /reflect` is answered the way CRS's test backend (albedo) does, so
//! the response rules (RESPONSE-95x) see the body the test asks for.
//! Skipped tests (they need a real backend or Envoy's error log text) are
//! listed with their reason in `tests/crs-skips.txt`; the full run fails
//! if the skips differ from that file. `crs_regression_sample` runs every
//! tenth test in the default run.

mod ftw;

use ftw::{all_tests, build_input, compile_crs, expectations};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;
use waf::{Mode, Waf};

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn run_stage(waf: &Waf, stage: &Value) -> Outcome {
    let stage = stage.get("stage").unwrap_or(stage);
    let (Some(input), Some(output)) = (stage.get("input"), stage.get("output")) else {
        return Outcome::Skip("stage without input/output".into());
    };
    let log = output.get("log");
    let (expect, no_expect) = expectations(stage);
    if expect.is_empty() && no_expect.is_empty() {
        let what = if output.get("status").is_some() {
            "checks only the HTTP status of a real backend"
        } else if log
            .is_some_and(|l| l.get("match_regex").is_some() || l.get("no_match_regex").is_some())
        {
            "checks the error log text with a regex"
        } else if output.get("expect_error").is_some() {
            "expects a connection error from a real server"
        } else {
            "has no rule-id expectations"
        };
        return Outcome::Skip(what.into());
    }
    let inp = match build_input(input) {
        Ok(i) => i,
        Err(e) => return Outcome::Skip(e),
    };
    let logged = ftw::native_logged_ids(waf, inp);
    let (missing, unexpected) = ftw::compare(&expect, &no_expect, &logged);
    if missing.is_empty() && unexpected.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(format!(
            "missing {missing:?}, unexpected {unexpected:?}, logged {logged:?}"
        ))
    }
}

/// Tests the committed skip list names, with reasons.
const SKIPS_FILE: &str = "tests/crs-skips.txt";

/// The target: at least 95% of the suite passes.
const MIN_PASS_PERCENT: u32 = 95;

struct Report {
    passed: u32,
    failed: u32,
    skipped: u32,
    skips: String,
}

/// Runs every `every`-th test of the suite (1 = all), prints per rule file
/// results and the final `crs:` line.
fn run_suite(every: usize) -> Report {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("crs-regression");
    let cfg = compile_crs(&tmp, Mode::Block);
    let waf = Waf::from_config(&cfg).unwrap();
    let only = std::env::var("CRS_ONLY").ok();

    let mut per_file: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    let mut skips = String::new();
    let mut fails = String::new();
    let (mut passed, mut failed, mut skipped) = (0u32, 0u32, 0u32);
    for (seen, (family, label, stages)) in all_tests().into_iter().enumerate() {
        if only.as_deref().is_some_and(|o| !label.starts_with(o)) || seen % every != 0 {
            continue;
        }
        {
            let mut outcome = Outcome::Pass;
            for s in &stages {
                match run_stage(&waf, s) {
                    Outcome::Pass => {}
                    other => {
                        outcome = other;
                        break;
                    }
                }
            }
            let e = per_file.entry(family.clone()).or_default();
            match outcome {
                Outcome::Pass => {
                    passed += 1;
                    e.0 += 1;
                }
                Outcome::Fail(why) => {
                    failed += 1;
                    e.1 += 1;
                    fails.push_str(&format!("{label}: {why}\n"));
                }
                Outcome::Skip(why) => {
                    skipped += 1;
                    e.2 += 1;
                    skips.push_str(&format!("{label}: {why}\n"));
                }
            }
        }
    }
    for (family, (p, f, s)) in &per_file {
        println!("{family}: {p} passed, {f} failed, {s} skipped");
    }
    std::fs::write(tmp.join("skips.txt"), &skips).unwrap();
    std::fs::write(tmp.join("failures.txt"), &fails).unwrap();
    println!("skips and failures listed in {}", tmp.display());
    println!("crs: {passed} passed, {failed} failed, {skipped} skipped");
    Report {
        passed,
        failed,
        skipped,
        skips,
    }
}

fn assert_target(r: &Report) {
    let total = r.passed + r.failed + r.skipped;
    assert!(
        r.passed * 100 >= total * MIN_PASS_PERCENT,
        "{} of {total} CRS tests pass, below {MIN_PASS_PERCENT}%",
        r.passed
    );
}

#[test]
#[ignore = "the whole CRS suite (about 15 s in a debug build); run by scripts/test"]
fn crs_regression_suite() {
    let r = run_suite(1);
    assert_target(&r);
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(SKIPS_FILE))
        .unwrap_or_default();
    let listed: Vec<&str> = committed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let actual: Vec<&str> = r.skips.lines().collect();
    assert_eq!(
        actual, listed,
        "skipped tests differ from {SKIPS_FILE} (regenerate it from target/tmp/crs-regression/skips.txt)"
    );
}

/// Every tenth test, in the default (debug) run.
#[test]
fn crs_regression_sample() {
    let r = run_suite(10);
    assert!(
        r.passed > 400,
        "the sample ran only {} passing tests",
        r.passed
    );
    assert_target(&r);
}
