//! The accept loop every mode shares: a cap on open connections, the
//! connection counters, one task per connection, until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::metrics::Metrics;

/// The connections an accept loop let in: each holds a permit until its
/// task ends.
#[derive(Debug)]
pub(crate) struct OpenConnections {
    limit: Arc<Semaphore>,
    max: usize,
}

impl OpenConnections {
    /// Waits up to `grace` for every open connection to end; false when the
    /// grace period ran out first.
    pub(crate) async fn drain(&self, grace: Duration) -> bool {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        tokio::time::timeout(grace, self.limit.acquire_many(all))
            .await
            .is_ok()
    }
}

/// Decrements the active-connection gauge when dropped (also when a
/// connection's task panics).
struct ActiveGuard(Arc<Metrics>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections until `shutdown` turns true and runs `handle(tcp,
/// peer)` for each in a task of its own.
///
/// With `max_connections` open, a new connection is closed at accept and
/// counted in `connections_rejected`; accepted ones count in
/// `connections_total` and, while their task runs, `connections_active`.
/// Accept errors (e.g. out of file descriptors) are logged and retried after
/// 50 ms. Returns, with the listener closed, the connections still open, so
/// the caller can let them finish.
pub(crate) async fn accept_until_shutdown<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    mut handle: F,
) -> OpenConnections
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max_connections));
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::stopped(&mut shutdown) => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics.connections_rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, reason = "max_connections", "connection closed at accept");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        metrics.connections_active.fetch_add(1, Ordering::Relaxed);
        let active = ActiveGuard(metrics.clone());
        let task = handle(tcp, peer);
        tokio::spawn(async move {
            let _active = active;
            let _permit = permit;
            task.await;
        });
    }
    drop(listener);
    OpenConnections {
        limit,
        max: max_connections,
    }
}
