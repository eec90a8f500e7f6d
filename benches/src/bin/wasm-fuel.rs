//! What each plugin module costs in wasm, counted instead of timed: the
//! harness's wasmtime fuel (about one unit per wasm instruction run; host
//! calls not counted) for start-up and for each request of the
//! `harness_cases`. The same on every run and machine (the waf's, which
//! depends on hash seeds and the heap's state, moves by a few operations
//! and is shown with its spread), so a change to a plugin's per-request
//! path shows here exactly, where time on a shared machine cannot tell a
//! few percent from noise.
//!
//! Prints a Markdown section (scripts/bench appends it to
//! `benches/RESULTS.md`): `cargo run --release -p palisade-benches --bin
//! wasm-fuel` after `scripts/build`. Arguments name the cases to run (e.g.
//! `rbac`; an unknown name is an error); the floor always runs, and only
//! the waf case loads OWASP CRS.

use palisade_benches::harness_cases::{case, NAMES};
use std::process::ExitCode;

/// Later requests measured per module; their median is reported.
const LATER_REQUESTS: usize = 5;

/// How far apart later requests may be, as a fraction of their median,
/// before the report refuses them. Modules with hash maps (the waf) differ
/// by a few operations from request to request, as the heap's state and
/// hash seeds move on; a growing cache or a leak differs by far more.
const MAX_SPREAD: f64 = 0.001;

/// Fuel of one module: start-up, the first request, later requests.
struct Row {
    name: &'static str,
    start: u64,
    first: u64,
    /// Median over [`LATER_REQUESTS`].
    later: u64,
    /// Highest minus lowest of the later requests (0 when all were equal).
    spread: u64,
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
        let mut later = (0..LATER_REQUESTS)
            .map(|_| request())
            .collect::<Result<Vec<u64>, String>>()?;
        later.sort_unstable();
        let median = later[LATER_REQUESTS / 2];
        let spread = later[LATER_REQUESTS - 1] - later[0];
        if spread as f64 > median as f64 * MAX_SPREAD {
            return Err(format!(
                "{}: {LATER_REQUESTS} identical later requests burnt {later:?} fuel, \
                 more than {}% apart; the report assumes a steady state",
                case.name,
                MAX_SPREAD * 100.0
            ));
        }
        rows.push(Row {
            name: case.name,
            start,
            first,
            later: median,
            spread,
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
         host calls not counted. *Later* is the median of {LATER_REQUESTS} requests after the \
         first (caches warm), the same on every run unless a spread is shown (± half the range \
         between those requests: hash seeds and the heap's state move on, and with them a few \
         operations); the ratio is to the floor, a module that does nothing.\n"
    );
    println!("| module | start-up | first request | later requests | later vs floor |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let spread = match r.spread {
            0 => String::new(),
            s => format!(" ± {}", s.div_ceil(2)),
        };
        println!(
            "| {} | {} | {} | {}{spread} | {:.1}× |",
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
