//! `oci-pack`: see `oci-pack --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match oci_pack::cli::run(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            if matches!(e, oci_pack::cli::CliError::Usage(_)) {
                eprint!("{}", oci_pack::cli::USAGE);
            }
            eprintln!("oci-pack: {e}");
            ExitCode::FAILURE
        }
    }
}
