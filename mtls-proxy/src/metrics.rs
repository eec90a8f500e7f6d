//! Counters and gauges, rendered in the Prometheus text format, and the admin
//! endpoint serving `/metrics` and `/healthz`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// All metrics of one proxy process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted.
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_active: AtomicI64,
    /// Connections closed at accept because `max_connections` was reached.
    pub connections_rejected: AtomicU64,
    /// Successful TLS handshakes.
    pub handshakes_ok: AtomicU64,
    handshake_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// HTTP requests forwarded (server mode).
    pub requests_total: AtomicU64,
    /// Requests answered 502 because the upstream failed.
    pub upstream_errors: AtomicU64,
    /// Successful certificate reloads.
    pub reloads_ok: AtomicU64,
    /// Reloads refused (the old certificate stays in use).
    pub reloads_failed: AtomicU64,
    /// Own certificate `notAfter`, seconds since the epoch.
    pub cert_not_after: AtomicI64,
    /// Earliest CA bundle `notAfter`, seconds since the epoch.
    pub ca_not_after: AtomicI64,
    /// Set once shutdown starts; `/healthz` then answers 503.
    pub shutting_down: AtomicBool,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Metrics {
    /// Counts a failed handshake under a stable reason.
    pub fn handshake_failed(&self, reason: &'static str) {
        *self
            .handshake_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Failed handshakes for `reason` so far.
    pub fn handshake_failures(&self, reason: &str) -> u64 {
        self.handshake_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
            o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, v) in lines {
                o.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        let c = |a: &AtomicU64| vec![(String::new(), a.load(Ordering::Relaxed).to_string())];
        metric(
            "mtls_proxy_connections_total",
            "counter",
            "Connections accepted.",
            c(&self.connections_total),
        );
        metric(
            "mtls_proxy_connections_active",
            "gauge",
            "Connections open now.",
            vec![(
                String::new(),
                self.connections_active.load(Ordering::Relaxed).to_string(),
            )],
        );
        metric(
            "mtls_proxy_connections_rejected_total",
            "counter",
            "Connections closed at accept, by reason.",
            vec![(
                "{reason=\"max_connections\"}".into(),
                self.connections_rejected
                    .load(Ordering::Relaxed)
                    .to_string(),
            )],
        );
        metric(
            "mtls_proxy_handshakes_total",
            "counter",
            "Successful TLS handshakes.",
            c(&self.handshakes_ok),
        );
        let failures: Vec<(String, String)> = self
            .handshake_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), n.to_string()))
            .collect();
        metric(
            "mtls_proxy_handshake_failures_total",
            "counter",
            "Failed TLS handshakes, by reason.",
            failures,
        );
        metric(
            "mtls_proxy_requests_total",
            "counter",
            "HTTP requests forwarded upstream.",
            c(&self.requests_total),
        );
        metric(
            "mtls_proxy_upstream_errors_total",
            "counter",
            "Requests answered 502 because the upstream failed.",
            c(&self.upstream_errors),
        );
        metric(
            "mtls_proxy_cert_reloads_total",
            "counter",
            "Certificate reloads, by result.",
            vec![
                (
                    "{result=\"success\"}".into(),
                    self.reloads_ok.load(Ordering::Relaxed).to_string(),
                ),
                (
                    "{result=\"failure\"}".into(),
                    self.reloads_failed.load(Ordering::Relaxed).to_string(),
                ),
            ],
        );
        let now = now_unix();
        metric(
            "mtls_proxy_cert_expiry_seconds",
            "gauge",
            "Seconds until the certificate expires (negative: expired).",
            vec![
                (
                    "{cert=\"own\"}".into(),
                    (self.cert_not_after.load(Ordering::Relaxed) - now).to_string(),
                ),
                (
                    "{cert=\"ca\"}".into(),
                    (self.ca_not_after.load(Ordering::Relaxed) - now).to_string(),
                ),
            ],
        );
        o
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` turns true.
pub async fn serve_admin(
    listener: TcpListener,
    metrics: std::sync::Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            _ = crate::stopped(&mut shutdown) => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, body, ctype) = match req.uri().path() {
                        "/metrics" => (
                            StatusCode::OK,
                            metrics.render(),
                            "text/plain; version=0.0.4",
                        ),
                        "/healthz" if metrics.shutting_down.load(Ordering::Relaxed) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "shutting down\n".into(),
                            "text/plain",
                        ),
                        "/healthz" => (StatusCode::OK, "ok\n".into(), "text/plain"),
                        _ => (
                            StatusCode::NOT_FOUND,
                            "not found: try /metrics or /healthz\n".into(),
                            "text/plain",
                        ),
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = status;
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(ctype),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_reasons() {
        let m = Metrics::default();
        m.connections_total.fetch_add(3, Ordering::Relaxed);
        m.handshake_failed("unknown_ca");
        m.handshake_failed("unknown_ca");
        m.handshake_failed("expired");
        m.cert_not_after.store(now_unix() + 100, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("mtls_proxy_connections_total 3\n"), "{text}");
        assert!(text.contains("mtls_proxy_handshake_failures_total{reason=\"unknown_ca\"} 2\n"));
        assert!(text.contains("mtls_proxy_handshake_failures_total{reason=\"expired\"} 1\n"));
        assert!(text.contains("# TYPE mtls_proxy_cert_expiry_seconds gauge"));
        let line = text
            .lines()
            .find(|l| l.starts_with("mtls_proxy_cert_expiry_seconds{cert=\"own\"}"))
            .unwrap();
        let v: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((95..=100).contains(&v), "{v}");
        assert_eq!(m.handshake_failures("unknown_ca"), 2);
    }
}
