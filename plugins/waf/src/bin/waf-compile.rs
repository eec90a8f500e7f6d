//! `waf-compile`: a CRS directory plus overrides into the WAF plugin's JSON
//! configuration.
//!
//! ```text
//! waf-compile --crs ../shared/crs-4.25.0 [--setup FILE] [--paranoia 1-4]
//!             [--detection-paranoia 1-4] [--threshold N] [--before FILE]...
//!             [--after FILE]... [--detection-only] [--body-limit BYTES]
//!             [--inspect-partial] [-o OUT.json]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use waf::compile::{compile, CompileOptions};
use waf::config::{BodyOverflow, Mode};

const USAGE: &str = "usage: waf-compile --crs DIR [--setup FILE] [--paranoia 1-4] [--detection-paranoia 1-4] [--threshold N] [--before FILE]... [--after FILE]... [--detection-only] [--body-limit BYTES] [--inspect-partial] [-o OUT.json]";

fn parse_args(args: &[String]) -> Result<(CompileOptions, Option<PathBuf>), String> {
    let mut crs = None;
    let mut out = None;
    let mut opts = CompileOptions::new("");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| -> Result<String, String> {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let num = |name: &str, v: String| -> Result<u32, String> {
            v.parse()
                .map_err(|_| format!("{name}: `{v}` is not a number"))
        };
        match a.as_str() {
            "--crs" => crs = Some(PathBuf::from(val(a)?)),
            "--setup" => opts.setup = Some(PathBuf::from(val(a)?)),
            "--paranoia" => opts.paranoia_level = Some(num(a, val(a)?)?.min(255) as u8),
            "--detection-paranoia" => {
                opts.detection_paranoia_level = Some(num(a, val(a)?)?.min(255) as u8)
            }
            "--threshold" => opts.inbound_anomaly_threshold = Some(num(a, val(a)?)?),
            "--before" => opts.before.push(PathBuf::from(val(a)?)),
            "--after" => opts.after.push(PathBuf::from(val(a)?)),
            "--detection-only" => opts.mode = Mode::DetectionOnly,
            "--body-limit" => opts.request_body_limit = num(a, val(a)?)? as usize,
            "--inspect-partial" => opts.body_overflow = BodyOverflow::InspectPartial,
            "-o" | "--output" => out = Some(PathBuf::from(val(a)?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    opts.crs_dir = crs.ok_or_else(|| format!("--crs is required\n{USAGE}"))?;
    Ok((opts, out))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, out) = match parse_args(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("waf-compile: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = match compile(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("waf-compile: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = match serde_json::to_string(&cfg) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("waf-compile: cannot serialise the configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    match out {
        Some(p) => {
            if let Err(e) = std::fs::write(&p, json.as_bytes()) {
                eprintln!("waf-compile: cannot write {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
            eprintln!(
                "waf-compile: {} rule sources, {} data files, {} bytes -> {}",
                cfg.rules.len(),
                cfg.data_files.len(),
                json.len(),
                p.display()
            );
        }
        None => println!("{json}"),
    }
    ExitCode::SUCCESS
}
