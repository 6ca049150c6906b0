//! `aula`: mint tokens, join rooms and load-test a server from the command line.

mod devices;
mod join;
mod load_test;
mod token;

use clap::{Parser, Subcommand};

/// Aula command line.
#[derive(Parser, Debug)]
#[command(name = "aula", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print an access token.
    Token(token::TokenArgs),
    /// Join a room as a headless participant with synthetic video and audio, or this
    /// machine's camera, microphone, speaker and screen.
    Join(join::JoinArgs),
    /// List the cameras, microphones, speakers, screens and windows of this machine.
    Devices(devices::DevicesArgs),
    /// Load a running server: many participants from this process, spread over rooms, some
    /// publishing synthetic video and audio; prints what the receivers got.
    LoadTest(load_test::LoadTestArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AULA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Token(args) => token::run(args),
        Command::Join(args) => join::run(args),
        Command::Devices(args) => devices::run(args),
        Command::LoadTest(args) => load_test::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("aula: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
