//! `aula-bench`: scenario benchmarks that run a server and clients in one process on loopback.

mod e2e;

use clap::{Parser, Subcommand};

/// Aula benchmarks.
#[derive(Parser, Debug)]
#[command(name = "aula-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N participants publish synthetic video and audio; every receiver's join time, latency and
    /// frame rate.
    E2e(e2e::E2eArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AULA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.scenario {
        Scenario::E2e(args) => runtime.block_on(e2e::run(args)),
    }
}
