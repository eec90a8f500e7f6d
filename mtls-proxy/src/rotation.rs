//! Auto-rotation: the proxy issues its own short-lived certificate from a
//! built-in CA directory and renews it when `renew_at` of its life has passed
//! (default: half-life of a 24 h certificate). The new files are written
//! atomically under the reloader's write lock and installed at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use tokio::sync::watch;

use crate::ca::{write_atomic, Ca, CaError, LeafRequest};
use crate::config::RotationSection;
use crate::identity::PeerIdentity;
use crate::spiffe::SpiffeId;
use crate::tls::CertPaths;

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// When the certificate at `paths.cert` is due for renewal (unix seconds);
/// `None` if it cannot be read (then it is due now).
pub fn renew_due(paths: &CertPaths, renew_at: f64) -> Option<i64> {
    let bytes = std::fs::read(&paths.cert).ok()?;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&bytes).ok()?;
    let id = PeerIdentity::from_der(&der).ok()?;
    let life = (id.not_after_unix - id.not_before_unix) as f64;
    Some(id.not_before_unix + (life * renew_at) as i64)
}

/// Issues a certificate and writes cert and key (and the CA bundle if absent).
pub fn issue_now(rot: &RotationSection, paths: &CertPaths) -> Result<(), CaError> {
    let ca = Ca::load(&rot.ca_dir)?;
    let id = SpiffeId::parse(&rot.spiffe_id)?;
    let mut req = LeafRequest::with_ttl(Some(id), rot.ttl.0)?;
    req.dns_names = rot.dns_names.clone();
    let issued = ca.issue(&req)?;
    write_atomic(&paths.key, issued.key_pem.as_bytes(), true)?;
    write_atomic(&paths.cert, issued.cert_pem.as_bytes(), false)?;
    if !paths.ca.exists() {
        write_atomic(&paths.ca, ca.cert_pem().as_bytes(), false)?;
    }
    Ok(())
}

/// Makes sure a valid, not-yet-due certificate exists (called before start).
pub fn ensure(rot: &RotationSection, paths: &CertPaths) -> Result<(), CaError> {
    match renew_due(paths, rot.renew_at) {
        Some(due) if due > now_unix() => Ok(()),
        _ => issue_now(rot, paths),
    }
}

/// Renews the certificate whenever it is due, until `shutdown`.
pub async fn run<T: Send + Sync + 'static>(
    rot: RotationSection,
    reloader: Arc<crate::reload::Reloader<T>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let paths = reloader.paths().clone();
        let wait = match renew_due(&paths, rot.renew_at) {
            Some(due) => Duration::from_secs(due.saturating_sub(now_unix()).max(1) as u64),
            None => Duration::from_secs(1),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
        let (r, rl) = (rot.clone(), reloader.clone());
        let result = tokio::task::spawn_blocking(move || {
            let _guard = rl.write_lock.lock().unwrap_or_else(|e| e.into_inner());
            issue_now(&r, rl.paths())
        })
        .await;
        match result {
            Ok(Ok(())) => {
                tracing::info!(spiffe_id = %rot.spiffe_id, "certificate renewed");
                if let Err(e) = reloader.reload_if_changed() {
                    tracing::error!(error = %e, "renewed certificate not loadable");
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "certificate renewal failed; retrying in 30s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    _ = crate::stopped(&mut shutdown) => return,
                }
            }
            Err(e) => tracing::error!(error = %e, "renewal task panicked"),
        }
    }
}
