//! The HTTP accept loop of the signaling (and metrics) listeners, hardened against connections
//! that hold descriptors without ever becoming a session:
//!
//! - a request header must arrive within the handshake timeout, from the accept and between
//!   keep-alive requests (hyper's header read timeout), so silent and trickling connections
//!   close;
//! - a connection that has not upgraded to a WebSocket after three handshake timeouts is closed
//!   (gracefully, after its request in flight) whatever it does;
//! - at most `max_pending` connections may be open and not upgraded; accepting one more
//!   closes the oldest, so fresh requests (a health probe, a join) are served even while the
//!   cap is full of idle connections;
//! - running out of descriptors (`EMFILE`) closes the oldest pending connection and retries at
//!   once instead of sleeping.
//!
//! Upgraded WebSockets leave this accounting: their sessions are capped per IP address
//! ([`ConnectionLimiter`](crate::limits::ConnectionLimiter)) and end on their own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::metrics::Metrics;

/// How long a connection that is told to close (shutdown, lifetime over) may finish the
/// request it is serving.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The accept loop's protections.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Longest wait for a complete request header, counted from the accept and again after
    /// each response on a kept-alive connection.
    pub header_timeout: Duration,
    /// Longest a connection may stay open without upgrading to a WebSocket.
    pub pending_lifetime: Duration,
    /// Most connections open and not upgraded; accepting one more closes the oldest.
    pub max_pending: usize,
}

impl ServeLimits {
    /// The limits for a handshake timeout and a cap on pending connections.
    pub fn new(handshake_timeout: Duration, max_pending: usize) -> Self {
        Self {
            header_timeout: handshake_timeout,
            pending_lifetime: handshake_timeout * 3,
            max_pending: max_pending.max(1),
        }
    }
}

/// The connections accepted and not yet upgraded, oldest first.
#[derive(Default)]
struct PendingSet {
    next: u64,
    open: BTreeMap<u64, oneshot::Sender<()>>,
}

/// A slot in the [`PendingSet`]; freed when the connection upgrades or closes.
struct PendingSlot {
    id: u64,
    set: Arc<Mutex<PendingSet>>,
    metrics: Arc<Metrics>,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut set = lock(&self.set);
        if set.open.remove(&self.id).is_some() {
            self.metrics.http_pending_connections.dec();
        }
    }
}

fn lock(set: &Mutex<PendingSet>) -> std::sync::MutexGuard<'_, PendingSet> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers a new connection; closes the oldest ones beyond `max`. Returns the slot and the
/// signal that this connection was evicted.
fn register(
    set: &Arc<Mutex<PendingSet>>,
    max: usize,
    metrics: &Arc<Metrics>,
) -> (PendingSlot, oneshot::Receiver<()>) {
    let (evict, evicted) = oneshot::channel();
    let mut pending = lock(set);
    let id = pending.next;
    pending.next += 1;
    pending.open.insert(id, evict);
    metrics.http_pending_connections.inc();
    while pending.open.len() > max {
        evict_oldest(&mut pending, metrics);
    }
    drop(pending);
    let slot = PendingSlot {
        id,
        set: Arc::clone(set),
        metrics: Arc::clone(metrics),
    };
    (slot, evicted)
}

/// Closes the oldest pending connection; false when there is none.
fn evict_oldest(pending: &mut PendingSet, metrics: &Metrics) -> bool {
    let Some((_, evict)) = pending.open.pop_first() else {
        return false;
    };
    metrics.http_pending_connections.dec();
    metrics.http_closed("evicted");
    let _ = evict.send(());
    true
}

/// Serves `router` on `listener` until `shutdown` turns true, then lets pending connections
/// finish their requests (up to [`CLOSE_GRACE`]) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    mut shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let pending = Arc::new(Mutex::new(PendingSet::default()));
    let mut connections = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stopping| *stopping) => break,
        };
        // Reap finished connection tasks as we go.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                on_accept_error(&err, &pending, &metrics).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (slot, evicted) = register(&pending, limits.max_pending, &metrics);
        connections.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            builder.clone(),
            limits,
            slot,
            evicted,
            shutdown.clone(),
        ));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Running out of descriptors: free one by closing the oldest pending connection and retry at
/// once; with none to close, wait a little. Errors of one connection are not the listener's.
async fn on_accept_error(
    err: &std::io::Error,
    pending: &Arc<Mutex<PendingSet>>,
    metrics: &Arc<Metrics>,
) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %err, "accept failed");
    let freed = evict_oldest(&mut lock(pending), metrics);
    // The evicted connection's task closes its socket at its next poll.
    let pause = if freed {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(50)
    };
    tokio::time::sleep(pause).await;
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: hyper::server::conn::http1::Builder,
    limits: ServeLimits,
    slot: PendingSlot,
    mut evicted: oneshot::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let metrics = Arc::clone(&slot.metrics);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move { tower_service::Service::call(&mut router, request).await }
    });
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let deadline = tokio::time::sleep(limits.pending_lifetime);
    tokio::pin!(deadline);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    if err.is_timeout() {
                        metrics.http_closed("timeout");
                    }
                    tracing::debug!(error = %err, "http connection ended");
                }
                break;
            }
            // Evicted (or the listener is gone): close at once.
            _ = &mut evicted => break,
            _ = &mut deadline => {
                if closing {
                    break;
                }
                metrics.http_closed("timeout");
                connection.as_mut().graceful_shutdown();
                closing = true;
                deadline.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            _ = shutdown.wait_for(|stopping| *stopping), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
                deadline.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
            }
        }
    }
    drop(slot);
}

/// The soft limit on open descriptors of this process, when it can be read.
#[cfg(unix)]
pub fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The soft limit on open descriptors of this process, when it can be read.
#[cfg(not(unix))]
pub fn descriptor_limit() -> Option<u64> {
    None
}

/// The cap on pending connections to use: `configured`, lowered to half the descriptor limit
/// (the rest is for sessions, media and files) when that is lower, with a warning.
pub fn effective_max_pending(configured: usize, descriptor_limit: Option<u64>) -> usize {
    let Some(limit) = descriptor_limit else {
        return configured;
    };
    let half = usize::try_from(limit / 2).unwrap_or(usize::MAX).max(1);
    if configured > half {
        tracing::warn!(
            configured,
            descriptor_limit = limit,
            used = half,
            "max_pending_connections exceeds half the descriptor limit (ulimit -n); lowered"
        );
        half
    } else {
        configured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pending_connections_make_room_for_new_ones() {
        let metrics = Arc::new(Metrics::default());
        let set = Arc::new(Mutex::new(PendingSet::default()));
        let (first, mut first_evicted) = register(&set, 2, &metrics);
        let (_second, mut second_evicted) = register(&set, 2, &metrics);
        let (_third, _) = register(&set, 2, &metrics);
        assert!(
            first_evicted.try_recv().is_ok(),
            "the oldest is told to close"
        );
        assert!(second_evicted.try_recv().is_err());
        assert_eq!(metrics.http_pending_connections.get(), 2);
        drop(first);
        assert_eq!(
            metrics.http_pending_connections.get(),
            2,
            "an evicted slot is not counted twice"
        );
        assert!(evict_oldest(&mut lock(&set), &metrics));
        assert!(second_evicted.try_recv().is_ok());
        assert_eq!(metrics.http_pending_connections.get(), 1);
    }

    #[test]
    fn the_pending_cap_leaves_half_the_descriptors_for_the_rest() {
        assert_eq!(effective_max_pending(256, Some(1024)), 256);
        assert_eq!(effective_max_pending(1000, Some(1024)), 512);
        assert_eq!(effective_max_pending(1000, None), 1000);
        assert_eq!(effective_max_pending(10, Some(1)), 1);
    }
}
