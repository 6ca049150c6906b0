//! Webhooks: the events a server POSTs to the application's backend, and their signature.
//!
//! Each delivery is one JSON [`WebhookEvent`] in the body, with two headers:
//! - [`KEY_HEADER`]: the API key whose secret signed it;
//! - [`SIGNATURE_HEADER`]: `t=<unix seconds>,v1=<hex HMAC-SHA256>` where the MAC, keyed with the
//!   API secret, covers `"<t>.<body>"`. Binding the time into the MAC lets a receiver refuse
//!   replays older than a tolerance of its choosing ([`verify_signature`]).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::signal::{LeaveReason, ParticipantInfo, RoomInfo, TrackInfo};

/// Header naming the API key whose secret signed the delivery.
pub const KEY_HEADER: &str = "Aula-Webhook-Key";
/// Header carrying the signature, `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "Aula-Signature";

/// One event delivered to a webhook endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Unique id of this event (`EV_...`); a retried delivery keeps it, so receivers can
    /// drop duplicates.
    pub id: String,
    /// When the server saw it, unix seconds.
    pub created_at: u64,
    /// The room it happened in.
    pub room: RoomInfo,
    /// What happened.
    #[serde(flatten)]
    pub kind: WebhookEventKind,
}

/// What happened, tagged by `event`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WebhookEventKind {
    /// The first participant joined and the room opened.
    RoomStarted,
    /// The last participant left and the room closed.
    RoomFinished,
    /// A participant joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// A participant left.
    ParticipantLeft {
        /// Who.
        participant: ParticipantInfo,
        /// Why.
        reason: LeaveReason,
    },
    /// A track started arriving from a participant.
    TrackPublished {
        /// The publisher's identity.
        participant_identity: String,
        /// The track.
        track: TrackInfo,
    },
    /// A track ended.
    TrackUnpublished {
        /// The publisher's identity.
        participant_identity: String,
        /// The track.
        track: TrackInfo,
    },
    /// A teacher (or the server API) let a participant in from the lobby.
    ParticipantAdmitted {
        /// Who, now in the audience or on stage.
        participant: ParticipantInfo,
    },
    /// A participant went on stage or left it.
    StageChanged {
        /// Who, with its new placement.
        participant: ParticipantInfo,
    },
    /// A teacher (or the server API) removed a participant from the class.
    ParticipantRemoved {
        /// Who.
        participant: ParticipantInfo,
    },
    /// A teacher (or the server API) ended the class.
    ClassEnded {
        /// The class number that ended.
        class: u64,
    },
}

impl WebhookEventKind {
    /// The `event` tag, as in the JSON (`participant_joined`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            WebhookEventKind::RoomStarted => "room_started",
            WebhookEventKind::RoomFinished => "room_finished",
            WebhookEventKind::ParticipantJoined { .. } => "participant_joined",
            WebhookEventKind::ParticipantLeft { .. } => "participant_left",
            WebhookEventKind::TrackPublished { .. } => "track_published",
            WebhookEventKind::TrackUnpublished { .. } => "track_unpublished",
            WebhookEventKind::ParticipantAdmitted { .. } => "participant_admitted",
            WebhookEventKind::StageChanged { .. } => "stage_changed",
            WebhookEventKind::ParticipantRemoved { .. } => "participant_removed",
            WebhookEventKind::ClassEnded { .. } => "class_ended",
        }
    }
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is not `t=<unix seconds>,v1=<hex>`.
    #[error("malformed signature header")]
    Malformed,
    /// The MAC does not match the body and time.
    #[error("signature does not match")]
    Mismatch,
    /// The signing time is further from now than the tolerance allows.
    #[error("signature time {signed_at} is outside the tolerance around {now}")]
    Stale {
        /// The time in the header.
        signed_at: u64,
        /// The receiver's time.
        now: u64,
    },
}

fn mac(secret: &str, signed_at: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(signed_at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The [`SIGNATURE_HEADER`] value for `body` signed with `secret` at `signed_at` (unix seconds).
pub fn sign(secret: &str, signed_at: u64, body: &[u8]) -> String {
    let digest = mac(secret, signed_at, body).finalize().into_bytes();
    format!("t={signed_at},v1={}", hex::encode(digest))
}

/// Checks a [`SIGNATURE_HEADER`] value against `body` and `secret`, refusing signatures made
/// more than `tolerance_secs` away from `now` (unix seconds). The comparison is constant-time.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let mut signed_at = None;
    let mut digest = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => signed_at = value.parse::<u64>().ok(),
            Some(("v1", value)) => digest = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(signed_at), Some(digest)) = (signed_at, digest) else {
        return Err(SignatureError::Malformed);
    };
    if signed_at.abs_diff(now) > tolerance_secs {
        return Err(SignatureError::Stale { signed_at, now });
    }
    mac(secret, signed_at, body)
        .verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let body = br#"{"event":"room_started"}"#;
        let header = sign("secret-1", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify_signature("secret-1", &header, body, 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify_signature("secret-2", &header, body, 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("secret-1", &header, b"{}", 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        let shifted = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify_signature("secret-1", &shifted, body, 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify_signature("secret-1", &header, body, 1_700_001_000, 300),
            Err(SignatureError::Stale { .. })
        ));
        assert_eq!(
            verify_signature("secret-1", "v1=zz", body, 1_700_000_010, 300),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn events_carry_their_tag_and_round_trip() {
        let event = WebhookEvent {
            id: "EV_1".into(),
            created_at: 5,
            room: RoomInfo {
                name: "math".into(),
                sid: "RM_1".into(),
            },
            kind: WebhookEventKind::RoomStarted,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "room_started");
        assert_eq!(json["room"]["name"], "math");
        let back: WebhookEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(event.kind.name(), "room_started");
    }
}
