//! Aula server: WebSocket signaling and a selective forwarding unit for classrooms.
//!
//! [`Server::start`] binds the signaling and media ports and serves until
//! [`ServerHandle::shutdown`]. The `aula-server` binary wraps it with flags and signals; tests
//! and benchmarks start it in-process.
#![deny(missing_docs)]

mod api;
pub mod classroom;
pub mod config;
mod http;
pub mod limits;
pub mod metrics;
mod outbox;
mod room;
mod serve;
mod session;
pub mod sfu;
mod state;
pub mod storage;
pub mod tcp_mux;
mod track_kind;
pub mod udp_mux;
pub mod webhooks;
pub mod whiteboard;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{Limits, ServerConfig, DEV_API_KEY, DEV_API_SECRET};

use limits::ConnectionLimiter;
use state::ServerState;
use tokio::sync::watch;
use udp_mux::UdpMux;

/// Longest a shutdown waits for sessions to close before the listener stops regardless.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A port could not be bound.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        /// Which port.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration has no API keys.
    #[error("no API key configured")]
    NoKeys,
    /// The webhook endpoints or client could not be set up.
    #[error(transparent)]
    Webhooks(#[from] webhooks::WebhookError),
    /// The whiteboard store could not be opened.
    #[error("cannot open the whiteboard store: {0}")]
    Store(#[from] whiteboard::StoreError),
    /// The server's database could not be opened.
    #[error("cannot open the server's database: {0}")]
    Storage(#[from] storage::StorageError),
}

/// The server entry point.
pub struct Server;

impl Server {
    /// Binds the ports and starts serving in the background on the current tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
        if config.keys.is_empty() {
            return Err(ServerError::NoKeys);
        }
        let rtc_bind = SocketAddr::new(config.listen.ip(), config.rtc_port);
        let mux = UdpMux::bind(rtc_bind, config.public_ip, config.ice_tcp)
            .await
            .map_err(|source| ServerError::Bind {
                what: "the media port",
                addr: rtc_bind,
                source,
            })?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                what: "the signaling port",
                addr: config.listen,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            what: "the signaling port",
            addr: config.listen,
            source,
        })?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                let bind_error = |source| ServerError::Bind {
                    what: "the metrics port",
                    addr,
                    source,
                };
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(bind_error)?;
                let local = listener.local_addr().map_err(bind_error)?;
                Some((listener, local))
            }
            None => None,
        };
        let rtc_addr = mux.local_addr().map_err(|source| ServerError::Bind {
            what: "the media port",
            addr: rtc_bind,
            source,
        })?;
        let database = storage::open_database(config.data_dir.as_deref())?;
        let store = whiteboard::Store::with_database(Arc::clone(&database))?;
        let classroom_store: Arc<dyn storage::Storage> =
            Arc::new(storage::RedbStorage::new(database)?);
        let (shutdown, _) = watch::channel(false);
        let metrics = Arc::new(metrics::Metrics::default());
        let signing = config
            .keys
            .iter()
            .min()
            .map(|(key, secret)| webhooks::SigningKey {
                key: key.clone(),
                secret: secret.clone(),
            })
            .ok_or(ServerError::NoKeys)?;
        let webhooks = Arc::new(webhooks::Webhooks::start(
            &config.webhook_urls,
            signing,
            Arc::clone(&metrics),
        )?);
        let state = Arc::new(ServerState {
            keys: config.keys.clone(),
            rooms: room::Rooms::new(Arc::clone(&webhooks), classroom_store, Arc::clone(&metrics)),
            webhooks,
            mux: Arc::clone(&mux),
            shutdown,
            metrics: Arc::clone(&metrics),
            connections: ConnectionLimiter::new(config.limits.max_connections_per_ip),
            limits: config.limits.clone(),
            boards: whiteboard::Boards::new(
                store,
                config.whiteboard_limits.clone(),
                Arc::clone(&metrics),
            ),
            token_policy: aula_protocol::token::TimePolicy {
                max_lifetime_secs: config.max_token_lifetime_secs,
                ..Default::default()
            },
            metrics_token: config.metrics_token.clone(),
        });
        let serve_limits = serve::ServeLimits::new(
            std::time::Duration::from_secs(config.limits.handshake_timeout_secs),
            serve::effective_max_pending(
                config.limits.max_pending_connections,
                serve::descriptor_limit(),
            ),
        );
        let metrics_addr = metrics_listener.as_ref().map(|(_, addr)| *addr);
        let app = http::router(Arc::clone(&state), metrics_addr.is_none());
        let mut tasks = vec![tokio::spawn(serve::serve(
            listener,
            app,
            serve_limits,
            state.shutdown.subscribe(),
            Arc::clone(&metrics),
        ))];
        if let Some((listener, _)) = metrics_listener {
            tasks.push(tokio::spawn(serve::serve(
                listener,
                http::metrics_router(Arc::clone(&state)),
                serve_limits,
                state.shutdown.subscribe(),
                Arc::clone(&metrics),
            )));
        }
        Ok(ServerHandle {
            http_addr,
            metrics_addr,
            rtc_addr,
            announced_rtc_addr: mux.announced_addr(),
            state,
            tasks,
        })
    }
}

/// A running server.
pub struct ServerHandle {
    http_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    rtc_addr: SocketAddr,
    announced_rtc_addr: SocketAddr,
    state: Arc<ServerState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ServerHandle {
    /// Where HTTP and WebSocket signaling listen.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where `/metrics` is served when it has its own listener (`metrics_listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The WebSocket URL clients connect to.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.http_addr)
    }

    /// Where the media socket is bound.
    pub fn rtc_addr(&self) -> SocketAddr {
        self.rtc_addr
    }

    /// The media address announced to clients in candidates.
    pub fn announced_rtc_addr(&self) -> SocketAddr {
        self.announced_rtc_addr
    }

    /// Where the ICE-over-TCP listener is bound, when it is on.
    pub fn rtc_tcp_addr(&self) -> Option<SocketAddr> {
        self.state.mux.tcp_local_addr()
    }

    /// Item count and content digest of `room`'s authoritative whiteboard (loading it if
    /// needed).
    pub async fn whiteboard_digest(&self, room: &str) -> Option<(usize, String)> {
        // A board with nobody connected unloads after answering; retry if it just did.
        for _ in 0..3 {
            let board = self.state.boards.get(room).await.ok()?;
            let (reply, rx) = tokio::sync::oneshot::channel();
            if board
                .send(whiteboard::BoardCmd::Inspect { reply })
                .await
                .is_ok()
            {
                if let Ok(answer) = rx.await {
                    return Some(answer);
                }
            }
        }
        None
    }

    /// Bytes stored for `room`'s whiteboard (snapshot plus updates, payload only).
    pub fn whiteboard_stored_bytes(&self, room: &str) -> Option<u64> {
        self.state.boards.stored_bytes(room).ok()
    }

    /// Number of open rooms.
    pub async fn room_count(&self) -> usize {
        self.state.rooms.count().await
    }

    /// Drains the server: `/readyz` turns unready, joins are refused, every session is told
    /// (`leave` with reason `server_shutdown`, so clients rejoin elsewhere) and closed, and the
    /// listener stops. Returns when the HTTP server has stopped.
    pub async fn shutdown(self) {
        let _ = self.state.shutdown.send(true);
        // Sessions end on their own once told; give them a moment to say goodbye.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.state.rooms.count().await > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The rooms' last events (participants leaving, rooms finishing) still go out.
        self.state.webhooks.flush(SHUTDOWN_GRACE).await;
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
