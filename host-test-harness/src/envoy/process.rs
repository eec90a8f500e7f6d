//! Starting Envoy, waiting until it serves, querying its admin interface,
//! and stopping it by PID.
//!
//! Envoy runs as
//! `envoy -c <dir>/envoy.yaml --concurrency 1 --disable-hot-restart
//!  --admin-address-path <dir>/admin-address --log-level info`
//! with stdout and stderr written to `<dir>/envoy.log`, in a fresh temporary
//! directory per process; the admin and listener ports are chosen by the
//! kernel and learned from the admin address file and `/listeners`.
//! `--disable-hot-restart` keeps Envoy off the shared-memory region that
//! would otherwise make parallel instances collide.

use super::bootstrap::Bootstrap;
use super::example::Substitutions;
use super::http;
use super::{binary, EnvoyError};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How an Envoy process is started.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyOptions {
    /// The binary; `None` = [`binary::envoy_binary`].
    pub binary: Option<PathBuf>,
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
    /// `--log-level`.
    pub log_level: String,
    /// How long to wait for Envoy to become ready.
    pub ready_timeout: Duration,
    /// Further command-line arguments.
    pub extra_args: Vec<String>,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            binary: None,
            concurrency: 1,
            log_level: "info".to_string(),
            ready_timeout: Duration::from_secs(30),
            extra_args: Vec::new(),
        }
    }
}

impl EnvoyOptions {
    fn binary(&self) -> Result<PathBuf, EnvoyError> {
        match &self.binary {
            Some(b) => Ok(b.clone()),
            None => binary::envoy_binary(),
        }
    }
}

/// A running Envoy. Dropping it kills the process (by PID) and waits for it.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    admin: SocketAddr,
    listeners: Vec<(String, SocketAddr)>,
}

impl Envoy {
    /// Starts Envoy with a configuration given as YAML text and waits until
    /// it is ready (admin `/ready` says LIVE and listeners are bound).
    ///
    /// If Envoy exits first (e.g. it refused a Wasm filter), the error is
    /// [`EnvoyError::Exited`] with Envoy's log.
    pub fn start(config_yaml: &str, options: &EnvoyOptions) -> Result<Envoy, EnvoyError> {
        let binary = options.binary()?;
        let dir = scratch_dir()?;
        let config = dir.join("envoy.yaml");
        let admin_file = dir.join("admin-address");
        let log_path = dir.join("envoy.log");
        let started = (|| {
            write(&config, config_yaml)?;
            let log = std::fs::File::create(&log_path)
                .map_err(|e| EnvoyError::io(format!("creating {}", log_path.display()), e))?;
            let log2 = log
                .try_clone()
                .map_err(|e| EnvoyError::io("duplicating the log file handle", e))?;
            let mut cmd = Command::new(&binary);
            cmd.arg("-c")
                .arg(&config)
                .arg("--concurrency")
                .arg(options.concurrency.to_string())
                .arg("--disable-hot-restart")
                .arg("--admin-address-path")
                .arg(&admin_file)
                .arg("--log-level")
                .arg(&options.log_level)
                .args(&options.extra_args)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            if let Some(root) = binary::workspace_root() {
                cmd.current_dir(root);
            }
            cmd.spawn()
                .map_err(|e| EnvoyError::io(format!("starting {}", binary.display()), e))
        })();
        let child = match started {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut envoy = Envoy {
            child,
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listeners: Vec::new(),
        };
        envoy.wait_ready(&admin_file, options.ready_timeout)?;
        Ok(envoy)
    }

    /// Starts Envoy with a generated bootstrap.
    pub fn start_bootstrap(
        bootstrap: &Bootstrap,
        options: &EnvoyOptions,
    ) -> Result<Envoy, EnvoyError> {
        Envoy::start(&bootstrap.to_yaml(), options)
    }

    /// Starts Envoy from an example file (e.g. `envoy-examples/rbac.yaml`)
    /// rewritten by `substitutions` (see [`super::example`]).
    pub fn start_example(
        path: &Path,
        substitutions: &Substitutions,
        options: &EnvoyOptions,
    ) -> Result<Envoy, EnvoyError> {
        Envoy::start(&substitutions.apply_file(path)?, options)
    }

    fn wait_ready(&mut self, admin_file: &Path, timeout: Duration) -> Result<(), EnvoyError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| EnvoyError::io("waiting for Envoy", e))?
            {
                return Err(EnvoyError::Exited {
                    status: status.to_string(),
                    log: self.log(),
                });
            }
            if self.admin.port() == 0 {
                if let Some(addr) = std::fs::read_to_string(admin_file)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                {
                    self.admin = addr;
                }
            }
            if self.admin.port() != 0 && self.try_ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EnvoyError::NotReady {
                    waited: timeout,
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// True once `/ready` is LIVE and every listener has its port.
    fn try_ready(&mut self) -> bool {
        match self.admin_get("/ready") {
            Ok(body) if body.trim() == "LIVE" => {}
            _ => return false,
        }
        match self.admin_get("/listeners?format=json") {
            Ok(body) => match parse_listeners(&body) {
                Some(listeners) if listeners.iter().all(|(_, a)| a.port() != 0) => {
                    self.listeners = listeners;
                    true
                }
                _ => false,
            },
            Err(_) => false,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin interface address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The first listener's address (the only one in generated configs).
    pub fn listener_addr(&self) -> SocketAddr {
        self.listeners
            .first()
            .map(|(_, a)| *a)
            .expect("a ready Envoy has at least one listener")
    }

    /// The bound address of the listener called `name`.
    pub fn listener(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    /// All listeners, by name, with their bound addresses.
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// Where Envoy's output goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("envoy.log")
    }

    /// Everything Envoy has logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// GETs an admin path (e.g. `/stats?filter=wasm`) and returns the body
    /// of a 200 answer.
    pub fn admin_get(&self, path: &str) -> Result<String, EnvoyError> {
        let fail = |detail: String| EnvoyError::Admin {
            path: path.to_string(),
            detail,
        };
        let mut stream = TcpStream::connect_timeout(&self.admin, Duration::from_secs(5))
            .map_err(|e| fail(e.to_string()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| fail(e.to_string()))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.admin
        )
        .map_err(|e| fail(e.to_string()))?;
        let mut reader = BufReader::new(stream);
        let head = http::read_head(&mut reader)
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| fail("connection closed without an answer".into()))?;
        let framing = head.framing().map_err(|e| fail(e.to_string()))?;
        let body = http::read_body(&mut reader, framing).map_err(|e| fail(e.to_string()))?;
        let body = String::from_utf8_lossy(&body).into_owned();
        if head.start.split_whitespace().nth(1) != Some("200") {
            return Err(fail(format!("{}: {}", head.start, body.trim())));
        }
        Ok(body)
    }

    /// The admin `/stats/prometheus` text. A plugin's metric defined with
    /// `proxy_define_metric` as `palisade_rbac_denied` appears there as
    /// `palisade_rbac_denied{} 1` (in `/stats` as
    /// `wasmcustom.palisade_rbac_denied: 1`).
    pub fn stats_prometheus(&self) -> Result<String, EnvoyError> {
        self.admin_get("/stats/prometheus")
    }

    /// The value of one metric in `/stats/prometheus` (the first sample whose
    /// name is `name`, any labels), or `None` if absent.
    pub fn metric(&self, name: &str) -> Result<Option<f64>, EnvoyError> {
        Ok(prometheus_value(&self.stats_prometheus()?, name))
    }

    /// Kills Envoy and waits for it; the same as dropping the handle.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // Child::kill signals this child's PID only; never a name.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Parses the admin `/listeners?format=json` answer.
fn parse_listeners(body: &str) -> Option<Vec<(String, SocketAddr)>> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["listener_statuses"]
        .as_array()?
        .iter()
        .map(|l| {
            let sa = &l["local_address"]["socket_address"];
            let ip: std::net::IpAddr = sa["address"].as_str()?.parse().ok()?;
            let port = u16::try_from(sa["port_value"].as_u64().unwrap_or(0)).ok()?;
            Some((l["name"].as_str()?.to_string(), SocketAddr::new(ip, port)))
        })
        .collect()
}

/// The first sample of metric `name` in Prometheus text.
pub fn prometheus_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (metric, value) = l.rsplit_once(' ')?;
        let metric_name = metric.split('{').next()?;
        (metric_name == name).then(|| value.parse().ok())?
    })
}

/// Runs `envoy --mode validate` on a configuration given as YAML text.
/// Returns Envoy's output when the configuration is valid.
pub fn validate(config_yaml: &str, options: &EnvoyOptions) -> Result<String, EnvoyError> {
    let dir = scratch_dir()?;
    let path = dir.join("envoy.yaml");
    let result = write(&path, config_yaml).and_then(|()| validate_file(&path, options));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs `envoy --mode validate -c <path>` from the workspace root (so the
/// relative module paths of `envoy-examples/*.yaml` resolve). Returns
/// Envoy's output when the configuration is valid.
pub fn validate_file(path: &Path, options: &EnvoyOptions) -> Result<String, EnvoyError> {
    let binary = options.binary()?;
    let mut cmd = Command::new(&binary);
    cmd.arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(path)
        .arg("--disable-hot-restart")
        .arg("--log-level")
        .arg(&options.log_level)
        .stdin(Stdio::null());
    if let Some(root) = binary::workspace_root() {
        cmd.current_dir(root);
    }
    let out = cmd
        .output()
        .map_err(|e| EnvoyError::io(format!("running {} --mode validate", binary.display()), e))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(EnvoyError::Invalid { output: text })
    }
}

fn write(path: &Path, text: &str) -> Result<(), EnvoyError> {
    std::fs::write(path, text).map_err(|e| EnvoyError::io(format!("writing {}", path.display()), e))
}

/// A fresh directory under the system temp dir, unique per process and call.
fn scratch_dir() -> Result<PathBuf, EnvoyError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "palisade-envoy-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| EnvoyError::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listener_addresses() {
        let body = r#"{"listener_statuses":[{"name":"ingress","local_address":
            {"socket_address":{"address":"127.0.0.1","port_value":45577}}}]}"#;
        assert_eq!(
            parse_listeners(body).unwrap(),
            [("ingress".to_string(), "127.0.0.1:45577".parse().unwrap())]
        );
        assert!(parse_listeners("not json").is_none());
    }

    #[test]
    fn reads_prometheus_samples() {
        let text = "# TYPE palisade_rbac_denied counter\npalisade_rbac_denied{} 3\n\
                    palisade_rbac_denied_total{} 9\nenvoy_x{a=\"b c\"} 1.5\n";
        assert_eq!(prometheus_value(text, "palisade_rbac_denied"), Some(3.0));
        assert_eq!(prometheus_value(text, "envoy_x"), Some(1.5));
        assert_eq!(prometheus_value(text, "absent"), None);
    }

    use crate::envoy::bootstrap::WasmFilter;
    use crate::envoy::test_module;
    use crate::envoy::upstream::EchoUpstream;
    use crate::envoy::{client, envoy_binary};
    use crate::fixture::Request;

    /// Fails the test with the install hint when Envoy is missing.
    fn require_envoy() {
        if let Err(e) = envoy_binary() {
            panic!("{e}");
        }
    }

    fn bootstrap(config: &str, upstream: &EchoUpstream) -> Bootstrap {
        Bootstrap::new(
            vec![WasmFilter::new("palisade.test", test_module::path()).config(config)],
            upstream.addr(),
        )
    }

    fn alive(pid: u32) -> bool {
        // A reaped process has no /proc entry (a zombie would still have one).
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn forwards_through_a_wasm_filter_and_stops_on_drop() {
        require_envoy();
        let upstream = EchoUpstream::start().unwrap();
        let envoy = Envoy::start_bootstrap(&bootstrap("{}", &upstream), &EnvoyOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let pid = envoy.pid();
        let dir = envoy.dir.clone();
        assert!(alive(pid));
        assert_eq!(envoy.listener(LISTENER), Some(envoy.listener_addr()));

        let request = Request {
            path: "/hello?x=1".into(),
            source: Some("127.0.0.9".parse().unwrap()),
            ..Request::default()
        };
        let outcome = client::send(envoy.listener_addr(), &request).unwrap();
        assert_eq!(outcome.status, 200);
        assert_eq!(outcome.header("server"), Some("envoy"));
        let echoed = outcome.upstream.expect("reached the echo upstream");
        assert_eq!(echoed.path, "/hello?x=1");
        let seen = echoed.headers.iter().find(|(k, _)| k == "x-test-filter");
        assert_eq!(seen.map(|(_, v)| v.as_str()), Some("seen"));

        assert!(
            envoy.log().contains("test module configured"),
            "{}",
            envoy.log()
        );
        envoy.stop();
        assert!(!alive(pid), "Envoy {pid} still runs after stop");
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }

    const LISTENER: &str = crate::envoy::bootstrap::LISTENER_NAME;

    #[test]
    fn custom_metrics_appear_in_prometheus_without_prefix() {
        require_envoy();
        let upstream = EchoUpstream::start().unwrap();
        let envoy = Envoy::start_bootstrap(&bootstrap("{}", &upstream), &EnvoyOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..2 {
            client::send(envoy.listener_addr(), &Request::default()).unwrap();
        }
        assert_eq!(envoy.metric("palisade_test_requests").unwrap(), Some(2.0));
        let stats = envoy.admin_get("/stats?filter=palisade_test").unwrap();
        assert!(
            stats.contains("wasmcustom.palisade_test_requests: 2"),
            "{stats}"
        );
        let err = envoy.admin_get("/no-such-admin-path").unwrap_err();
        assert!(matches!(err, EnvoyError::Admin { .. }), "{err}");
    }

    #[test]
    fn a_refused_configuration_is_in_the_log() {
        require_envoy();
        let upstream = EchoUpstream::start().unwrap();
        let err = Envoy::start_bootstrap(
            &bootstrap("\"refuse\"", &upstream),
            &EnvoyOptions::default(),
        )
        .unwrap_err();
        let log = match &err {
            EnvoyError::Exited { log, .. } => log,
            other => panic!("expected Envoy to exit, got {other}"),
        };
        assert!(
            log.contains("test module refuses its configuration"),
            "{log}"
        );
        assert!(err.to_string().contains("exited during start-up"), "{err}");
    }

    #[test]
    fn parallel_instances_do_not_collide() {
        require_envoy();
        let runs: Vec<_> = (0..3)
            .map(|i| {
                std::thread::spawn(move || {
                    let upstream = EchoUpstream::start().unwrap();
                    let envoy = Envoy::start_bootstrap(
                        &bootstrap("{}", &upstream),
                        &EnvoyOptions::default(),
                    )
                    .unwrap_or_else(|e| panic!("{e}"));
                    let request = Request {
                        path: format!("/run/{i}"),
                        ..Request::default()
                    };
                    let outcome = client::send(envoy.listener_addr(), &request).unwrap();
                    assert_eq!(outcome.upstream.unwrap().path, format!("/run/{i}"));
                    (envoy.listener_addr(), envoy.admin_addr(), envoy.pid())
                })
            })
            .collect();
        let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
        let mut ports: Vec<u16> = results
            .iter()
            .flat_map(|(l, a, _)| [l.port(), a.port()])
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6, "ports collided: {results:?}");
        for (_, _, pid) in results {
            assert!(!alive(pid), "Envoy {pid} still runs");
        }
    }

    #[test]
    fn validate_accepts_the_generated_config_and_names_errors() {
        require_envoy();
        let upstream = EchoUpstream::start().unwrap();
        let good = bootstrap("{}", &upstream).to_yaml();
        validate(&good, &EnvoyOptions::default()).unwrap_or_else(|e| panic!("{e}"));

        let bad = good.replace("STATIC", "NOT_A_CLUSTER_TYPE");
        let err = validate(&bad, &EnvoyOptions::default()).unwrap_err();
        assert!(err.log().unwrap().contains("NOT_A_CLUSTER_TYPE"), "{err}");
    }

    #[test]
    fn a_missing_binary_is_reported_before_starting() {
        let options = EnvoyOptions {
            binary: Some(PathBuf::from("/nonexistent/envoy")),
            ..EnvoyOptions::default()
        };
        let err = Envoy::start("{}", &options).unwrap_err();
        assert!(matches!(err, EnvoyError::Io { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/envoy"), "{err}");
    }

    #[test]
    fn scratch_dirs_are_unique() {
        let a = scratch_dir().unwrap();
        let b = scratch_dir().unwrap();
        assert_ne!(a, b);
        std::fs::remove_dir_all(a).unwrap();
        std::fs::remove_dir_all(b).unwrap();
    }
}
