//! Wires a [`Config`] into running tasks: listener, reloader, admin endpoint,
//! auto-rotation and signal handling. Also the `status` report.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::ca::CaError;
use crate::config::{Config, ConfigError, Mode};
use crate::metrics::{serve_admin, Metrics};
use crate::reload::Reloader;
use crate::tls::{self, Material, TlsError};
use crate::{client, passthrough, rotation, server};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The config was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The certificate files were refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Auto-rotation could not issue the first certificate.
    #[error("auto-rotation: {0}")]
    Rotation(#[from] CaError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A started proxy.
pub struct Running {
    /// Where the proxy accepts connections.
    pub listen_addr: SocketAddr,
    /// Where `/metrics` and `/healthz` are served, if configured.
    pub admin_addr: Option<SocketAddr>,
    /// The process metrics.
    pub metrics: Arc<Metrics>,
    /// Triggers an immediate certificate reload, as SIGHUP does.
    pub reload: ReloadHook,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Starts graceful shutdown: stop accepting, let open connections finish.
    pub fn shutdown(&self) {
        self.metrics.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
    }

    /// Waits until every task has stopped (after [`Running::shutdown`]).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

/// Reloads the certificate files now, as `SIGHUP` does: `Ok(true)` when
/// something changed (passthrough mode holds no certificates: always
/// `Ok(false)`).
pub type ReloadHook = Arc<dyn Fn() -> Result<bool, TlsError> + Send + Sync>;

/// Runs a mode's listener; once it has drained, the admin endpoint stops.
fn spawn_listener(
    tasks: &mut JoinSet<()>,
    serve: impl Future<Output = ()> + Send + 'static,
    admin_tx: watch::Sender<bool>,
) {
    tasks.spawn(async move {
        serve.await;
        let _ = admin_tx.send(true);
    });
}

/// Keeps a TLS mode's certificates current — the reloader polls its files
/// every `interval`, and auto-rotation reissues them when configured — and
/// gives the hook that reloads them on demand.
fn spawn_cert_upkeep<T: Send + Sync + 'static>(
    tasks: &mut JoinSet<()>,
    reloader: Arc<Reloader<T>>,
    cfg: &Config,
    interval: Duration,
    shutdown: &watch::Receiver<bool>,
) -> ReloadHook {
    tasks.spawn(reloader.clone().run(interval, shutdown.clone()));
    if let Some(rot) = cfg.rotation.clone() {
        tasks.spawn(rotation::run(rot, reloader.clone(), shutdown.clone()));
    }
    Arc::new(move || reloader.reload_now())
}

/// Starts the proxy described by `cfg` (port 0 picks a free port).
pub async fn start(cfg: Config) -> Result<Running, AppError> {
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let paths = cfg.cert_paths();
    if let (Some(rot), Some(paths)) = (&cfg.rotation, &paths) {
        rotation::ensure(rot, paths)?;
    }
    let listener = bind(cfg.listen).await?;
    let listen_addr = listener.local_addr().map_err(|source| AppError::Bind {
        addr: cfg.listen,
        source,
    })?;
    // The admin endpoint outlives the listener: during the drain `/healthz`
    // answers 503 so a load balancer stops sending; it stops after the drain.
    let (admin_tx, admin_rx) = watch::channel(false);
    let admin_addr = match cfg.admin {
        Some(a) => {
            let l = bind(a).await?;
            let addr = l.local_addr().ok();
            tasks.spawn(serve_admin(l, metrics.clone(), admin_rx));
            addr
        }
        None => None,
    };
    let policy = cfg.policy;
    let interval = cfg
        .tls
        .as_ref()
        .map(|t| t.reload_interval.0)
        .unwrap_or_default();
    let l = &cfg.limits;
    let reload: ReloadHook = match cfg.mode() {
        Mode::Passthrough => {
            let p = cfg.passthrough.as_ref().expect("passthrough mode");
            let opts = passthrough::PassthroughOptions {
                routes: passthrough::Routes::new(&p.routes, p.default.clone()),
                max_connections: l.max_connections,
                handshake_timeout: l.handshake_timeout.0,
                shutdown_grace: l.shutdown_grace.0,
            };
            let serve = passthrough::serve(listener, opts, metrics.clone(), rx.clone());
            spawn_listener(&mut tasks, serve, admin_tx);
            Arc::new(|| Ok(false))
        }
        Mode::Server => {
            let paths = paths.expect("validated: server mode has [tls]");
            let allow = Arc::new(cfg.allow_list().expect("server mode"));
            let reloader = Reloader::new(
                paths,
                Box::new(move |m: &Material| tls::server_config(policy, m, allow.clone())),
                metrics.clone(),
            )?;
            let s = cfg.server.as_ref().expect("server mode");
            let opts = server::ServerOptions {
                upstream: s.upstream.clone(),
                max_connections: l.max_connections,
                handshake_timeout: l.handshake_timeout.0,
                header_timeout: l.header_timeout.0,
                shutdown_grace: l.shutdown_grace.0,
                upstream_timeout: l.upstream_timeout.0,
            };
            let serve = server::serve(
                listener,
                reloader.clone(),
                opts,
                metrics.clone(),
                rx.clone(),
            );
            spawn_listener(&mut tasks, serve, admin_tx);
            spawn_cert_upkeep(&mut tasks, reloader, &cfg, interval, &rx)
        }
        Mode::Client => {
            let paths = paths.expect("validated: client mode has [tls]");
            let expected = cfg.server_patterns();
            let reloader = Reloader::new(
                paths,
                Box::new(move |m: &Material| tls::client_config(policy, m, expected.clone())),
                metrics.clone(),
            )?;
            let c = cfg.client.as_ref().expect("client mode");
            let opts = client::ClientOptions {
                remote: c.remote.clone(),
                server_name: rustls::pki_types::ServerName::try_from(c.server_name.clone())
                    .expect("validated in Config::validate"),
                max_connections: l.max_connections,
                handshake_timeout: l.handshake_timeout.0,
                shutdown_grace: l.shutdown_grace.0,
            };
            let serve = client::serve(
                listener,
                reloader.clone(),
                opts,
                metrics.clone(),
                rx.clone(),
            );
            spawn_listener(&mut tasks, serve, admin_tx);
            spawn_cert_upkeep(&mut tasks, reloader, &cfg, interval, &rx)
        }
    };
    tracing::info!(%listen_addr, mode = ?cfg.mode(), %policy, "mtls-proxy started");
    Ok(Running {
        listen_addr,
        admin_addr,
        metrics,
        reload,
        shutdown: tx,
        tasks,
    })
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(cfg: Config) -> Result<(), AppError> {
    let running = start(cfg).await?;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|source| AppError::Bind {
            addr: running.listen_addr,
            source,
        })?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("signal received; shutting down gracefully");
    running.shutdown();
    running.wait().await;
    Ok(())
}

fn fmt_time(unix: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let when = time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string());
    let left = unix - now;
    if left < 0 {
        format!(
            "{when} (EXPIRED {} ago)",
            crate::duration::format_approx(std::time::Duration::from_secs(left.unsigned_abs()))
        )
    } else {
        format!(
            "{when} (in {})",
            crate::duration::format_approx(std::time::Duration::from_secs(left as u64))
        )
    }
}

/// The `status` report: mode, policy, FIPS availability, certificates and
/// expiry. Returns the text and whether everything is usable.
pub fn status(cfg: &Config) -> (String, bool) {
    let mut o = String::new();
    let mut ok = true;
    let mode = match cfg.mode() {
        Mode::Server => "server",
        Mode::Client => "client",
        Mode::Passthrough => "passthrough (SNI routing, no decryption)",
    };
    o.push_str(&format!("mode:        {mode}\n"));
    o.push_str(&format!("listen:      {}\n", cfg.listen));
    if let Some(s) = &cfg.server {
        o.push_str(&format!("upstream:    {}\n", s.upstream));
        o.push_str(&format!(
            "allow:       spiffe_ids={:?} dns_names={:?} common_names={:?} any_verified={}\n",
            s.allow.spiffe_ids, s.allow.dns_names, s.allow.common_names, s.allow.any_verified
        ));
    }
    if let Some(c) = &cfg.client {
        o.push_str(&format!(
            "remote:      {} (sni {}, expect spiffe_ids {:?})\n",
            c.remote, c.server_name, c.server_spiffe_ids
        ));
    }
    o.push_str(&format!("policy:      {}\n", cfg.policy));
    match tls::fips_status() {
        Ok(()) => o.push_str("fips:        available\n"),
        Err(why) => o.push_str(&format!("fips:        {why}\n")),
    }
    if let Err(e) = tls::provider(cfg.policy) {
        ok = false;
        o.push_str(&format!("ERROR:       {e}\n"));
    }
    if let Some(p) = &cfg.passthrough {
        for (name, backend) in &p.routes {
            o.push_str(&format!("route:       {name} -> {backend}\n"));
        }
        if let Some(d) = &p.default {
            o.push_str(&format!("route:       (default) -> {d}\n"));
        }
    }
    let Some(paths) = cfg.cert_paths() else {
        return (o, ok);
    };
    match Material::load(&paths) {
        Ok(m) => {
            o.push_str(&format!("certificate: {}\n", paths.cert.display()));
            o.push_str(&format!("  subject:   {}\n", m.leaf.subject));
            o.push_str(&format!("  uri:       {:?}\n", m.leaf.uris));
            o.push_str(&format!("  dns:       {:?}\n", m.leaf.dns_names));
            o.push_str(&format!("  sha256:    {}\n", m.leaf.sha256_hex));
            o.push_str(&format!(
                "  expires:   {}\n",
                fmt_time(m.leaf.not_after_unix)
            ));
            o.push_str(&format!(
                "ca bundle:   {} ({} certificates)\n",
                paths.ca.display(),
                m.roots.len()
            ));
            o.push_str(&format!("  expires:   {}\n", fmt_time(m.ca_not_after_unix)));
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            if m.leaf.not_after_unix <= now {
                ok = false;
            }
        }
        Err(e) => {
            ok = false;
            o.push_str(&format!("certificate: ERROR {e}\n"));
        }
    }
    if let Some(r) = &cfg.rotation {
        o.push_str(&format!(
            "rotation:    from {} as {} every {} (renew at {:.0}% of life)\n",
            r.ca_dir.display(),
            r.spiffe_id,
            r.ttl,
            r.renew_at * 100.0
        ));
    }
    (o, ok)
}
