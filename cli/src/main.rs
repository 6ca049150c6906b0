//! `aula`: mint tokens, join rooms, run a class through the server API and load-test a server
//! from the command line.

mod api_client;
mod class;
mod classroom_log;
mod devices;
mod join;
mod join_publish;
mod load_test;
mod load_test_class;
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
    /// Run a class through the server API: settings, lobby, stage, moderation, chat history,
    /// attendance. Exits 1 with `error: <code>: <message>` when the server refuses.
    Class(class::ClassArgs),
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
        Command::Class(args) => class::run(args),
        Command::Devices(args) => devices::run(args),
        Command::LoadTest(args) => load_test::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<api_client::ApiFailure>() {
            Some(refusal @ api_client::ApiFailure::Refused { .. }) => {
                eprintln!("error: {refusal}");
                std::process::ExitCode::from(class::EXIT_REFUSED)
            }
            Some(failure) => {
                eprintln!("aula: {failure}");
                std::process::ExitCode::from(class::EXIT_UNREACHABLE)
            }
            None => {
                eprintln!("aula: {err:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
