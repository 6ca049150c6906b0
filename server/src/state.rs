//! State shared by every session of a running server.

use std::collections::HashMap;
use std::sync::Arc;

use aula_protocol::token::{unix_now, TimePolicy};
use aula_protocol::{Claims, TokenError};
use tokio::sync::watch;

use crate::config::Limits;
use crate::limits::ConnectionLimiter;
use crate::metrics::Metrics;
use crate::room::Rooms;
use crate::udp_mux::UdpMux;

/// What every session needs: keys, rooms, the media socket, the shutdown signal.
pub struct ServerState {
    /// API key to secret.
    pub keys: HashMap<String, String>,
    /// Open rooms.
    pub rooms: Rooms,
    /// The shared media socket.
    pub mux: Arc<UdpMux>,
    /// Flips to `true` when the server shuts down.
    pub shutdown: watch::Sender<bool>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Open connections per IP address.
    pub connections: ConnectionLimiter,
    /// Caps on rooms, participants and message rates.
    pub limits: Limits,
    /// Signed event delivery to the application's backend.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// The rooms' whiteboards.
    pub boards: crate::whiteboard::Boards,
    /// How tokens' times are judged (clock-skew leeway, lifetime cap).
    pub token_policy: TimePolicy,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<String>,
}

impl ServerState {
    /// Verifies an access token against this server's keys and clock.
    pub fn verify_token(&self, token: &str) -> Result<Claims, TokenError> {
        Claims::verify_with(
            token,
            |key| self.keys.get(key).map(String::as_str),
            unix_now(),
            &self.token_policy,
        )
    }
}
