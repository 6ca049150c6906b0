//! `aula token`.

use std::time::Duration;

use anyhow::Context;
use aula_protocol::api::ApiClaims;
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, Role};
use clap::Args;

/// Arguments of `aula token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// API key (the token's issuer).
    #[arg(long, env = "AULA_API_KEY")]
    api_key: String,
    /// API secret the token is signed with.
    #[arg(long, env = "AULA_API_SECRET", hide_env_values = true)]
    api_secret: String,
    /// Room the token admits to (with --server: the one room it may act on; default all).
    #[arg(long, required_unless_present = "server")]
    room: Option<String>,
    /// Participant identity.
    #[arg(long, required_unless_present = "server")]
    identity: Option<String>,
    /// Print a server token for the server API (`Authorization: Bearer ...`) instead of an
    /// access token; it lives at most 24 h.
    #[arg(long, conflicts_with_all = ["identity", "name", "role"])]
    server: bool,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// teacher, student or observer.
    #[arg(long, default_value = "student")]
    role: Role,
    /// Validity, e.g. 90s, 30m, 1h, 2d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
}

/// Parses `90s`, `30m`, `1h`, `2d` or plain seconds.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(split) => text.split_at(split),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 1h or 2d"))?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        "d" => value * 86_400,
        other => return Err(format!("unknown unit {other:?} (s, m, h or d)")),
    };
    if seconds == 0 {
        return Err("the ttl must be positive".into());
    }
    Ok(Duration::from_secs(seconds))
}

/// Prints a token.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    if args.server {
        let mut claims = ApiClaims::new(&args.api_key, unix_now(), args.ttl.as_secs());
        claims.room = args.room;
        let token = claims
            .sign(&args.api_secret)
            .context("cannot mint the server token")?;
        println!("{token}");
        return Ok(());
    }
    let (Some(room), Some(identity)) = (&args.room, &args.identity) else {
        anyhow::bail!("an access token needs --room and --identity");
    };
    let mut claims = Claims::new(
        &args.api_key,
        room,
        identity,
        args.role,
        unix_now(),
        args.ttl.as_secs(),
    );
    claims.name = args.name;
    let token = claims
        .sign(&args.api_secret)
        .context("cannot mint the token")?;
    println!("{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units_parse() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("45"), Ok(Duration::from_secs(45)));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("abc").is_err());
    }
}
