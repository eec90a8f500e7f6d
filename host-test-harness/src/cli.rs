//! The `palisade-harness` command line: parsing ([`Command::parse`]) and
//! running ([`execute`]) its subcommands, writing the report to any writer
//! so tests can read it.

use crate::envoy::{self, WasmFilter};
use crate::fixture::{FileReport, FixtureError, FixtureFile};
use crate::{diff, fuzz, runner, Host, HostBuilder, HostError, Module, ModuleError};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Usage text.
pub const USAGE: &str = "\
usage:
  palisade-harness run MODULE --fixtures PATH [--config FILE] [--root-id ID] [--envoy]
      replay fixture files (PATH: a file or a directory of *.yaml) in the harness,
      or with --envoy in real Envoy 1.40; exit 1 on any mismatch
  palisade-harness diff MODULE --fixtures PATH [--config FILE] [--root-id ID]
      run the fixtures in both and report every difference; exit 1 on any
  palisade-harness fuzz MODULE [--config FILE] [--fixtures PATH] [--iterations N] [--seed S] [--root-id ID]
      random and mutated requests (seeded by the fixtures' requests); exit 1 on
      any trap, printing a reproducer fixture for each (default 10000 iterations, seed 1)
  palisade-harness echo-upstream --port PORT
      serve the echo upstream on 127.0.0.1:PORT

--config FILE (JSON or YAML) replaces the fixture files' `config`; for fuzz
without it, the first fixture file with cases gives the configuration.";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Replay fixtures in the harness or (`envoy`) in Envoy.
    Run {
        /// The common options.
        target: Target,
        /// Run in real Envoy instead of the harness.
        envoy: bool,
    },
    /// Replay fixtures in both and compare.
    Diff(Target),
    /// Fuzz the module.
    Fuzz {
        /// The common options (`fixtures` optional).
        target: Target,
        /// Requests to send.
        iterations: u64,
        /// Generator seed.
        seed: u64,
    },
    /// Serve the echo upstream.
    EchoUpstream {
        /// Port on 127.0.0.1.
        port: u16,
    },
}

/// What a subcommand runs: the module, its fixtures and configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// The `.wasm` module.
    pub module: PathBuf,
    /// A fixture file or directory.
    pub fixtures: Option<PathBuf>,
    /// A configuration file replacing the fixtures' `config`.
    pub config: Option<PathBuf>,
    /// The plugin's root id.
    pub root_id: Option<String>,
}

/// Why a command could not run (not a mismatch: those are the report).
#[derive(Debug)]
pub enum CliError {
    /// The command line is wrong.
    Usage(String),
    /// The module cannot be loaded.
    Module(ModuleError),
    /// A fixture file cannot be read.
    Fixture(FixtureError),
    /// The configuration file cannot be read or parsed.
    Config(PathBuf, String),
    /// The module could not be started for fuzzing.
    Host(HostError),
    /// Real Envoy is not available.
    Envoy(envoy::EnvoyError),
    /// Writing the report failed.
    Io(std::io::Error),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => f.write_str(m),
            CliError::Module(e) => write!(f, "{e}"),
            CliError::Fixture(e) => write!(f, "{e}"),
            CliError::Config(p, e) => write!(f, "configuration {}: {e}", p.display()),
            CliError::Host(e) => write!(f, "cannot start the module: {e}"),
            CliError::Envoy(e) => write!(f, "{e}"),
            CliError::Io(e) => write!(f, "writing the report: {e}"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::Io(e)
    }
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> Result<Command, CliError> {
        let (sub, rest) = args
            .split_first()
            .ok_or_else(|| usage("no subcommand given"))?;
        let mut target = Target::default();
        let (mut envoy, mut iterations, mut seed, mut port) = (false, 10_000u64, 1u64, None);
        let mut positional = Vec::new();
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| usage(format!("{name} needs a value")))
            };
            let number = |name: &str, v: String| {
                v.parse::<u64>()
                    .map_err(|_| usage(format!("{name} needs a whole number, got {v:?}")))
            };
            match a.as_str() {
                "--fixtures" => target.fixtures = Some(value(a)?.into()),
                "--config" => target.config = Some(value(a)?.into()),
                "--root-id" => target.root_id = Some(value(a)?),
                "--envoy" if sub == "run" => envoy = true,
                "--iterations" if sub == "fuzz" => iterations = number(a, value(a)?)?,
                "--seed" if sub == "fuzz" => seed = number(a, value(a)?)?,
                "--port" if sub == "echo-upstream" => {
                    let v = value(a)?;
                    port = Some(v.parse::<u16>().map_err(|_| {
                        usage(format!("--port needs a number from 1 to 65535, got {v:?}"))
                    })?)
                }
                flag if flag.starts_with("--") => {
                    return Err(usage(format!("unknown option {flag} for {sub}")))
                }
                _ => positional.push(a.clone()),
            }
        }
        if sub == "echo-upstream" {
            let port = port.ok_or_else(|| usage("echo-upstream needs --port PORT"))?;
            return Ok(Command::EchoUpstream { port });
        }
        match positional.as_slice() {
            [m] => target.module = m.into(),
            [] => return Err(usage(format!("{sub} needs a MODULE (.wasm file)"))),
            more => return Err(usage(format!("unexpected arguments {:?}", &more[1..]))),
        }
        if sub != "fuzz" && target.fixtures.is_none() {
            return Err(usage(format!("{sub} needs --fixtures PATH")));
        }
        match sub.as_str() {
            "run" => Ok(Command::Run { target, envoy }),
            "diff" => Ok(Command::Diff(target)),
            "fuzz" => Ok(Command::Fuzz {
                target,
                iterations,
                seed,
            }),
            other => Err(usage(format!("unknown subcommand {other:?}"))),
        }
    }
}

/// Runs `command`, writing its report to `out`. `Ok(true)`: everything
/// passed (no mismatch, difference or trap).
pub fn execute(command: &Command, out: &mut impl Write) -> Result<bool, CliError> {
    match command {
        Command::Run { target, envoy } => run(target, *envoy, out),
        Command::Diff(target) => run_diff(target, out),
        Command::Fuzz {
            target,
            iterations,
            seed,
        } => run_fuzz(target, *iterations, *seed, out),
        Command::EchoUpstream { port } => {
            writeln!(out, "echo upstream on 127.0.0.1:{port}")?;
            out.flush()?;
            envoy::serve_echo(*port)?;
            Ok(true)
        }
    }
}

/// The fixture files of a target, with `--config` applied.
fn fixtures(target: &Target) -> Result<Vec<FixtureFile>, CliError> {
    let Some(path) = &target.fixtures else {
        return Ok(Vec::new());
    };
    let mut files = if path.is_dir() {
        FixtureFile::load_dir(path)
    } else {
        FixtureFile::load(path).map(|f| vec![f])
    }
    .map_err(CliError::Fixture)?;
    if files.is_empty() {
        return Err(usage(format!(
            "no *.yaml fixture files in {}",
            path.display()
        )));
    }
    if let Some(config) = config(target)? {
        for f in &mut files {
            f.config = config.clone();
        }
    }
    Ok(files)
}

fn config(target: &Target) -> Result<Option<serde_json::Value>, CliError> {
    let Some(path) = &target.config else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::Config(path.clone(), e.to_string()))?;
    serde_yaml::from_str(&text)
        .map(Some)
        .map_err(|e| CliError::Config(path.clone(), format!("not JSON or YAML: {e}")))
}

fn builder(module: &Module, target: &Target, config: Vec<u8>) -> HostBuilder {
    let b = Host::builder(module).plugin_config(config);
    match &target.root_id {
        Some(id) => b.root_id(id),
        None => b,
    }
}

fn harness_report(module: &Module, target: &Target, file: &FixtureFile) -> FileReport {
    runner::run_file_with(file, |config| builder(module, target, config))
}

fn envoy_report(target: &Target, file: &FixtureFile) -> FileReport {
    let stem = target
        .module
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "module".into());
    let mut filter = WasmFilter::new(format!("harness.{stem}"), &target.module);
    if let Some(id) = &target.root_id {
        filter = filter.root_id(id);
    }
    envoy::run_file(&[filter], file)
}

fn load(path: &Path) -> Result<Module, CliError> {
    Module::from_file(path).map_err(CliError::Module)
}

fn run(target: &Target, in_envoy: bool, out: &mut impl Write) -> Result<bool, CliError> {
    let files = fixtures(target)?;
    let module = if in_envoy {
        envoy::envoy_binary().map_err(CliError::Envoy)?;
        None
    } else {
        Some(load(&target.module)?)
    };
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let report = match &module {
            Some(m) => harness_report(m, target, file),
            None => envoy_report(target, file),
        };
        writeln!(out, "{report}")?;
        passed += report.passed();
        failed += report.failed();
    }
    writeln!(
        out,
        "{} files: {passed} cases passed, {failed} failed",
        files.len()
    )?;
    Ok(failed == 0)
}

fn run_diff(target: &Target, out: &mut impl Write) -> Result<bool, CliError> {
    let files = fixtures(target)?;
    let module = load(&target.module)?;
    envoy::envoy_binary().map_err(CliError::Envoy)?;
    let mut total = 0;
    for file in &files {
        let ours = harness_report(&module, target, file);
        let theirs = envoy_report(target, file);
        let differences = diff::compare(&ours, &theirs);
        writeln!(
            out,
            "[diff] {}: {} cases; harness {} passed, envoy {} passed; {} differences",
            file.name,
            ours.cases.len(),
            ours.passed(),
            theirs.passed(),
            differences.len()
        )?;
        for d in &differences {
            writeln!(out, "  {d}")?;
        }
        for (label, report) in [("harness", &ours), ("envoy", &theirs)] {
            for c in report.cases.iter().filter(|c| c.error.is_some()) {
                let e = c.error.as_deref().unwrap_or_default();
                writeln!(out, "  {label} error in {}: {e}", c.name)?;
            }
        }
        total += differences.len();
    }
    writeln!(out, "{} files: {total} differences", files.len())?;
    Ok(total == 0)
}

fn run_fuzz(
    target: &Target,
    iterations: u64,
    seed: u64,
    out: &mut impl Write,
) -> Result<bool, CliError> {
    let files = fixtures(target)?;
    let module = load(&target.module)?;
    let source = files.iter().find(|f| f.config_error.is_none());
    let config = match (config(target)?, source) {
        (Some(c), _) => c,
        (None, Some(f)) => f.config.clone(),
        (None, None) => serde_json::Value::Null,
    };
    let bytes = if config.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&config).expect("a JSON value always serializes")
    };
    let seeds: Vec<_> = files
        .iter()
        .flat_map(|f| f.cases.iter().map(|c| c.request.clone()))
        .collect();
    let report = fuzz::fuzz(
        || {
            let b = builder(&module, target, bytes.clone());
            match source {
                Some(f) => runner::with_callouts(b, f),
                None => b,
            }
        },
        &seeds,
        iterations,
        seed,
    )
    .map_err(CliError::Host)?;
    writeln!(out, "[fuzz] {}: {report}", target.module.display())?;
    for trap in &report.traps {
        writeln!(
            out,
            "\nTRAP at iteration {} (replay: --seed {seed} --iterations {}):\n{}\nreproducer fixture (save it and run `palisade-harness run {} --fixtures FILE`):\n{}",
            trap.iteration,
            trap.iteration + 1,
            trap.error,
            target.module.display(),
            fuzz::reproducer(&config, trap)
        )?;
    }
    Ok(report.trap_count == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, CliError> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        Command::parse(&args)
    }

    #[test]
    fn parses_each_subcommand() {
        let run = parse("run m.wasm --fixtures f --envoy --root-id r").unwrap();
        assert_eq!(
            run,
            Command::Run {
                target: Target {
                    module: "m.wasm".into(),
                    fixtures: Some("f".into()),
                    config: None,
                    root_id: Some("r".into()),
                },
                envoy: true
            }
        );
        assert!(
            matches!(parse("diff m --fixtures f --config c").unwrap(), Command::Diff(t) if t.config == Some("c".into()))
        );
        assert!(matches!(
            parse("fuzz m --iterations 5 --seed 9").unwrap(),
            Command::Fuzz {
                iterations: 5,
                seed: 9,
                ..
            }
        ));
        assert_eq!(
            parse("echo-upstream --port 80").unwrap(),
            Command::EchoUpstream { port: 80 }
        );
    }

    #[test]
    fn refuses_bad_command_lines_with_a_reason() {
        for (line, reason) in [
            ("", "no subcommand"),
            ("run m", "needs --fixtures"),
            ("run --fixtures f", "needs a MODULE"),
            ("diff m --fixtures f --envoy", "unknown option --envoy"),
            ("fuzz m --iterations x", "whole number"),
            ("bogus m --fixtures f", "unknown subcommand"),
            ("echo-upstream --port 99999", "65535"),
        ] {
            let err = parse(line).unwrap_err().to_string();
            assert!(err.contains(reason), "{line:?}: {err}");
        }
    }
}
