//! The server API for backends: JSON over HTTP under `/api/v1`, documented in `docs/api.md`
//! and `docs/openapi.yaml`.
//!
//! Every request carries `Authorization: Bearer <server token>`: a JWT signed (HS256) with an
//! API secret, whose header's `kid` names the API key, like an access token, but with the
//! claims of [`ApiClaims`] (`"api": true` and no participant). An access token is never
//! accepted here, and a server token never joins a room.

#[cfg(feature = "signing")]
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::classroom::{ChatMessage, ClassroomState, PermissionsPatch, RoomSettings};
use crate::signal::{ErrorCode, MediaKind, ParticipantInfo};
#[cfg(feature = "signing")]
use crate::token::MAX_TOKEN_BYTES;
use crate::token::{TokenError, MAX_NAME_BYTES};

/// The path every server API route starts with.
pub const API_PREFIX: &str = "/api/v1";
/// Longest lifetime of a server token the server accepts, seconds.
pub const MAX_API_TOKEN_TTL_SECS: u64 = 24 * 3600;
/// How far in the future a token's `iat` may lie (clock skew between backend and server).
pub const CLOCK_SKEW_SECS: u64 = 60;

/// The claims of a server-API token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiClaims {
    /// The API key that signed the token.
    pub iss: String,
    /// Always `true`: marks a server token (access tokens have no such claim).
    pub api: bool,
    /// Limits the token to one room, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

impl ApiClaims {
    /// Claims for a token of `api_key` valid for `ttl_secs` from `now_unix`, for every room.
    pub fn new(api_key: &str, now_unix: u64, ttl_secs: u64) -> Self {
        Self {
            iss: api_key.to_owned(),
            api: true,
            room: None,
            iat: now_unix,
            exp: now_unix.saturating_add(ttl_secs),
        }
    }

    /// Checks the claims are well-formed and valid at `now_unix`.
    pub fn validate(&self, now_unix: u64) -> Result<(), TokenError> {
        if !self.api {
            return Err(TokenError::InvalidClaims("not a server token".into()));
        }
        if self.iss.is_empty() || self.iss.len() > MAX_NAME_BYTES {
            return Err(TokenError::InvalidClaims("bad issuer".into()));
        }
        if self.exp <= self.iat || self.exp - self.iat > MAX_API_TOKEN_TTL_SECS {
            return Err(TokenError::InvalidClaims(format!(
                "a server token lives at most {MAX_API_TOKEN_TTL_SECS} s"
            )));
        }
        if self.iat > now_unix.saturating_add(CLOCK_SKEW_SECS) {
            return Err(TokenError::InvalidClaims("issued in the future".into()));
        }
        if now_unix >= self.exp {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// Whether the token may act on `room`.
    pub fn allows_room(&self, room: &str) -> bool {
        self.room.as_deref().is_none_or(|r| r == room)
    }

    /// Signs the claims into a compact JWT. Needs the `signing` feature.
    #[cfg(feature = "signing")]
    pub fn sign(&self, api_secret: &str) -> Result<String, TokenError> {
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

    /// Verifies a server token and returns its claims. `secret_for` maps an API key to its
    /// secret. Needs the `signing` feature.
    #[cfg(feature = "signing")]
    pub fn verify<'a>(
        token: &str,
        secret_for: impl Fn(&str) -> Option<&'a str>,
        now_unix: u64,
    ) -> Result<ApiClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed("token longer than 8 KiB".into()));
        }
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
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<ApiClaims>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed(e.to_string()),
        })?
        .claims;
        if claims.iss != key {
            return Err(TokenError::InvalidClaims(
                "issuer does not match the key id".into(),
            ));
        }
        claims.validate(now_unix)?;
        Ok(claims)
    }
}

/// A refused API request: the HTTP status says the class of failure, the body says which.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, for programs (the same codes as the signaling protocol).
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

/// `POST /api/v1/rooms`: creates a room (or changes an existing room's settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRoom {
    /// The room's name, as tokens name it.
    pub name: String,
    /// Its settings (defaults for absent fields).
    #[serde(default)]
    pub settings: RoomSettings,
}

/// A room as the API lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// The room's name.
    pub name: String,
    /// The id of the room's current incarnation while someone is in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The class number: 1 for the room's first class, one more after each end.
    pub class: u64,
    /// Participants in the room now (lobby included).
    pub participants: usize,
    /// The room's settings.
    pub settings: RoomSettings,
    /// Whether it is locked.
    pub locked: bool,
}

/// A room in detail: its classroom state and who is in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: RoomSummary,
    /// The classroom state, while the room is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classroom: Option<ClassroomState>,
    /// Everyone in the room (lobby included), with their tracks.
    #[serde(default)]
    pub participant_list: Vec<ParticipantInfo>,
}

/// `POST .../participants/{identity}/mute`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteRequest {
    /// Which kind of track (default: audio).
    #[serde(default = "default_audio")]
    pub kind: MediaKind,
}

fn default_audio() -> MediaKind {
    MediaKind::Audio
}

/// `POST .../mute-all`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteAllRequest {
    /// Which kind of track (default: audio).
    #[serde(default = "default_audio")]
    pub kind: MediaKind,
    /// Whether students may unmute themselves afterwards (unchanged when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unmute: Option<bool>,
}

/// `POST .../deny` and `.../remove`: the reason shown to the participant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonRequest {
    /// Shown to the participant.
    #[serde(default)]
    pub reason: String,
}

/// `PATCH .../participants/{identity}/permissions`.
pub type PermissionsRequest = PermissionsPatch;

/// `POST .../lock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRequest {
    /// `true` to lock (default), `false` to unlock.
    #[serde(default = "default_true")]
    pub locked: bool,
}

fn default_true() -> bool {
    true
}

/// `POST .../chat`: a system message from the backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemMessageRequest {
    /// The text.
    pub text: String,
    /// For a message to one participant only, its identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// `GET .../chat`: one page of chat history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatPage {
    /// Messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Whether older messages exist.
    pub more: bool,
}

/// One visit of a participant: from joining to leaving.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceVisit {
    /// When it joined, ms since the Unix epoch.
    pub joined: u64,
    /// When it left (absent while it is still in the room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<u64>,
    /// Why it left, when it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<crate::signal::LeaveReason>,
}

/// One participant's attendance in a class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceRecord {
    /// Identity.
    pub identity: String,
    /// Display name (the latest seen).
    pub name: String,
    /// Role from the token.
    pub role: crate::token::Role,
    /// Each visit, in order.
    pub visits: Vec<AttendanceVisit>,
    /// Time in the room (lobby included), ms.
    pub present_ms: u64,
    /// Time waiting in the lobby, ms.
    pub lobby_ms: u64,
    /// Time on stage, ms.
    pub stage_ms: u64,
    /// How often it went on stage.
    pub stage_turns: u32,
}

/// `GET .../attendance`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendance {
    /// The room.
    pub room: String,
    /// The class number.
    pub class: u64,
    /// One record per identity, in order of first join.
    pub participants: Vec<AttendanceRecord>,
}

#[cfg(all(test, feature = "signing"))]
mod tests {
    use super::*;

    fn secret_for(key: &str) -> Option<&'static str> {
        (key == "k").then_some("s")
    }

    #[test]
    fn server_tokens_verify_and_access_tokens_do_not() {
        let token = ApiClaims::new("k", 1_000, 60).sign("s").unwrap();
        let claims = ApiClaims::verify(&token, secret_for, 1_010).unwrap();
        assert!(claims.api && claims.allows_room("any"));
        let access = crate::Claims::new("k", "r", "t1", crate::Role::Teacher, 1_000, 60)
            .sign("s")
            .unwrap();
        assert!(ApiClaims::verify(&access, secret_for, 1_010).is_err());
        // And a server token is no access token.
        assert!(crate::Claims::verify(&token, secret_for, 1_010).is_err());
    }

    #[test]
    fn expired_future_long_lived_and_forged_server_tokens_are_refused() {
        let token = ApiClaims::new("k", 1_000, 60).sign("s").unwrap();
        assert_eq!(
            ApiClaims::verify(&token, secret_for, 1_060),
            Err(TokenError::Expired)
        );
        assert!(ApiClaims::verify(&token, secret_for, 1_000 - CLOCK_SKEW_SECS - 1).is_err());
        let long = ApiClaims::new("k", 1_000, MAX_API_TOKEN_TTL_SECS + 1)
            .sign("s")
            .unwrap();
        assert!(ApiClaims::verify(&long, secret_for, 1_001).is_err());
        let forged = ApiClaims::new("k", 1_000, 60).sign("other").unwrap();
        assert_eq!(
            ApiClaims::verify(&forged, secret_for, 1_001),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn room_scoped_tokens_allow_their_room_only() {
        let mut claims = ApiClaims::new("k", 1_000, 60);
        claims.room = Some("r1".into());
        assert!(claims.allows_room("r1"));
        assert!(!claims.allows_room("r2"));
    }
}
