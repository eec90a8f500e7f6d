//! `palisade-harness`: the harness's command line.
//!
//! ```text
//! palisade-harness run MODULE --fixtures PATH [--config FILE] [--root-id ID] [--envoy]
//! palisade-harness diff MODULE --fixtures PATH [--config FILE] [--root-id ID]
//! palisade-harness fuzz MODULE [--config FILE] [--fixtures PATH] [--iterations N] [--seed S]
//! palisade-harness echo-upstream --port PORT
//! ```
//!
//! `PATH` is a fixture file or a directory of them. `--config` (JSON or
//! YAML) replaces each file's `config`. Exit status: 0 all passed / no
//! difference / no trap, 1 a mismatch, difference or trap, 2 a usage or
//! setup error.

use host_test_harness::cli::{self, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match Command::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palisade-harness: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    match cli::execute(&command, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("palisade-harness: {e}");
            ExitCode::from(2)
        }
    }
}
