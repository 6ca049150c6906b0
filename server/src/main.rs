//! `aula-server`: signaling and SFU for Aula classrooms.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, Role};
use aula_server::{Server, ServerConfig, DEV_API_KEY, DEV_API_SECRET};
use clap::Parser;

/// Aula signaling server and SFU.
#[derive(Parser, Debug)]
#[command(name = "aula-server", version, about)]
struct Args {
    /// HTTP/WebSocket listen address.
    #[arg(long, env = "AULA_LISTEN", default_value = "127.0.0.1:7880")]
    listen: SocketAddr,
    /// The single UDP port for all media (on the listen address's IP).
    #[arg(long, env = "AULA_RTC_PORT", default_value_t = 7881)]
    rtc_port: u16,
    /// IP address announced to clients for media (set it behind NAT or in a container).
    #[arg(long, env = "AULA_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// API key tokens are signed with.
    #[arg(long, env = "AULA_API_KEY")]
    api_key: Option<String>,
    /// API secret tokens are signed with.
    #[arg(long, env = "AULA_API_SECRET", hide_env_values = true)]
    api_secret: Option<String>,
    /// Development mode: key `devkey`, secret `devsecret`, readable logs.
    #[arg(long, env = "AULA_DEV")]
    dev: bool,
    /// Log format: json (default) or text (default in --dev).
    #[arg(long, env = "AULA_LOG_FORMAT")]
    log_format: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format.as_deref(), args.dev)?;
    let keys = match (args.dev, args.api_key, args.api_secret) {
        (_, Some(key), Some(secret)) => HashMap::from([(key, secret)]),
        (true, None, None) => {
            println!("dev mode: API key {DEV_API_KEY}, API secret {DEV_API_SECRET}");
            HashMap::from([(DEV_API_KEY.to_owned(), DEV_API_SECRET.to_owned())])
        }
        (_, Some(_), None) | (_, None, Some(_)) => {
            bail!("--api-key and --api-secret must be given together")
        }
        (false, None, None) => {
            bail!("no API key: pass --api-key and --api-secret (or AULA_API_KEY/AULA_API_SECRET), or --dev")
        }
    };
    let config = ServerConfig {
        listen: args.listen,
        rtc_port: args.rtc_port,
        public_ip: args.public_ip,
        keys,
    };
    let server = Server::start(config).await.context("starting the server")?;
    println!(
        "aula-server listening on {} (signaling ws://{}/rtc, media udp {})",
        server.http_addr(),
        server.http_addr(),
        server.announced_rtc_addr()
    );
    if args.dev {
        print_demo_room(&server.ws_url())?;
    }
    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// In dev mode, prints ready-to-use tokens and join commands for the room `demo`.
fn print_demo_room(url: &str) -> anyhow::Result<()> {
    let now = unix_now();
    println!("demo room \"demo\" (tokens valid 24 h):");
    for (identity, role) in [
        ("teacher", Role::Teacher),
        ("student-1", Role::Student),
        ("student-2", Role::Student),
    ] {
        let token = Claims::new(DEV_API_KEY, "demo", identity, role, now, 24 * 3600)
            .sign(DEV_API_SECRET)
            .context("minting a demo token")?;
        println!("  {identity}: cargo run --release -p aula -- join --url {url} --token {token}");
    }
    Ok(())
}

fn init_logging(format: Option<&str>, dev: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AULA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,aula_server=info,webrtc=error,rtc=error,rtc_dtls=error,rtc_ice=error,rtc_srtp=error,rtc_interceptor=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.unwrap_or(if dev { "text" } else { "json" }) {
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
