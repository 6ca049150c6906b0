//! Media arriving on a publisher connection must be of the kind its announcement says: a
//! track announced as a microphone carries audio, a camera or screen share video. A track that
//! contradicts its announcement is refused: logged, counted, the client told with a typed
//! error (`track_kind_mismatch`), and never forwarded.

use aula_protocol::{ErrorCode, MediaKind, ParticipantId, ServerMessage, TrackInfo};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_remote::TrackRemote;

use crate::metrics::Metrics;
use crate::outbox::Outbox;

/// An arriving track whose media kind contradicts its announcement.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "track {cid} ({sid}) was announced as {announced_source} ({announced}) but its media is {arrived}; \
     it is not forwarded: announce it again with the right source"
)]
pub struct KindMismatch {
    /// The client's track id.
    pub cid: String,
    /// The server's track id.
    pub sid: String,
    /// The announced source, as on the wire.
    pub announced_source: String,
    /// The kind the announcement implies.
    pub announced: MediaKind,
    /// What arrived (`audio`, `video`, or `unspecified`).
    pub arrived: String,
}

/// The protocol's name for an arriving track's kind; `None` when the connection did not say.
pub fn media_kind(kind: RtpCodecKind) -> Option<MediaKind> {
    match kind {
        RtpCodecKind::Audio => Some(MediaKind::Audio),
        RtpCodecKind::Video => Some(MediaKind::Video),
        _ => None,
    }
}

/// Checks that media of kind `arrived` fits the announced `info` (client id `cid`). A kind the
/// connection did not name does not fit anything.
pub fn check(cid: &str, info: &TrackInfo, arrived: RtpCodecKind) -> Result<(), KindMismatch> {
    let announced = info.source.kind();
    if media_kind(arrived) == Some(announced) && info.kind == announced {
        return Ok(());
    }
    Err(KindMismatch {
        cid: cid.to_owned(),
        sid: info.sid.to_string(),
        announced_source: serde_json::to_value(info.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        announced,
        arrived: media_kind(arrived).map_or_else(|| "unspecified".to_owned(), |k| k.to_string()),
    })
}

/// Whether the arriving `remote` track may be published as the announced `info`; when not,
/// logs the mismatch, counts it in `metrics` and tells the client through `outbox`.
pub async fn admit(
    remote: &dyn TrackRemote,
    cid: &str,
    info: &TrackInfo,
    participant: &ParticipantId,
    metrics: &Metrics,
    outbox: &Outbox,
) -> bool {
    let Err(mismatch) = check(cid, info, remote.kind().await) else {
        return true;
    };
    tracing::warn!(%participant, track = %info.sid, cid, announced = %mismatch.announced, arrived = %mismatch.arrived, "track refused: its media kind contradicts the announced source");
    metrics.track_kind_mismatches.inc();
    outbox.send(ServerMessage::error(
        None,
        ErrorCode::TrackKindMismatch,
        mismatch.to_string(),
    ));
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use aula_protocol::{TrackSid, TrackSource};

    fn announced(source: TrackSource) -> TrackInfo {
        TrackInfo {
            sid: TrackSid("TR_00000007".into()),
            kind: source.kind(),
            source,
            name: String::new(),
            width: None,
            height: None,
            layers: Vec::new(),
            muted: false,
        }
    }

    #[test]
    fn media_of_the_announced_kind_passes() {
        assert!(check(
            "a",
            &announced(TrackSource::Microphone),
            RtpCodecKind::Audio
        )
        .is_ok());
        assert!(check("v", &announced(TrackSource::Camera), RtpCodecKind::Video).is_ok());
        assert!(check(
            "s",
            &announced(TrackSource::ScreenShare),
            RtpCodecKind::Video
        )
        .is_ok());
    }

    #[test]
    fn media_of_the_other_kind_is_refused_with_what_and_why() {
        let mismatch = check(
            "audio-2",
            &announced(TrackSource::Microphone),
            RtpCodecKind::Video,
        )
        .expect_err("video on a microphone");
        assert_eq!(mismatch.announced, MediaKind::Audio);
        assert_eq!(mismatch.arrived, "video");
        let text = mismatch.to_string();
        assert!(
            text.contains("audio-2") && text.contains("TR_00000007"),
            "{text}"
        );
        assert!(text.contains("microphone"), "{text}");
        assert!(check("v", &announced(TrackSource::Camera), RtpCodecKind::Audio).is_err());
        assert!(
            check(
                "v",
                &announced(TrackSource::Camera),
                RtpCodecKind::Unspecified
            )
            .is_err(),
            "a kind nobody named fits nothing"
        );
    }
}
