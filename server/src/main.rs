//! `aula-server`: signaling and SFU for Aula classrooms.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, Role};
use aula_server::config::{ConfigLayer, LimitsLayer};
use aula_server::{Server, DEV_API_KEY, DEV_API_SECRET};
use clap::Parser;

/// Aula signaling server and SFU. Every option can also be set in the `--config` file and as an
/// `AULA_*` environment variable; flags and the environment win over the file.
#[derive(Parser, Debug)]
#[command(name = "aula-server", version, about)]
struct Args {
    /// TOML configuration file (keys as in `--print-config`).
    #[arg(long, env = "AULA_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration (secrets masked) and exit.
    #[arg(long)]
    print_config: bool,
    /// HTTP/WebSocket listen address [default: 127.0.0.1:7880].
    #[arg(long, env = "AULA_LISTEN")]
    listen: Option<SocketAddr>,
    /// The single UDP port for all media, on the listen address's IP [default: 7881].
    #[arg(long, env = "AULA_RTC_PORT")]
    rtc_port: Option<u16>,
    /// IP address announced to clients for media (set it behind NAT or in a container).
    #[arg(long, env = "AULA_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// API key tokens are signed with.
    #[arg(long, env = "AULA_API_KEY")]
    api_key: Option<String>,
    /// API secret tokens are signed with.
    #[arg(long, env = "AULA_API_SECRET", hide_env_values = true)]
    api_secret: Option<String>,
    /// Development mode: key `devkey`, secret `devsecret`, readable logs, demo tokens.
    #[arg(long, env = "AULA_DEV")]
    dev: bool,
    /// Log format: json (default) or text (default in --dev).
    #[arg(long, env = "AULA_LOG_FORMAT")]
    log_format: Option<String>,
    /// Directory where whiteboards are stored durably (unset: in memory, lost on exit).
    #[arg(long, env = "AULA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Also serve ICE over TCP on the media port number, the fallback for clients whose
    /// network blocks UDP [default: true].
    #[arg(long, env = "AULA_ICE_TCP")]
    ice_tcp: Option<bool>,
    /// Webhook endpoint for signed room and participant events (repeat the flag, or
    /// comma-separate in the environment variable).
    #[arg(long = "webhook-url", env = "AULA_WEBHOOK_URLS", value_delimiter = ',')]
    webhook_urls: Option<Vec<String>>,
    /// Most rooms open at once [default: 10000].
    #[arg(long, env = "AULA_MAX_ROOMS")]
    max_rooms: Option<usize>,
    /// Most participants per room [default: 256].
    #[arg(long, env = "AULA_MAX_PARTICIPANTS_PER_ROOM")]
    max_participants_per_room: Option<usize>,
    /// Most signaling connections per client IP address [default: 64].
    #[arg(long, env = "AULA_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Most signaling messages per second per connection [default: 50].
    #[arg(long, env = "AULA_MAX_MESSAGES_PER_SECOND")]
    max_messages_per_second: Option<u32>,
    /// Most HTTP connections open and not upgraded to a WebSocket; one more closes the oldest
    /// [default: 256, at most half of `ulimit -n`].
    #[arg(long, env = "AULA_MAX_PENDING_CONNECTIONS")]
    max_pending_connections: Option<usize>,
    /// Seconds a connection may take to send a request header; connections not upgraded after
    /// three times this are closed [default: 10].
    #[arg(long, env = "AULA_HANDSHAKE_TIMEOUT_SECS")]
    handshake_timeout_secs: Option<u64>,
    /// Serve /metrics on this address instead of the listen address (e.g. 127.0.0.1:9090).
    #[arg(long, env = "AULA_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer TOKEN` on /metrics (at least 16 characters).
    #[arg(long, env = "AULA_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Refuse access tokens valid for longer than this many seconds (unset: any lifetime).
    #[arg(long, env = "AULA_MAX_TOKEN_LIFETIME_SECS")]
    max_token_lifetime_secs: Option<u64>,
}

impl Args {
    /// The flags and environment as a configuration layer.
    fn layer(&self) -> ConfigLayer {
        ConfigLayer {
            listen: self.listen,
            rtc_port: self.rtc_port,
            public_ip: self.public_ip,
            api_key: self.api_key.clone(),
            api_secret: self.api_secret.clone(),
            log_format: self.log_format.clone(),
            data_dir: self.data_dir.clone(),
            ice_tcp: self.ice_tcp,
            webhook_urls: self.webhook_urls.clone(),
            metrics_listen: self.metrics_listen,
            metrics_token: self.metrics_token.clone(),
            max_token_lifetime_secs: self.max_token_lifetime_secs,
            limits: LimitsLayer {
                max_rooms: self.max_rooms,
                max_participants_per_room: self.max_participants_per_room,
                max_connections_per_ip: self.max_connections_per_ip,
                max_messages_per_second: self.max_messages_per_second,
                max_pending_connections: self.max_pending_connections,
                handshake_timeout_secs: self.handshake_timeout_secs,
            },
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("aula-server: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("aula-server: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => ConfigLayer::from_file(path)?,
        None => ConfigLayer::default(),
    };
    let effective = args.layer().over(file).resolve(args.dev)?;
    if args.print_config {
        print!("{}", effective.to_masked_toml());
        return Ok(());
    }
    init_logging(&effective.log_format)?;
    if effective.dev && args.api_key.is_none() {
        println!("dev mode: API key {DEV_API_KEY}, API secret {DEV_API_SECRET}");
    }
    let server = Server::start(effective.server.clone())
        .await
        .context("starting the server")?;
    let tcp = server
        .rtc_tcp_addr()
        .map(|addr| format!(", ICE-TCP {addr}"))
        .unwrap_or_default();
    let metrics = server
        .metrics_addr()
        .map(|addr| format!(", metrics http://{addr}/metrics"))
        .unwrap_or_default();
    println!(
        "aula-server listening on {} (signaling ws://{}/rtc, media udp {}{tcp}{metrics})",
        server.http_addr(),
        server.http_addr(),
        server.announced_rtc_addr()
    );
    if effective.dev && effective.server.keys.contains_key(DEV_API_KEY) {
        print_demo_room(server.http_addr())?;
    }
    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// In dev mode, prints ready-to-use tokens for the room `demo`: per participant, an `aula join`
/// command and a link that joins from a browser.
fn print_demo_room(http_addr: SocketAddr) -> anyhow::Result<()> {
    print!("{}", demo_room(http_addr, unix_now())?);
    Ok(())
}

/// The text [`print_demo_room`] prints, with tokens issued at `now` (Unix seconds).
fn demo_room(http_addr: SocketAddr, now: u64) -> anyhow::Result<String> {
    let mut text = String::from(
        "demo room \"demo\" (tokens valid 24 h): paste a command into a terminal, or open a link \
         in a browser\n",
    );
    for (identity, role) in [
        ("teacher", Role::Teacher),
        ("student-1", Role::Student),
        ("student-2", Role::Student),
    ] {
        let token = Claims::new(DEV_API_KEY, "demo", identity, role, now, 24 * 3600)
            .sign(DEV_API_SECRET)
            .context("minting a demo token")?;
        // A token is three base64url parts joined by dots: nothing in it needs escaping in a URL.
        // (Writing to a String cannot fail.)
        let _ = writeln!(text, "  {identity}:");
        let _ = writeln!(
            text,
            "    cargo run --release -p aula -- join --url ws://{http_addr} --token {token}"
        );
        let _ = writeln!(text, "    http://{http_addr}/?token={token}");
    }
    Ok(text)
}

fn init_logging(format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AULA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,aula_server=info,webrtc=error,rtc=error,rtc_dtls=error,rtc_ice=error,rtc_srtp=error,rtc_interceptor=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => bail!("unknown log format {other:?} (json or text)"),
    }
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_room_has_a_join_command_and_a_browser_link_per_participant() {
        let addr: SocketAddr = "127.0.0.1:7880".parse().unwrap();
        let now = unix_now();
        let text = demo_room(addr, now).unwrap();
        for identity in ["teacher", "student-1", "student-2"] {
            let block: Vec<&str> = text
                .lines()
                .skip_while(|l| l.trim() != format!("{identity}:"))
                .skip(1)
                .take(2)
                .map(str::trim)
                .collect();
            let [command, link] = block[..] else {
                panic!("{identity} has a command and a link: {text}");
            };
            let command_token = command
                .strip_prefix(
                    "cargo run --release -p aula -- join --url ws://127.0.0.1:7880 --token ",
                )
                .unwrap_or_else(|| panic!("a join command: {command}"));
            let link_token = link
                .strip_prefix("http://127.0.0.1:7880/?token=")
                .unwrap_or_else(|| panic!("a browser link: {link}"));
            assert_eq!(command_token, link_token);
            let claims = Claims::verify(
                link_token,
                |key| (key == DEV_API_KEY).then_some(DEV_API_SECRET),
                now,
            )
            .expect("the dev key signed it");
            assert_eq!(claims.room, "demo");
            assert_eq!(claims.sub, identity);
        }
    }
}
