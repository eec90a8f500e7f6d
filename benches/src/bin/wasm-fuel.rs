//! What each plugin module costs in wasm, counted instead of timed: the
//! harness's wasmtime fuel (about one unit per wasm instruction run; host
//! calls not counted) for start-up and for each request of the
//! `harness_cases`. The same on every run and machine, so a change to a
//! plugin's per-request path shows here exactly, where time on a shared
//! machine cannot tell a few percent from noise.
//!
//! Prints a Markdown section (scripts/bench appends it to
//! `benches/RESULTS.md`): `cargo run --release -p palisade-benches --bin
//! wasm-fuel` after `scripts/build`. Arguments name the cases to run (e.g.
//! `rbac`; an unknown name is an error); the floor always runs, and only
//! the waf case loads OWASP CRS.

use palisade_benches::harness_cases::{case, NAMES};
use std::process::ExitCode;

/// Fuel of one module: start-up, the first request, a later request.
struct Row {
    name: &'static str,
    start: u64,
    first: u64,
    later: u64,
}

fn measure(only: &[String]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    // The floor first, then the named cases (all when none are named); a
    // name that is not a case is an error, not an empty report.
    let mut names = vec!["floor"];
    if only.is_empty() {
        names.extend(&NAMES[1..]);
    } else {
        names.extend(only.iter().map(String::as_str).filter(|n| *n != "floor"));
    }
    for case in names.into_iter().map(case) {
        let case = case?;
        let mut host = case.host()?;
        let start = host.fuel_consumed();
        let mut request = || -> Result<u64, String> {
            let before = host.fuel_consumed();
            let out = host
                .send(&case.request)
                .map_err(|e| format!("{}: {e}", case.name))?;
            case.check(&out)?;
            Ok(host.fuel_consumed() - before)
        };
        let first = request()?;
        let later = request()?;
        let again = request()?;
        if again != later {
            return Err(format!(
                "{}: two identical later requests burnt {later} and {again} fuel; \
                 the report assumes a steady state",
                case.name
            ));
        }
        rows.push(Row {
            name: case.name,
            start,
            first,
            later,
        });
    }
    Ok(rows)
}

fn main() -> ExitCode {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let rows = match measure(&only) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("wasm-fuel: {e}");
            return ExitCode::FAILURE;
        }
    };
    let floor = rows.first().map_or(1, |r| r.later.max(1));
    println!("## Wasm operations per request (wasmtime fuel, `harness_request` cases)\n");
    println!(
        "Counted by the harness (`Host::fuel_consumed`): about one unit per wasm instruction, \
         host calls not counted; the same on every run. *Later* is each request after the \
         first (caches warm); the ratio is to the floor, a module that does nothing.\n"
    );
    println!("| module | start-up | first request | later requests | later vs floor |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.1}× |",
            r.name,
            r.start,
            r.first,
            r.later,
            r.later as f64 / floor as f64
        );
    }
    println!("\nReproduce: `cargo run --release -p palisade-benches --bin wasm-fuel` (after `scripts/build`).");
    ExitCode::SUCCESS
}
