//! Runs fixture files against a module in the harness (runner `harness`).

use crate::fixture::{check, Callout, CaseReport, FileReport, FixtureFile, Mismatch};
use crate::grpc_stream::GrpcStreamScript;
use crate::{CallResponse, GrpcResponse, Host, HostBuilder, HostError, Module};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The runner name in reports.
pub const RUNNER_NAME: &str = "harness";

/// Adds the file's callout clusters to `builder` and answers their calls
/// (a file without callouts leaves the builder as it is).
pub fn with_callouts(builder: HostBuilder, file: &FixtureFile) -> HostBuilder {
    if file.callouts.is_empty() {
        return builder;
    }
    let mut builder = builder;
    for name in file.callouts.keys() {
        builder = builder.cluster(name);
    }
    let callouts: Arc<BTreeMap<String, Callout>> = Arc::new(file.callouts.clone());
    let http = Arc::clone(&callouts);
    let scripts: BTreeMap<String, GrpcStreamScript> = file
        .callouts
        .iter()
        .filter_map(|(name, c)| {
            Some((name.clone(), GrpcStreamScript::new(c.grpc_stream.as_ref()?)))
        })
        .collect();
    builder
        .grpc_stream_responder(move |stream| {
            scripts
                .get(&stream.cluster)
                .map(|script| script.events_for(stream))
                .unwrap_or_default()
        })
        .http_responder(
            move |call| match http.get(&call.cluster).and_then(|c| c.http.as_ref()) {
                Some(a) => {
                    let mut r = CallResponse::new(a.status, a.body.clone());
                    for (k, v) in &a.headers {
                        r = r.header(k, v);
                    }
                    Some(r)
                }
                _ => None,
            },
        )
        .grpc_responder(move |call| {
            let g = callouts.get(&call.cluster)?.grpc.as_ref()?;
            Some(if g.status == 0 {
                GrpcResponse::ok(g.body().unwrap_or_default())
            } else {
                GrpcResponse::failure(g.status, &g.message)
            })
        })
}

/// Runs one fixture file: for a `config_error` file, checks that the
/// configuration is refused and the logs contain the text; otherwise runs
/// the cases in order on one plugin instance and checks each outcome.
pub fn run_file(module: &Module, file: &FixtureFile) -> FileReport {
    run_file_with(file, |config| Host::builder(module).plugin_config(config))
}

/// [`run_file`] with a host set up by `builder`, which gets the file's
/// configuration bytes: use it for chains, clusters, http responders or
/// properties the module needs.
pub fn run_file_with(file: &FixtureFile, builder: impl Fn(Vec<u8>) -> HostBuilder) -> FileReport {
    let mut builder = builder(file.config_bytes());
    if let Some(settings) = file.connection_manager {
        builder = builder.connection_manager(settings.into());
    }
    let built = with_callouts(builder, file).build();
    let mut report = FileReport {
        name: file.name.clone(),
        runner: RUNNER_NAME.to_string(),
        cases: Vec::new(),
    };
    if let Some(want) = &file.config_error {
        let mut case = CaseReport {
            name: "configuration is refused".to_string(),
            outcome: None,
            mismatches: Vec::new(),
            error: None,
        };
        match built {
            Err(HostError::ConfigureFailed { logs, .. }) => {
                if !logs.contains(want.as_str()) {
                    case.mismatches.push(Mismatch {
                        field: "config_error".into(),
                        expected: format!("logs containing {want:?}"),
                        actual: logs,
                    });
                }
            }
            Err(e) => case.error = Some(e.to_string()),
            Ok(_) => case.mismatches.push(Mismatch {
                field: "config_error".into(),
                expected: format!("configuration refused with {want:?}"),
                actual: "configuration accepted".into(),
            }),
        }
        report.cases.push(case);
        return report;
    }
    let mut host = match built {
        Ok(h) => Some(h),
        Err(e) => {
            for c in &file.cases {
                report.cases.push(CaseReport {
                    name: c.name.clone(),
                    outcome: None,
                    mismatches: Vec::new(),
                    error: Some(e.to_string()),
                });
            }
            return report;
        }
    };
    for c in &file.cases {
        let result = match host.as_mut() {
            Some(h) => h.send(&c.request),
            None => continue,
        };
        report.cases.push(match result {
            Ok(outcome) => CaseReport {
                name: c.name.clone(),
                mismatches: check(&c.expect, &outcome),
                outcome: Some(outcome),
                error: None,
            },
            Err(e) => CaseReport {
                name: c.name.clone(),
                outcome: None,
                mismatches: Vec::new(),
                error: Some(e.to_string()),
            },
        });
    }
    report
}
