//! Server configuration: built-in defaults, a TOML file, then flags and `AULA_*` environment
//! variables, each layer overriding the one before; validated before the server starts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The fixed API key of `--dev` mode.
pub const DEV_API_KEY: &str = "devkey";
/// The fixed API secret of `--dev` mode.
pub const DEV_API_SECRET: &str = "devsecret";

/// Caps that protect the server from overload and abuse. Each refusal is a typed error and a
/// metric.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Rooms open at once; joins that would open another get `server_full`.
    pub max_rooms: usize,
    /// Participants per room; further joins get `room_full`.
    pub max_participants_per_room: usize,
    /// Signaling connections open at once from one IP address; more get HTTP 429.
    pub max_connections_per_ip: usize,
    /// Signaling messages per second per connection (bursts of twice that are absorbed);
    /// messages beyond get `rate_limited` and are dropped.
    pub max_messages_per_second: u32,
    /// HTTP connections open at once that have not upgraded to a WebSocket; accepting one more
    /// closes the oldest. Lowered to half the descriptor limit (`ulimit -n`) when above it.
    pub max_pending_connections: usize,
    /// Seconds a connection may take to send a complete request header (from the connect, and
    /// between requests on a kept-alive connection); a connection that has not upgraded to a
    /// WebSocket after three times this is closed.
    pub handshake_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rooms: 10_000,
            max_participants_per_room: 256,
            max_connections_per_ip: 64,
            max_messages_per_second: 50,
            max_pending_connections: 256,
            handshake_timeout_secs: 10,
        }
    }
}

/// Longest handshake timeout accepted, in seconds.
pub const MAX_HANDSHAKE_TIMEOUT_SECS: u64 = 300;
/// Shortest metrics bearer token accepted, in characters.
pub const MIN_METRICS_TOKEN_CHARS: usize = 16;

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
    /// Overload and abuse caps.
    pub limits: Limits,
    /// Where whiteboards are stored; `None` keeps them in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// Bounds on whiteboard updates.
    pub whiteboard_limits: aula_protocol::whiteboard::WhiteboardLimits,
    /// Endpoints that receive signed room and participant events (http:// or https://).
    pub webhook_urls: Vec<String>,
    /// Also serve ICE over TCP on the media port number, for clients whose network blocks UDP.
    pub ice_tcp: bool,
    /// Serve `/metrics` on this address only (not on `listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on `/metrics`.
    pub metrics_token: Option<String>,
    /// Refuse tokens valid for longer than this (`exp` minus the later of `iat` and `nbf`).
    pub max_token_lifetime_secs: Option<u64>,
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
            limits: Limits::default(),
            data_dir: None,
            whiteboard_limits: Default::default(),
            webhook_urls: Vec::new(),
            ice_tcp: true,
            metrics_listen: None,
            metrics_token: None,
            max_token_lifetime_secs: None,
        }
    }
}

/// One layer of configuration: a file, or the flags and environment. Unset fields fall through
/// to the layer below.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// See [`ServerConfig::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`ServerConfig::rtc_port`].
    pub rtc_port: Option<u16>,
    /// See [`ServerConfig::public_ip`].
    pub public_ip: Option<IpAddr>,
    /// API key tokens are signed with.
    pub api_key: Option<String>,
    /// API secret tokens are signed with.
    pub api_secret: Option<String>,
    /// `json` or `text`.
    pub log_format: Option<String>,
    /// Directory for durable whiteboard storage; unset keeps boards in memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<std::path::PathBuf>,
    /// See [`ServerConfig::ice_tcp`] (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_tcp: Option<bool>,
    /// Webhook endpoints; unset sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_urls: Option<Vec<String>>,
    /// See [`ServerConfig::metrics_listen`]; unset serves `/metrics` on `listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// See [`ServerConfig::metrics_token`]; unset leaves `/metrics` open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<String>,
    /// See [`ServerConfig::max_token_lifetime_secs`]; unset accepts any lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_lifetime_secs: Option<u64>,
    /// Overload and abuse caps; unset fields keep their defaults.
    #[serde(default)]
    pub limits: LimitsLayer,
}

/// [`Limits`] with every field optional, for layering.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsLayer {
    /// See [`Limits::max_rooms`].
    pub max_rooms: Option<usize>,
    /// See [`Limits::max_participants_per_room`].
    pub max_participants_per_room: Option<usize>,
    /// See [`Limits::max_connections_per_ip`].
    pub max_connections_per_ip: Option<usize>,
    /// See [`Limits::max_messages_per_second`].
    pub max_messages_per_second: Option<u32>,
    /// See [`Limits::max_pending_connections`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_connections: Option<usize>,
    /// See [`Limits::handshake_timeout_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout_secs: Option<u64>,
}

/// The configuration a server runs with, plus what only the binary uses.
#[derive(Clone, Debug)]
pub struct EffectiveConfig {
    /// The server's configuration.
    pub server: ServerConfig,
    /// `json` or `text`.
    pub log_format: String,
    /// Whether the fixed development key is in use.
    pub dev: bool,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with its position.
        message: String,
    },
    /// A value is out of range or a required value is missing.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ConfigLayer {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// This layer over `below`: fields set here win.
    pub fn over(self, below: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            listen: self.listen.or(below.listen),
            rtc_port: self.rtc_port.or(below.rtc_port),
            public_ip: self.public_ip.or(below.public_ip),
            api_key: self.api_key.or(below.api_key),
            api_secret: self.api_secret.or(below.api_secret),
            log_format: self.log_format.or(below.log_format),
            data_dir: self.data_dir.or(below.data_dir),
            ice_tcp: self.ice_tcp.or(below.ice_tcp),
            webhook_urls: self.webhook_urls.or(below.webhook_urls),
            metrics_listen: self.metrics_listen.or(below.metrics_listen),
            metrics_token: self.metrics_token.or(below.metrics_token),
            max_token_lifetime_secs: self
                .max_token_lifetime_secs
                .or(below.max_token_lifetime_secs),
            limits: LimitsLayer {
                max_rooms: self.limits.max_rooms.or(below.limits.max_rooms),
                max_participants_per_room: self
                    .limits
                    .max_participants_per_room
                    .or(below.limits.max_participants_per_room),
                max_connections_per_ip: self
                    .limits
                    .max_connections_per_ip
                    .or(below.limits.max_connections_per_ip),
                max_messages_per_second: self
                    .limits
                    .max_messages_per_second
                    .or(below.limits.max_messages_per_second),
                max_pending_connections: self
                    .limits
                    .max_pending_connections
                    .or(below.limits.max_pending_connections),
                handshake_timeout_secs: self
                    .limits
                    .handshake_timeout_secs
                    .or(below.limits.handshake_timeout_secs),
            },
        }
    }

    /// Fills in defaults and validates. `dev` supplies the fixed key when none is configured.
    pub fn resolve(self, dev: bool) -> Result<EffectiveConfig, ConfigError> {
        let keys = match (self.api_key, self.api_secret) {
            (Some(key), Some(secret)) => {
                if key.trim().is_empty() || secret.len() < 8 {
                    return Err(ConfigError::Invalid(
                        "the API key must not be empty and the API secret needs at least 8 characters"
                            .into(),
                    ));
                }
                HashMap::from([(key, secret)])
            }
            (None, None) if dev => {
                HashMap::from([(DEV_API_KEY.to_owned(), DEV_API_SECRET.to_owned())])
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "api_key and api_secret must be set together".into(),
                ))
            }
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "no API key: set api_key and api_secret (AULA_API_KEY/AULA_API_SECRET, \
                     --api-key/--api-secret or the file), or use --dev"
                        .into(),
                ))
            }
        };
        let defaults = Limits::default();
        let limits = Limits {
            max_rooms: self.limits.max_rooms.unwrap_or(defaults.max_rooms),
            max_participants_per_room: self
                .limits
                .max_participants_per_room
                .unwrap_or(defaults.max_participants_per_room),
            max_connections_per_ip: self
                .limits
                .max_connections_per_ip
                .unwrap_or(defaults.max_connections_per_ip),
            max_messages_per_second: self
                .limits
                .max_messages_per_second
                .unwrap_or(defaults.max_messages_per_second),
            max_pending_connections: self
                .limits
                .max_pending_connections
                .unwrap_or(defaults.max_pending_connections),
            handshake_timeout_secs: self
                .limits
                .handshake_timeout_secs
                .unwrap_or(defaults.handshake_timeout_secs),
        };
        if limits.max_rooms == 0
            || limits.max_participants_per_room == 0
            || limits.max_connections_per_ip == 0
            || limits.max_messages_per_second == 0
            || limits.max_pending_connections == 0
            || limits.handshake_timeout_secs == 0
        {
            return Err(ConfigError::Invalid("limits must be at least 1".into()));
        }
        if limits.handshake_timeout_secs > MAX_HANDSHAKE_TIMEOUT_SECS {
            return Err(ConfigError::Invalid(format!(
                "handshake_timeout_secs must be at most {MAX_HANDSHAKE_TIMEOUT_SECS}"
            )));
        }
        if let Some(token) = &self.metrics_token {
            if token.chars().count() < MIN_METRICS_TOKEN_CHARS
                || token.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(ConfigError::Invalid(format!(
                    "metrics_token needs at least {MIN_METRICS_TOKEN_CHARS} characters and no \
                     spaces or control characters"
                )));
            }
        }
        if self.max_token_lifetime_secs == Some(0) {
            return Err(ConfigError::Invalid(
                "max_token_lifetime_secs must be at least 1 (unset it to accept any)".into(),
            ));
        }
        let webhook_urls = self.webhook_urls.unwrap_or_default();
        crate::webhooks::validate_urls(&webhook_urls)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let log_format = self
            .log_format
            .unwrap_or_else(|| if dev { "text" } else { "json" }.to_owned());
        if log_format != "json" && log_format != "text" {
            return Err(ConfigError::Invalid(format!(
                "log_format must be json or text, not {log_format:?}"
            )));
        }
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7880)));
        if self
            .metrics_listen
            .is_some_and(|m| m == listen && m.port() != 0)
        {
            return Err(ConfigError::Invalid(
                "metrics_listen must differ from listen".into(),
            ));
        }
        Ok(EffectiveConfig {
            server: ServerConfig {
                listen,
                rtc_port: self.rtc_port.unwrap_or(7881),
                public_ip: self.public_ip,
                keys,
                limits,
                data_dir: self.data_dir,
                whiteboard_limits: Default::default(),
                webhook_urls,
                ice_tcp: self.ice_tcp.unwrap_or(true),
                metrics_listen: self.metrics_listen,
                metrics_token: self.metrics_token,
                max_token_lifetime_secs: self.max_token_lifetime_secs,
            },
            log_format,
            dev,
        })
    }
}

impl EffectiveConfig {
    /// The configuration as TOML, secrets masked: what `--print-config` shows.
    pub fn to_masked_toml(&self) -> String {
        let (key, _) = self
            .server
            .keys
            .iter()
            .next()
            .map(|(k, s)| (k.clone(), s.clone()))
            .unwrap_or_default();
        let layer = ConfigLayer {
            listen: Some(self.server.listen),
            rtc_port: Some(self.server.rtc_port),
            public_ip: self.server.public_ip,
            api_key: Some(key),
            api_secret: Some("********".into()),
            log_format: Some(self.log_format.clone()),
            data_dir: self.server.data_dir.clone(),
            ice_tcp: Some(self.server.ice_tcp),
            webhook_urls: Some(self.server.webhook_urls.clone()),
            metrics_listen: self.server.metrics_listen,
            metrics_token: self
                .server
                .metrics_token
                .as_ref()
                .map(|_| "********".to_owned()),
            max_token_lifetime_secs: self.server.max_token_lifetime_secs,
            limits: LimitsLayer {
                max_rooms: Some(self.server.limits.max_rooms),
                max_participants_per_room: Some(self.server.limits.max_participants_per_room),
                max_connections_per_ip: Some(self.server.limits.max_connections_per_ip),
                max_messages_per_second: Some(self.server.limits.max_messages_per_second),
                max_pending_connections: Some(self.server.limits.max_pending_connections),
                handshake_timeout_secs: Some(self.server.limits.handshake_timeout_secs),
            },
        };
        toml::to_string(&layer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_environment_win_over_the_file_and_defaults_fill_the_rest() {
        let file: ConfigLayer = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            rtc_port = 9001
            api_key = "filekey"
            api_secret = "filesecret"
            [limits]
            max_rooms = 5
            "#,
        )
        .unwrap();
        let cli = ConfigLayer {
            rtc_port: Some(7000),
            limits: LimitsLayer {
                max_messages_per_second: Some(10),
                ..LimitsLayer::default()
            },
            ..ConfigLayer::default()
        };
        let config = cli.over(file).resolve(false).unwrap();
        assert_eq!(
            config.server.listen,
            "0.0.0.0:9000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.server.rtc_port, 7000);
        assert_eq!(config.server.limits.max_rooms, 5);
        assert_eq!(config.server.limits.max_messages_per_second, 10);
        assert_eq!(config.server.limits.max_participants_per_room, 256);
        assert_eq!(config.log_format, "json");
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        assert!(ConfigLayer::default().resolve(false).is_err(), "no key");
        let half = ConfigLayer {
            api_key: Some("k".into()),
            ..ConfigLayer::default()
        };
        assert!(half.resolve(false).is_err(), "key without secret");
        let zero = ConfigLayer {
            limits: LimitsLayer {
                max_rooms: Some(0),
                ..LimitsLayer::default()
            },
            ..ConfigLayer::default()
        };
        assert!(zero.resolve(true).is_err(), "zero limit");
        let bad_hook = ConfigLayer {
            webhook_urls: Some(vec!["hooks.example.com".into()]),
            ..ConfigLayer::default()
        };
        assert!(
            bad_hook.resolve(true).is_err(),
            "webhook URL without a scheme"
        );
        assert!(toml::from_str::<ConfigLayer>("listen = 5").is_err());
        assert!(
            toml::from_str::<ConfigLayer>("lisen = \"x\"").is_err(),
            "typos are caught"
        );
    }

    #[test]
    fn hardening_options_layer_validate_and_print() {
        let file: ConfigLayer = toml::from_str(
            r#"
            api_key = "k1"
            api_secret = "filesecret"
            metrics_listen = "127.0.0.1:9090"
            metrics_token = "0123456789abcdef0123"
            max_token_lifetime_secs = 7200
            [limits]
            max_pending_connections = 100
            handshake_timeout_secs = 5
            "#,
        )
        .unwrap();
        let cli = ConfigLayer {
            limits: LimitsLayer {
                handshake_timeout_secs: Some(3),
                ..LimitsLayer::default()
            },
            ..ConfigLayer::default()
        };
        let config = cli.over(file).resolve(false).unwrap();
        let server = &config.server;
        assert_eq!(
            server.metrics_listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert_eq!(
            server.metrics_token.as_deref(),
            Some("0123456789abcdef0123")
        );
        assert_eq!(server.max_token_lifetime_secs, Some(7200));
        assert_eq!(server.limits.max_pending_connections, 100);
        assert_eq!(server.limits.handshake_timeout_secs, 3, "the flag wins");
        let text = config.to_masked_toml();
        assert!(!text.contains("0123456789abcdef0123"), "{text}");
        assert!(text.contains("metrics_token = \"********\""), "{text}");
        let reparsed: ConfigLayer = toml::from_str(&text).unwrap();
        assert_eq!(reparsed.limits.max_pending_connections, Some(100));
        assert_eq!(reparsed.max_token_lifetime_secs, Some(7200));
        let defaults = ConfigLayer::default().resolve(true).unwrap();
        assert_eq!(defaults.server.metrics_token, None);
        assert_eq!(defaults.server.limits.max_pending_connections, 256);
        assert_eq!(defaults.server.limits.handshake_timeout_secs, 10);
    }

    #[test]
    fn bad_hardening_options_are_refused() {
        let refused = |layer: ConfigLayer| layer.resolve(true).is_err();
        assert!(refused(ConfigLayer {
            metrics_token: Some("short".into()),
            ..ConfigLayer::default()
        }));
        assert!(refused(ConfigLayer {
            metrics_token: Some("has a space in it, long enough".into()),
            ..ConfigLayer::default()
        }));
        assert!(refused(ConfigLayer {
            max_token_lifetime_secs: Some(0),
            ..ConfigLayer::default()
        }));
        assert!(refused(ConfigLayer {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            metrics_listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..ConfigLayer::default()
        }));
        for limits in [
            LimitsLayer {
                max_pending_connections: Some(0),
                ..LimitsLayer::default()
            },
            LimitsLayer {
                handshake_timeout_secs: Some(0),
                ..LimitsLayer::default()
            },
            LimitsLayer {
                handshake_timeout_secs: Some(MAX_HANDSHAKE_TIMEOUT_SECS + 1),
                ..LimitsLayer::default()
            },
        ] {
            assert!(refused(ConfigLayer {
                limits,
                ..ConfigLayer::default()
            }));
        }
    }

    #[test]
    fn printed_configuration_masks_the_secret() {
        let config = ConfigLayer {
            api_key: Some("k1".into()),
            api_secret: Some("supersecret".into()),
            ..ConfigLayer::default()
        }
        .resolve(false)
        .unwrap();
        let text = config.to_masked_toml();
        assert!(!text.contains("supersecret"));
        assert!(text.contains("api_key = \"k1\""));
        let reparsed: ConfigLayer = toml::from_str(&text).unwrap();
        assert_eq!(reparsed.rtc_port, Some(7881));
    }
}
