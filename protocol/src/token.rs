//! Access tokens: JWTs signed (HS256) with the server's API secret.
//!
//! The header's `kid` names the API key, so a server with several keys knows which secret to
//! verify with; the claims say which room the holder may join, as whom, and with what grants.
//! Signing and verifying ([`Claims::sign`], [`Claims::verify`]) need the `signing` feature;
//! reading a token's claims without verifying it ([`Claims::peek_unverified`], what a client
//! does) does not.

use base64::Engine as _;
#[cfg(feature = "signing")]
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::classroom::RoomSettings;
use crate::signal::TrackSource;

/// Longest identity, room name or API key accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Longest display name accepted, in bytes.
pub const MAX_DISPLAY_NAME_BYTES: usize = 256;
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated between a token's issuer and the verifier when checking `nbf` and
/// `iat`: a token becomes valid up to this many seconds before its `nbf`, and may say it was
/// issued up to this many seconds in the verifier's future. Expiry gets no leeway.
pub const CLOCK_SKEW_LEEWAY_SECS: u64 = 60;

/// What a participant is in the classroom. The role sets the default [`Grants`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// Runs the class: publishes everything, writes on the board, administers the room.
    Teacher,
    /// Takes part: publishes camera and microphone, watches everyone.
    Student,
    /// Watches only.
    Observer,
}

impl Role {
    /// The grants a token for this role carries unless the issuer sets others.
    pub fn default_grants(self) -> Grants {
        match self {
            Role::Teacher => Grants {
                publish: vec![
                    TrackSource::Camera,
                    TrackSource::Microphone,
                    TrackSource::ScreenShare,
                ],
                subscribe: true,
                whiteboard_write: true,
                room_admin: true,
            },
            Role::Student => Grants {
                publish: vec![TrackSource::Camera, TrackSource::Microphone],
                subscribe: true,
                whiteboard_write: false,
                room_admin: false,
            },
            Role::Observer => Grants {
                publish: Vec::new(),
                subscribe: true,
                whiteboard_write: false,
                room_admin: false,
            },
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Teacher => "teacher",
            Role::Student => "student",
            Role::Observer => "observer",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "teacher" => Ok(Role::Teacher),
            "student" => Ok(Role::Student),
            "observer" => Ok(Role::Observer),
            other => Err(TokenError::InvalidClaims(format!(
                "unknown role {other:?} (expected teacher, student or observer)"
            ))),
        }
    }
}

/// What the holder of a token may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// Sources the holder may publish.
    #[serde(default)]
    pub publish: Vec<TrackSource>,
    /// Whether the holder may receive others' tracks.
    #[serde(default)]
    pub subscribe: bool,
    /// Whether the holder may change the whiteboard.
    #[serde(default)]
    pub whiteboard_write: bool,
    /// Whether the holder may administer the room (lock the board, remove participants).
    #[serde(default)]
    pub room_admin: bool,
}

impl Grants {
    /// Whether these grants allow publishing `source`.
    pub fn can_publish(&self, source: TrackSource) -> bool {
        self.publish.contains(&source)
    }
}

/// The claims of an Aula access token.
///
/// `grants` may be left out of a token: the role's [`Role::default_grants`] apply then. Grants
/// given in the token replace the defaults whole (a boolean left out of them is `false`, a
/// missing `publish` is empty), so a backend that writes grants says everything they allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ClaimsOnTheWire")]
pub struct Claims {
    /// The API key that signed the token.
    pub iss: String,
    /// The participant's identity: stable across sessions, unique within a room.
    pub sub: String,
    /// Display name shown to others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The one room this token admits to.
    pub room: String,
    /// The participant's role.
    pub role: Role,
    /// What the participant may do.
    pub grants: Grants,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Not valid before, seconds since the Unix epoch; unset means valid from `iat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// The room's classroom settings, for a room this token opens (or one that runs with
    /// the defaults so far). Absent: a plain call, or whatever the room already runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classroom: Option<RoomSettings>,
}

/// [`Claims`] as a token carries them: `grants` optional.
#[derive(Deserialize)]
struct ClaimsOnTheWire {
    iss: String,
    sub: String,
    #[serde(default)]
    name: Option<String>,
    room: String,
    role: Role,
    #[serde(default)]
    grants: Option<Grants>,
    iat: u64,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    classroom: Option<RoomSettings>,
}

impl From<ClaimsOnTheWire> for Claims {
    fn from(wire: ClaimsOnTheWire) -> Self {
        Self {
            iss: wire.iss,
            sub: wire.sub,
            name: wire.name,
            room: wire.room,
            grants: wire.grants.unwrap_or_else(|| wire.role.default_grants()),
            role: wire.role,
            iat: wire.iat,
            exp: wire.exp,
            nbf: wire.nbf,
            classroom: wire.classroom,
        }
    }
}

/// How [`Claims::verify_with`] judges a token's times, beyond its signature and claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimePolicy {
    /// Clock skew tolerated on `nbf` and `iat` (see [`CLOCK_SKEW_LEEWAY_SECS`]).
    pub leeway_secs: u64,
    /// Longest validity window accepted: `exp` minus the later of `iat` and `nbf`. `None`
    /// accepts any.
    pub max_lifetime_secs: Option<u64>,
}

impl Default for TimePolicy {
    fn default() -> Self {
        Self {
            leeway_secs: CLOCK_SKEW_LEEWAY_SECS,
            max_lifetime_secs: None,
        }
    }
}

/// Why a token could not be made or was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is past its expiry.
    #[error("token expired")]
    Expired,
    /// The token's `nbf` (or its `iat`) lies in the future, beyond the tolerated clock skew.
    #[error("token not valid yet: {0}")]
    NotYetValid(String),
    /// The token is valid for longer than the verifier accepts.
    #[error("token valid for {lifetime_secs} s, longer than the {max_secs} s this server accepts")]
    LifetimeTooLong {
        /// `exp` minus the later of `iat` and `nbf`.
        lifetime_secs: u64,
        /// The verifier's cap.
        max_secs: u64,
    },
    /// The signature does not verify with the secret of the key it names.
    #[error("token signature is invalid")]
    BadSignature,
    /// The token names an API key this server does not know.
    #[error("unknown API key")]
    UnknownKey,
    /// The token is not a well-formed JWT of the expected algorithm.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// A claim is missing, empty, too long or inconsistent.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
}

impl Claims {
    /// Claims for `identity` in `room` with the role's default grants, valid for `ttl_secs`
    /// from `now_unix`.
    pub fn new(
        api_key: &str,
        room: &str,
        identity: &str,
        role: Role,
        now_unix: u64,
        ttl_secs: u64,
    ) -> Self {
        Self {
            iss: api_key.to_owned(),
            sub: identity.to_owned(),
            name: None,
            room: room.to_owned(),
            role,
            grants: role.default_grants(),
            iat: now_unix,
            nbf: None,
            exp: now_unix.saturating_add(ttl_secs),
            classroom: None,
        }
    }

    /// Checks the claims are within bounds; called both when signing and when verifying.
    pub fn validate(&self) -> Result<(), TokenError> {
        check_name("identity (sub)", &self.sub, MAX_NAME_BYTES)?;
        check_name("room", &self.room, MAX_NAME_BYTES)?;
        check_name("api key (iss)", &self.iss, MAX_NAME_BYTES)?;
        if let Some(name) = &self.name {
            if name.len() > MAX_DISPLAY_NAME_BYTES {
                return Err(TokenError::InvalidClaims(format!(
                    "display name longer than {MAX_DISPLAY_NAME_BYTES} bytes"
                )));
            }
        }
        if let Some(settings) = &self.classroom {
            settings
                .validate()
                .map_err(|e| TokenError::InvalidClaims(format!("classroom: {e}")))?;
        }
        if self.exp <= self.iat {
            return Err(TokenError::InvalidClaims(
                "expiry is not after issue time".into(),
            ));
        }
        if self.nbf.is_some_and(|nbf| nbf >= self.exp) {
            return Err(TokenError::InvalidClaims(
                "expiry is not after the not-before time".into(),
            ));
        }
        Ok(())
    }

    /// When the token starts being valid: the later of `iat` and `nbf`.
    pub fn valid_from(&self) -> u64 {
        self.nbf.map_or(self.iat, |nbf| nbf.max(self.iat))
    }

    /// Checks the token's times against `now_unix` under `policy`: expired (no leeway), not
    /// valid yet (`nbf` or `iat` in the future beyond the leeway), or valid for longer than the
    /// policy's cap.
    pub fn check_times(&self, now_unix: u64, policy: &TimePolicy) -> Result<(), TokenError> {
        if now_unix >= self.exp {
            return Err(TokenError::Expired);
        }
        let horizon = now_unix.saturating_add(policy.leeway_secs);
        if let Some(nbf) = self.nbf {
            if nbf > horizon {
                return Err(TokenError::NotYetValid(format!(
                    "nbf is {} s ahead",
                    nbf - now_unix
                )));
            }
        }
        if self.iat > horizon {
            return Err(TokenError::NotYetValid(format!(
                "issued {} s in the future",
                self.iat - now_unix
            )));
        }
        if let Some(max_secs) = policy.max_lifetime_secs {
            let lifetime_secs = self.exp - self.valid_from();
            if lifetime_secs > max_secs {
                return Err(TokenError::LifetimeTooLong {
                    lifetime_secs,
                    max_secs,
                });
            }
        }
        Ok(())
    }

    /// Signs the claims with `api_secret` into a compact JWT. Needs the `signing` feature.
    #[cfg(feature = "signing")]
    pub fn sign(&self, api_secret: &str) -> Result<String, TokenError> {
        self.validate()?;
        if api_secret.is_empty() {
            return Err(TokenError::InvalidClaims("empty API secret".into()));
        }
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.iss.clone());
        jsonwebtoken::encode(
            &header,
            self,
            &EncodingKey::from_secret(api_secret.as_bytes()),
        )
        .map_err(|e| TokenError::Malformed(e.to_string()))
    }

    /// Reads the claims of `token` without verifying it. For clients, which do not hold the
    /// secret, to learn the room and identity a token is for; never for authorization.
    ///
    /// The token must be a compact JWT (three base64url parts without padding) whose header is
    /// a JSON object naming its `alg` and whose payload is the claims; the signature is not
    /// looked at.
    pub fn peek_unverified(token: &str) -> Result<Claims, TokenError> {
        check_token_length(token)?;
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(
                "not a JWT: expected three parts separated by dots".into(),
            ));
        };
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&base64url("header", header)?)
                .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
        if !header.get("alg").is_some_and(serde_json::Value::is_string) {
            return Err(TokenError::Malformed("header names no alg".into()));
        }
        serde_json::from_slice(&base64url("claims", payload)?)
            .map_err(|e| TokenError::Malformed(format!("claims: {e}")))
    }

    /// Verifies `token` and returns its claims. `secret_for` maps an API key to its secret.
    /// Times are checked against `now_unix` under the default [`TimePolicy`]: expiry with no
    /// leeway, `nbf` and `iat` with [`CLOCK_SKEW_LEEWAY_SECS`], no lifetime cap. Needs the
    /// `signing` feature.
    #[cfg(feature = "signing")]
    pub fn verify<'a>(
        token: &str,
        secret_for: impl Fn(&str) -> Option<&'a str>,
        now_unix: u64,
    ) -> Result<Claims, TokenError> {
        Self::verify_with(token, secret_for, now_unix, &TimePolicy::default())
    }

    /// [`verify`](Self::verify) with the token's times judged by `policy`.
    #[cfg(feature = "signing")]
    pub fn verify_with<'a>(
        token: &str,
        secret_for: impl Fn(&str) -> Option<&'a str>,
        now_unix: u64,
        policy: &TimePolicy,
    ) -> Result<Claims, TokenError> {
        check_token_length(token)?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Malformed(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = header
            .kid
            .ok_or_else(|| TokenError::Malformed("header has no kid".into()))?;
        let secret = secret_for(&key).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the caller's clock, so tests can use virtual time.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed(e.to_string()),
        })?;
        let claims = data.claims;
        if claims.iss != key {
            return Err(TokenError::InvalidClaims(
                "issuer does not match the key id".into(),
            ));
        }
        claims.validate()?;
        claims.check_times(now_unix, policy)?;
        Ok(claims)
    }
}

fn check_token_length(token: &str) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("token longer than 8 KiB".into()));
    }
    Ok(())
}

/// Decodes one part of a compact JWT (base64url without padding, RFC 7515).
fn base64url(what: &str, part: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| TokenError::Malformed(format!("{what}: {e}")))
}

fn check_name(what: &str, value: &str, max: usize) -> Result<(), TokenError> {
    if value.trim().is_empty() {
        return Err(TokenError::InvalidClaims(format!("{what} is empty")));
    }
    if value.len() > max {
        return Err(TokenError::InvalidClaims(format!(
            "{what} longer than {max} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(TokenError::InvalidClaims(format!(
            "{what} contains control characters"
        )));
    }
    Ok(())
}

/// Seconds since the Unix epoch by the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact JWT made by hand: `header` and `claims` as JSON, a signature nobody checks.
    fn unsigned_token(header: &str, claims: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(claims))
    }

    #[test]
    fn peeking_reads_the_claims_without_the_secret() {
        let claims = Claims::new("devkey", "r1", "t1", Role::Student, 1_000, 60);
        let json = serde_json::to_string(&claims).unwrap();
        let token = unsigned_token(r#"{"alg":"HS256","typ":"JWT","kid":"devkey"}"#, &json);
        assert_eq!(Claims::peek_unverified(&token).unwrap(), claims);
    }

    #[test]
    fn peeking_refuses_what_is_not_a_jwt_of_claims() {
        let claims =
            serde_json::to_string(&Claims::new("devkey", "r1", "t1", Role::Student, 1_000, 60))
                .unwrap();
        let good = unsigned_token(r#"{"alg":"HS256"}"#, &claims);
        let (header, rest) = good.split_once('.').unwrap();
        let bad = [
            "not-a-token".to_owned(),
            "a.b".to_owned(),
            format!("{good}.extra"),
            // Padding is not base64url as JWTs use it.
            format!("{header}=.{rest}"),
            unsigned_token(r#"{"typ":"JWT"}"#, &claims),
            unsigned_token("[1]", &claims),
            unsigned_token(r#"{"alg":"HS256"}"#, r#"{"sub":"t1"}"#),
            unsigned_token(r#"{"alg":"HS256"}"#, "not json"),
            format!("{}.{}", "a".repeat(MAX_TOKEN_BYTES), rest),
        ];
        for token in bad {
            assert!(
                matches!(
                    Claims::peek_unverified(&token),
                    Err(TokenError::Malformed(_))
                ),
                "{token:.80}"
            );
        }
    }

    #[cfg(feature = "signing")]
    mod signing {
        use super::*;

        fn secret_for(key: &str) -> Option<&'static str> {
            (key == "devkey").then_some("devsecret")
        }

        #[test]
        fn signed_token_verifies_to_the_same_claims() {
            let claims = Claims::new("devkey", "r1", "t1", Role::Teacher, 1_000, 3_600);
            let token = claims.sign("devsecret").unwrap();
            assert_eq!(Claims::verify(&token, secret_for, 2_000).unwrap(), claims);
        }

        #[test]
        fn expired_wrong_secret_unknown_key_and_garbage_are_refused() {
            let claims = Claims::new("devkey", "r1", "t1", Role::Student, 1_000, 60);
            let token = claims.sign("devsecret").unwrap();
            assert_eq!(
                Claims::verify(&token, secret_for, 1_060),
                Err(TokenError::Expired)
            );
            let forged = claims.sign("othersecret").unwrap();
            assert_eq!(
                Claims::verify(&forged, secret_for, 1_001),
                Err(TokenError::BadSignature)
            );
            let other_key = Claims::new("k2", "r1", "t1", Role::Student, 1_000, 60)
                .sign("x")
                .unwrap();
            assert_eq!(
                Claims::verify(&other_key, secret_for, 1_001),
                Err(TokenError::UnknownKey)
            );
            assert!(matches!(
                Claims::verify("not.a.jwt", secret_for, 1_001),
                Err(TokenError::Malformed(_))
            ));
        }

        #[test]
        fn not_before_and_future_issue_times_are_refused_beyond_the_leeway() {
            let leeway = CLOCK_SKEW_LEEWAY_SECS;
            let mut claims = Claims::new("devkey", "r1", "t1", Role::Student, 1_000, 3_600);
            claims.nbf = Some(2_000);
            let token = claims.sign("devsecret").unwrap();
            assert!(matches!(
                Claims::verify(&token, secret_for, 1_500),
                Err(TokenError::NotYetValid(_))
            ));
            assert!(matches!(
                Claims::verify(&token, secret_for, 2_000 - leeway - 1),
                Err(TokenError::NotYetValid(_))
            ));
            assert_eq!(
                Claims::verify(&token, secret_for, 2_000 - leeway).unwrap(),
                claims,
                "within the clock-skew allowance"
            );
            assert!(Claims::verify(&token, secret_for, 2_500).is_ok());

            let future = Claims::new("devkey", "r1", "t1", Role::Student, 10_000, 600)
                .sign("devsecret")
                .unwrap();
            assert!(matches!(
                Claims::verify(&future, secret_for, 10_000 - leeway - 1),
                Err(TokenError::NotYetValid(_))
            ));
            assert!(Claims::verify(&future, secret_for, 10_000 - leeway).is_ok());
        }

        #[test]
        fn the_lifetime_cap_counts_from_the_later_of_iat_and_nbf() {
            let policy = TimePolicy {
                max_lifetime_secs: Some(3_600),
                ..TimePolicy::default()
            };
            let day = Claims::new("devkey", "r1", "t1", Role::Student, 1_000, 86_400)
                .sign("devsecret")
                .unwrap();
            assert_eq!(
                Claims::verify_with(&day, secret_for, 1_001, &policy),
                Err(TokenError::LifetimeTooLong {
                    lifetime_secs: 86_400,
                    max_secs: 3_600
                })
            );
            assert!(Claims::verify(&day, secret_for, 1_001).is_ok(), "no cap");
            // Minted a week ahead for a one-hour class: valid for an hour.
            let mut class = Claims::new("devkey", "r1", "t1", Role::Student, 1_000, 0);
            class.nbf = Some(605_800);
            class.exp = 605_800 + 3_600;
            let class = class.sign("devsecret").unwrap();
            assert!(Claims::verify_with(&class, secret_for, 605_800, &policy).is_ok());
        }

        #[test]
        fn an_empty_validity_window_cannot_be_signed() {
            let mut claims = Claims::new("devkey", "r1", "t1", Role::Student, 1_000, 60);
            claims.nbf = Some(1_060);
            assert!(matches!(
                claims.sign("devsecret"),
                Err(TokenError::InvalidClaims(_))
            ));
        }

        #[test]
        fn empty_identity_cannot_be_signed() {
            let claims = Claims::new("devkey", "r1", " ", Role::Student, 1_000, 60);
            assert!(matches!(
                claims.sign("devsecret"),
                Err(TokenError::InvalidClaims(_))
            ));
        }

        #[test]
        fn a_token_without_grants_verifies_with_its_roles_defaults() {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("devkey".into());
            for role in [Role::Teacher, Role::Student, Role::Observer] {
                let payload = serde_json::json!({
                    "iss": "devkey", "sub": "s1", "room": "r1", "role": role,
                    "iat": 1_000, "exp": 2_000,
                });
                let token = jsonwebtoken::encode(
                    &header,
                    &payload,
                    &EncodingKey::from_secret(b"devsecret"),
                )
                .unwrap();
                let claims = Claims::verify(&token, secret_for, 1_500).unwrap();
                assert_eq!(claims.grants, role.default_grants(), "{role}");
            }
        }

        #[test]
        fn a_signed_token_peeks_to_its_claims() {
            let claims = Claims::new("devkey", "r1", "t1", Role::Teacher, 1_000, 3_600);
            let token = claims.sign("devsecret").unwrap();
            assert_eq!(Claims::peek_unverified(&token).unwrap(), claims);
        }
    }

    #[test]
    fn grants_left_out_come_from_the_role_and_given_grants_replace_them_whole() {
        let base = r#""iss":"k","sub":"s1","room":"r1","iat":1,"exp":2"#;
        let without: Claims =
            serde_json::from_str(&format!(r#"{{{base},"role":"student"}}"#)).unwrap();
        assert_eq!(without.grants, Role::Student.default_grants());
        let given: Claims = serde_json::from_str(&format!(
            r#"{{{base},"role":"teacher","grants":{{"publish":["microphone"]}}}}"#
        ))
        .unwrap();
        assert_eq!(
            given.grants,
            Grants {
                publish: vec![TrackSource::Microphone],
                subscribe: false,
                whiteboard_write: false,
                room_admin: false,
            }
        );
        // Serializing writes grants out, so a round trip keeps them.
        let json = serde_json::to_string(&without).unwrap();
        assert!(json.contains("\"grants\""));
        assert_eq!(serde_json::from_str::<Claims>(&json).unwrap(), without);
    }

    #[test]
    fn roles_parse_and_carry_default_grants() {
        let student: Role = "student".parse().unwrap();
        assert!(student.default_grants().can_publish(TrackSource::Camera));
        assert!(!student.default_grants().whiteboard_write);
        assert!(Role::Observer.default_grants().publish.is_empty());
        assert!("admin".parse::<Role>().is_err());
    }
}
