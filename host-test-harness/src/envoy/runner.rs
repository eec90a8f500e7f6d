//! [`run_file`]: a fixture file through real Envoy.
//!
//! One Envoy and one echo upstream per file; the cases run in order on that
//! Envoy, so state a plugin keeps between requests carries over as it does
//! in the harness.

use super::bootstrap::{Bootstrap, ExtraCluster, WasmFilter};
use super::client;
use super::grpc_server::GrpcStreamServer;
use super::process::{Envoy, EnvoyOptions};
use super::upstream::EchoUpstream;
use super::EnvoyError;
use crate::fixture::{self, Callout, CaseReport, FileReport, FixtureFile, Mismatch};

/// The runner name in [`FileReport::runner`].
pub const RUNNER_NAME: &str = "envoy";

/// Name of the pseudo-case reported for a `config_error` file.
pub const CONFIG_ERROR_CASE: &str = "configuration is refused";

/// Runs `file` through Envoy with the default [`EnvoyOptions`] and no extra
/// clusters. See [`run_file_with`].
pub fn run_file(chain: &[WasmFilter], file: &FixtureFile) -> FileReport {
    run_file_with(chain, file, &EnvoyOptions::default(), &[])
}

/// Runs `file` through Envoy with the Wasm filters `chain`, in order.
///
/// The fixture's `config` is handed to the **last** filter of the chain (the
/// plugin under test); earlier filters keep their own configuration, as a
/// jwt-auth filter in front of rbac would. For a `config_error` file, Envoy
/// must exit during start-up and its log must contain the expected text.
/// Otherwise every case is sent from its `source` address and checked with
/// [`fixture::check`]. Failures to run (Envoy missing, a broken connection)
/// are reported as case errors, never panics.
pub fn run_file_with(
    chain: &[WasmFilter],
    file: &FixtureFile,
    options: &EnvoyOptions,
    clusters: &[ExtraCluster],
) -> FileReport {
    let mut report = FileReport {
        name: file.name.clone(),
        runner: RUNNER_NAME.to_string(),
        cases: Vec::new(),
    };
    let started = start(chain, file, options, clusters);
    if let Some(expected) = &file.config_error {
        report.cases.push(config_error_case(expected, started));
        return report;
    }
    let (_servers, envoy) = match started {
        Ok(running) => running,
        Err(error) => {
            report.cases = file
                .cases
                .iter()
                .map(|case| failed(&case.name, error.to_string()))
                .collect();
            return report;
        }
    };
    run_cases(&envoy, file)
}

/// Runs the cases of `file` against an Envoy that is already running (its
/// first listener), e.g. to inspect its metrics or log afterwards. The
/// file's `config` and `config_error` are not looked at: the Envoy was
/// configured by the caller.
pub fn run_cases(envoy: &Envoy, file: &FixtureFile) -> FileReport {
    let addr = envoy.listener_addr();
    let cases = file
        .cases
        .iter()
        .map(|case| match client::send(addr, &case.request) {
            Ok(outcome) => CaseReport {
                name: case.name.clone(),
                mismatches: fixture::check(&case.expect, &outcome),
                outcome: Some(outcome),
                error: None,
            },
            Err(e) => failed(&case.name, e.to_string()),
        })
        .collect();
    FileReport {
        name: file.name.clone(),
        runner: RUNNER_NAME.to_string(),
        cases,
    }
}

/// The echo upstream and the callout servers of a running file, kept
/// running until the file's cases are done.
#[derive(Default)]
struct Servers {
    http: Vec<EchoUpstream>,
    grpc_streams: Vec<GrpcStreamServer>,
}

fn start(
    chain: &[WasmFilter],
    file: &FixtureFile,
    options: &EnvoyOptions,
    clusters: &[ExtraCluster],
) -> Result<(Servers, Envoy), EnvoyError> {
    let filters = with_fixture_config(chain, file)?;
    let upstream =
        EchoUpstream::start().map_err(|e| EnvoyError::io("starting the echo upstream", e))?;
    let mut bootstrap = Bootstrap::new(filters, upstream.addr());
    bootstrap.clusters = clusters.to_vec();
    bootstrap.connection_manager = file.connection_manager.map(Into::into).unwrap_or_default();
    let mut servers = Servers {
        http: vec![upstream],
        ..Servers::default()
    };
    for (name, callout) in &file.callouts {
        bootstrap
            .clusters
            .push(callout_cluster(name, callout, &mut servers)?);
    }
    let envoy = Envoy::start_bootstrap(&bootstrap, options)?;
    Ok((servers, envoy))
}

/// The cluster serving a fixture's callout: a canned HTTP server, a gRPC
/// stream server playing the fixture's stream answer, or for a gRPC
/// `UNAVAILABLE` an HTTP/2 cluster whose port refuses connections.
fn callout_cluster(
    name: &str,
    callout: &Callout,
    servers: &mut Servers,
) -> Result<ExtraCluster, EnvoyError> {
    if let Some(answer) = &callout.http {
        let server = EchoUpstream::start_canned(answer.clone())
            .map_err(|e| EnvoyError::io(format!("starting callout server {name}"), e))?;
        let port = server.port();
        servers.http.push(server);
        return Ok(ExtraCluster::new(name, "127.0.0.1", port));
    }
    if let Some(answer) = &callout.grpc_stream {
        let server = GrpcStreamServer::start(answer)
            .map_err(|e| EnvoyError::io(format!("starting gRPC stream server {name}"), e))?;
        let port = server.port();
        servers.grpc_streams.push(server);
        return Ok(ExtraCluster::new(name, "127.0.0.1", port).http2());
    }
    match &callout.grpc {
        Some(g) if g.status == crate::grpc_call::UNAVAILABLE => {
            let closed = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| EnvoyError::io("finding a closed port", e))?;
            Ok(ExtraCluster::new(name, "127.0.0.1", closed.port()).http2())
        }
        other => Err(EnvoyError::Config(format!(
            "callouts.{name}: the Envoy runner can only reproduce gRPC status 14 \
             (UNAVAILABLE), not {:?}; run this file in the harness only",
            other.as_ref().map(|g| g.status)
        ))),
    }
}

/// The chain with the fixture's configuration on its last filter.
fn with_fixture_config(
    chain: &[WasmFilter],
    file: &FixtureFile,
) -> Result<Vec<WasmFilter>, EnvoyError> {
    let mut filters = chain.to_vec();
    let under_test = filters.last_mut().ok_or_else(|| {
        EnvoyError::Config("the filter chain is empty; give at least the module under test".into())
    })?;
    under_test.config = String::from_utf8(file.config_bytes()).expect("serde_json writes UTF-8");
    Ok(filters)
}

fn config_error_case(expected: &str, started: Result<(Servers, Envoy), EnvoyError>) -> CaseReport {
    let mismatch = |actual: String| Mismatch {
        field: "config_error".into(),
        expected: format!("Envoy refuses the configuration, logging {expected:?}"),
        actual,
    };
    let mut case = CaseReport {
        name: CONFIG_ERROR_CASE.to_string(),
        outcome: None,
        mismatches: Vec::new(),
        error: None,
    };
    match started {
        Ok(_) => case
            .mismatches
            .push(mismatch("Envoy accepted it and started".into())),
        Err(EnvoyError::Exited { log, .. }) => {
            if !log.contains(expected) {
                case.mismatches.push(mismatch(format!(
                    "Envoy refused it but its log lacks the text; the log ends with:\n{}",
                    super::tail(&log, 10)
                )));
            }
        }
        Err(other) => case.error = Some(other.to_string()),
    }
    case
}

fn failed(name: &str, error: String) -> CaseReport {
    CaseReport {
        name: name.to_string(),
        outcome: None,
        mismatches: Vec::new(),
        error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::{envoy_binary, test_module};

    fn chain() -> Vec<WasmFilter> {
        if let Err(e) = envoy_binary() {
            panic!("{e}");
        }
        vec![WasmFilter::new("palisade.test", test_module::path())]
    }

    fn file(yaml: &str) -> FixtureFile {
        FixtureFile::parse(yaml).unwrap()
    }

    #[test]
    fn runs_every_case_and_checks_it() {
        let report = run_file(
            &chain(),
            &file(
                r#"
name: forwarding
config: {}
cases:
  - name: forwarded with the filter's header
    request:
      method: POST
      path: /items
      authority: api.local
      headers: [[x-client, a]]
      body: "{}"
      source: 127.0.0.5
    expect:
      status: 200
      forwarded: true
      upstream_headers: { x-test-filter: seen, x-client: a, host: api.local, x-absent: null }
      headers: { x-palisade-echo: "1" }
      body_json: { method: POST, body: "{}" }
  - name: a wrong expectation is reported
    request: { path: /other }
    expect:
      status: 201
      forwarded: false
"#,
            ),
        );
        assert_eq!(report.runner, "envoy");
        assert_eq!(report.cases.len(), 2);
        assert!(report.cases[0].passed(), "{report}");
        let fields: Vec<_> = report.cases[1]
            .mismatches
            .iter()
            .map(|m| m.field.as_str())
            .collect();
        assert_eq!(fields, ["status", "forwarded"], "{report}");
    }

    #[test]
    fn cases_run_on_a_caller_started_envoy_leave_metrics_to_inspect() {
        use crate::envoy::{Bootstrap, EnvoyOptions};
        let upstream = EchoUpstream::start().unwrap();
        let bootstrap = Bootstrap::new(chain(), upstream.addr());
        let envoy = Envoy::start_bootstrap(&bootstrap, &EnvoyOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let fixture = file("name: m\ncases:\n  - { name: a, request: {}, expect: { status: 200 } }\n  - { name: b, request: {}, expect: { status: 200 } }\n");
        let report = run_cases(&envoy, &fixture);
        assert_eq!((report.passed(), report.failed()), (2, 0), "{report}");
        assert_eq!(envoy.metric("palisade_test_requests").unwrap(), Some(2.0));
    }

    #[test]
    fn local_responses_are_not_forwarded() {
        let report = run_file(
            &chain(),
            &file(
                r#"
name: denying
config: [deny]
cases:
  - name: denied locally
    request: { path: /x }
    expect:
      status: 403
      forwarded: false
      headers: { x-palisade-echo: null }
      body_contains: denied by test module
"#,
            ),
        );
        assert_eq!((report.passed(), report.failed()), (1, 0), "{report}");
    }

    #[test]
    fn a_config_error_file_needs_the_refusal_and_its_text() {
        let refused = file("name: refused\nconfig: no\nconfig_error: refuses its configuration\n");
        let report = run_file(&chain(), &refused);
        assert_eq!(report.cases.len(), 1);
        assert_eq!(report.cases[0].name, CONFIG_ERROR_CASE);
        assert!(report.cases[0].passed(), "{report}");

        let wrong_text = file("name: wrong text\nconfig: no\nconfig_error: some other text\n");
        let report = run_file(&chain(), &wrong_text);
        assert_eq!(report.failed(), 1, "{report}");
        assert!(report.cases[0].mismatches[0]
            .actual
            .contains("lacks the text"));

        let accepted = file("name: accepted\nconfig: {}\nconfig_error: anything\n");
        let report = run_file(&chain(), &accepted);
        assert_eq!(report.failed(), 1, "{report}");
        assert!(report.cases[0].mismatches[0].actual.contains("accepted"));
    }

    #[test]
    fn the_fixture_config_goes_to_the_last_filter_of_the_chain() {
        let filters = [
            WasmFilter::new("a", "/a.wasm").config("[1]"),
            WasmFilter::new("b", "/b.wasm").config("ignored"),
        ];
        let fixture = file("name: c\nconfig: { k: v }\nconfig_error: x\n");
        let out = with_fixture_config(&filters, &fixture).unwrap();
        assert_eq!(out[0].config, "[1]");
        assert_eq!(out[1].config, r#"{"k":"v"}"#);
    }

    #[test]
    fn a_chain_of_two_filters_runs_in_order() {
        // The first filter keeps its own (denying) configuration, so the
        // request never reaches the second one or the upstream.
        let mut filters = chain();
        filters.insert(
            0,
            WasmFilter::new("palisade.first", test_module::path())
                .vm_id("first")
                .config("[1]"),
        );
        let report = run_file(
            &filters,
            &file("name: chain\nconfig: {}\ncases:\n  - name: a\n    request: {}\n    expect: { status: 403, forwarded: false }\n"),
        );
        assert_eq!(report.failed(), 0, "{report}");
        let status = report.cases[0].outcome.as_ref().map(|o| o.status);
        assert_eq!(status, Some(403));
    }

    #[test]
    fn an_empty_chain_is_a_case_error() {
        let report = run_file(
            &[],
            &file("name: e\ncases:\n  - name: a\n    request: {}\n    expect: {}\n"),
        );
        let error = report.cases[0].error.as_deref().unwrap_or_default();
        assert!(error.contains("chain is empty"), "{report}");
    }
}
