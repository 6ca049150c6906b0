//! Server configuration.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// The fixed API key of `--dev` mode.
pub const DEV_API_KEY: &str = "devkey";
/// The fixed API secret of `--dev` mode.
pub const DEV_API_SECRET: &str = "devsecret";

/// Everything a server needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address for HTTP and WebSocket signaling.
    pub listen: SocketAddr,
    /// UDP port for all media; 0 picks a free one.
    pub rtc_port: u16,
    /// Address put in ICE candidates; defaults to the listen address (loopback if unspecified).
    pub public_ip: Option<IpAddr>,
    /// API key to secret.
    pub keys: HashMap<String, String>,
}

impl ServerConfig {
    /// A development configuration: the fixed dev key on loopback, with the given ports
    /// (0 picks free ones).
    pub fn dev(http_port: u16, rtc_port: u16) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], http_port)),
            rtc_port,
            public_ip: None,
            keys: HashMap::from([(DEV_API_KEY.to_owned(), DEV_API_SECRET.to_owned())]),
        }
    }
}
