//! Certificate reload: polls the files' contents (so a Kubernetes `..data`
//! symlink swap, an atomic rename or an in-place write are all seen) and
//! reloads on SIGHUP. A reload swaps the config used for *new* handshakes;
//! open connections keep the one they were made with, so nothing is dropped.
//! A reload that fails (unreadable file, key not matching the certificate)
//! is logged and counted, and the previous certificate stays in use.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::identity::PeerIdentity;
use crate::metrics::Metrics;
use crate::tls::{fingerprint, CertPaths, Material, TlsError};

/// Builds the rustls config of type `T` from loaded material.
pub type BuildFn<T> = dyn Fn(&Material) -> Result<Arc<T>, TlsError> + Send + Sync;

/// The config in use and what it was built from.
#[derive(Debug)]
pub struct Current<T> {
    /// The rustls config for new handshakes.
    pub config: Arc<T>,
    /// The own leaf certificate's identity.
    pub leaf: PeerIdentity,
    /// Fingerprint of the files it was built from.
    pub fingerprint: String,
}

/// Holds the current config and replaces it when the files change.
pub struct Reloader<T> {
    paths: CertPaths,
    build: Box<BuildFn<T>>,
    current: RwLock<Arc<Current<T>>>,
    metrics: Arc<Metrics>,
    failed: Mutex<Option<String>>,
    /// Held by writers of the files (auto-rotation) so a poll never sees a
    /// new certificate next to the old key.
    pub write_lock: Mutex<()>,
}

impl<T> Reloader<T> {
    /// Loads the files once; fails if the first load fails.
    pub fn new(
        paths: CertPaths,
        build: Box<BuildFn<T>>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, TlsError> {
        let (current, ca_not_after) = Self::load(&paths, &*build)?;
        metrics
            .cert_not_after
            .store(current.leaf.not_after_unix, Ordering::Relaxed);
        metrics.ca_not_after.store(ca_not_after, Ordering::Relaxed);
        Ok(Arc::new(Reloader {
            paths,
            build,
            current: RwLock::new(Arc::new(current)),
            metrics,
            failed: Mutex::new(None),
            write_lock: Mutex::new(()),
        }))
    }

    fn load(paths: &CertPaths, build: &BuildFn<T>) -> Result<(Current<T>, i64), TlsError> {
        let m = Material::load(paths)?;
        let config = build(&m)?;
        Ok((
            Current {
                config,
                leaf: m.leaf.clone(),
                fingerprint: m.fingerprint.clone(),
            },
            m.ca_not_after_unix,
        ))
    }

    /// The config for a new handshake.
    pub fn current(&self) -> Arc<Current<T>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The watched file paths.
    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }

    /// Reloads if the files' contents differ from the config in use.
    /// Returns whether a new config was installed.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let fp = fingerprint(&self.paths)?;
        if fp == self.current().fingerprint {
            return Ok(false);
        }
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.as_deref() == Some(fp.as_str()) {
            // Same broken files as last time: already logged and counted.
            return Ok(false);
        }
        let result = self.install();
        *failed = result.is_err().then_some(fp);
        result
    }

    /// Reloads unconditionally (SIGHUP).
    pub fn reload_now(&self) -> Result<bool, TlsError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.install()
    }

    fn install(&self) -> Result<bool, TlsError> {
        match Self::load(&self.paths, &*self.build) {
            Ok((new, ca_not_after)) => {
                tracing::info!(
                    subject = %new.leaf.subject,
                    uri = ?new.leaf.uris.first(),
                    not_after = new.leaf.not_after_unix,
                    "certificate reloaded; new handshakes use it, open connections are kept"
                );
                self.metrics
                    .cert_not_after
                    .store(new.leaf.not_after_unix, Ordering::Relaxed);
                self.metrics
                    .ca_not_after
                    .store(ca_not_after, Ordering::Relaxed);
                self.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
                Ok(true)
            }
            Err(e) => {
                self.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

impl<T: Send + Sync + 'static> Reloader<T> {
    /// Polls every `interval` and reloads on SIGHUP until `shutdown` is true.
    pub async fn run(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        #[cfg(unix)]
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; file polling still reloads");
                None
            }
        };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error: Option<String> = None;
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                _ = async {
                    #[cfg(unix)]
                    if let Some(h) = hup.as_mut() { h.recv().await; return; }
                    std::future::pending::<()>().await
                } => true,
                _ = crate::stopped(&mut shutdown) => return,
            };
            let this = self.clone();
            let result = tokio::task::spawn_blocking(move || {
                if forced {
                    this.reload_now()
                } else {
                    this.reload_if_changed()
                }
            })
            .await
            .unwrap_or(Ok(false));
            match result {
                Ok(_) => last_error = None,
                Err(e) => {
                    let msg = e.to_string();
                    if forced || last_error.as_deref() != Some(&msg) {
                        tracing::error!(error = %msg, "certificate reload refused; still serving the previous certificate");
                    }
                    last_error = Some(msg);
                }
            }
        }
    }
}
