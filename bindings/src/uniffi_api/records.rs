//! Plain records and enums the bindings pass by value, and their conversions from the core.

use aula_core::media::{AudioFrame, FrameStamp, VideoFrame};
use aula_core::{DisconnectReason, PublishedStats, ReceivedStats, RoomEvent};
use aula_protocol::{MediaKind, ParticipantInfo, Role, TrackInfo, TrackSource};

use super::bytes::Bytes;
use super::classroom_records::{ChatMessage, ClassroomState, LeaveReason, Permissions, Placement};

/// Audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum TrackKind {
    /// Opus audio.
    Audio,
    /// H.264 video.
    Video,
    /// A kind this version of the SDK does not know.
    Unknown,
}

impl From<MediaKind> for TrackKind {
    fn from(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => TrackKind::Audio,
            MediaKind::Video => TrackKind::Video,
            _ => TrackKind::Unknown,
        }
    }
}

/// Where a track comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum TrackOrigin {
    /// A camera (or any app-supplied video of a person).
    Camera,
    /// A microphone.
    Microphone,
    /// A shared screen or window.
    ScreenShare,
    /// An origin this version of the SDK does not know.
    Unknown,
}

impl From<TrackSource> for TrackOrigin {
    fn from(source: TrackSource) -> Self {
        match source {
            TrackSource::Camera => TrackOrigin::Camera,
            TrackSource::Microphone => TrackOrigin::Microphone,
            TrackSource::ScreenShare => TrackOrigin::ScreenShare,
            _ => TrackOrigin::Unknown,
        }
    }
}

impl TrackOrigin {
    /// The core's source for a video publication, if this origin is one.
    pub(crate) fn video_source(self) -> Option<TrackSource> {
        match self {
            TrackOrigin::Camera => Some(TrackSource::Camera),
            TrackOrigin::ScreenShare => Some(TrackSource::ScreenShare),
            TrackOrigin::Microphone | TrackOrigin::Unknown => None,
        }
    }

    /// The core's source for this origin (`None` for `Unknown`).
    pub(crate) fn track_source(self) -> Option<TrackSource> {
        match self {
            TrackOrigin::Microphone => Some(TrackSource::Microphone),
            other => other.video_source(),
        }
    }
}

/// A participant's role, from their token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ParticipantRole {
    /// Runs the class.
    Teacher,
    /// Takes part.
    Student,
    /// Watches only.
    Observer,
}

impl From<Role> for ParticipantRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Teacher => ParticipantRole::Teacher,
            Role::Student => ParticipantRole::Student,
            Role::Observer => ParticipantRole::Observer,
            // Unknown future roles get the least privileged one.
            _ => ParticipantRole::Observer,
        }
    }
}

/// A published track.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Track {
    /// Server-assigned track id.
    pub sid: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Camera, microphone or screen share.
    pub origin: TrackOrigin,
    /// The publisher's label.
    pub name: String,
    /// Video width, when known.
    pub width: Option<u32>,
    /// Video height, when known.
    pub height: Option<u32>,
}

impl From<TrackInfo> for Track {
    fn from(info: TrackInfo) -> Self {
        Track {
            sid: info.sid.as_str().to_owned(),
            kind: info.kind.into(),
            origin: info.source.into(),
            name: info.name,
            width: info.width,
            height: info.height,
        }
    }
}

/// A participant as the room sees them.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Participant {
    /// Server-assigned session id.
    pub id: String,
    /// Identity from the token.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Role from the token.
    pub role: ParticipantRole,
    /// Tracks they publish.
    pub tracks: Vec<Track>,
    /// Where they are: lobby (only teachers see lobby participants), audience or stage.
    pub placement: Placement,
    /// Whether they have a hand raised.
    pub hand_raised: bool,
    /// Whether a teacher made them co-teacher (they run the class with the teachers).
    pub co_teacher: bool,
}

impl From<ParticipantInfo> for Participant {
    fn from(info: ParticipantInfo) -> Self {
        Participant {
            id: info.id.as_str().to_owned(),
            identity: info.identity,
            name: info.name,
            role: info.role.into(),
            tracks: info.tracks.into_iter().map(Track::from).collect(),
            placement: info.placement.into(),
            hand_raised: info.hand_raised,
            co_teacher: info.co_teacher,
        }
    }
}

/// State of the media connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionStatus {
    /// Being set up.
    Connecting,
    /// Media flows.
    Connected,
    /// Interrupted; may come back.
    Interrupted,
    /// Failed.
    Failed,
}

impl From<aula_core::ConnectionState> for ConnectionStatus {
    fn from(state: aula_core::ConnectionState) -> Self {
        match state {
            aula_core::ConnectionState::Connecting => ConnectionStatus::Connecting,
            aula_core::ConnectionState::Connected => ConnectionStatus::Connected,
            aula_core::ConnectionState::Interrupted => ConnectionStatus::Interrupted,
            _ => ConnectionStatus::Failed,
        }
    }
}

/// Something that happened in a room; delivered to [`super::RoomListener`]s.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum RoomUpdate {
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: Participant,
    },
    /// Someone left.
    ParticipantLeft {
        /// Their participant id.
        participant_id: String,
        /// Why, in words.
        reason: String,
        /// Why.
        cause: LeaveReason,
    },
    /// Someone published a track.
    TrackPublished {
        /// The publisher's participant id.
        participant_id: String,
        /// The track.
        track: Track,
    },
    /// Someone stopped publishing a track.
    TrackUnpublished {
        /// The publisher's participant id.
        participant_id: String,
        /// The track id.
        track_sid: String,
    },
    /// Media of a subscribed track started arriving.
    TrackSubscribed {
        /// The publisher's participant id.
        participant_id: String,
        /// The track id.
        track_sid: String,
    },
    /// The media connection changed state.
    ConnectionChanged {
        /// The new state.
        status: ConnectionStatus,
    },
    /// The connection dropped; the room is rejoining by itself.
    Reconnecting {
        /// Why, in words.
        reason: String,
    },
    /// The room rejoined after `after_ms`.
    Reconnected {
        /// How long it was away, ms.
        after_ms: u64,
    },
    /// The room is closed for this client.
    Disconnected {
        /// Why, in words.
        reason: String,
        /// Whether the app asked for it (`disconnect`).
        client_request: bool,
        /// Why: `Removed`, `Denied` and `ClassEnded` come from a teacher.
        cause: LeaveReason,
        /// What the teacher said when denying or removing this client, if anything.
        message: Option<String>,
    },
    /// Someone muted or unmuted a track (its media keeps flowing: black video, silence). A
    /// teacher may mute this client's own tracks: then `participant_id` is this client's,
    /// and the track is muted here already; unmuting it is refused unless
    /// `Permissions.unmute`.
    TrackMuted {
        /// The publisher's participant id.
        participant_id: String,
        /// The track id.
        track_sid: String,
        /// Whether it is muted now.
        muted: bool,
        /// Whether a teacher muted it.
        by_moderator: bool,
    },
    /// A teacher let this client in from the lobby: the participants, their tracks and the
    /// chat are known now (`remote_participants()`, `classroom()`). `PermissionsChanged`
    /// follows.
    Admitted,
    /// A participant's placement, raised hand or co-teacher flag changed (this client's own
    /// too).
    ParticipantUpdated {
        /// The participant as it is now.
        participant: Participant,
    },
    /// The room's classroom state changed (settings, lock, spotlight, hands, teacher present,
    /// stage count).
    ClassroomChanged {
        /// The state now.
        classroom: ClassroomState,
    },
    /// What this client may do changed (it was admitted, went on or off stage, a teacher
    /// changed it).
    PermissionsChanged {
        /// What it may do now.
        permissions: Permissions,
    },
    /// A teacher invites this client to the stage: answer with `answer_stage_invitation`.
    StageInvitation {
        /// The inviting teacher's participant id.
        from_participant_id: String,
    },
    /// (Teachers) A student answered a stage invitation.
    StageInvitationAnswered {
        /// The student's participant id.
        participant_id: String,
        /// Whether it went on stage.
        accepted: bool,
    },
    /// A chat message arrived (not this client's own, which `send_chat` returns).
    ChatReceived {
        /// The message.
        message: ChatMessage,
    },
    /// A chat message was deleted.
    ChatDeleted {
        /// Its sequence number.
        seq: u64,
    },
    /// The server ended one of this client's tracks: it left the stage, or a teacher stopped
    /// its screen share. Its encoder has stopped; publish again once permitted.
    LocalTrackEnded {
        /// The track id.
        track_sid: String,
    },
}

impl RoomUpdate {
    /// The binding's view of a core event (`None` for events the bindings do not expose).
    pub(crate) fn from_event(event: RoomEvent) -> Option<Self> {
        Some(match event {
            RoomEvent::ParticipantJoined(info) => RoomUpdate::ParticipantJoined {
                participant: info.into(),
            },
            RoomEvent::ParticipantLeft {
                participant_id,
                reason,
            } => RoomUpdate::ParticipantLeft {
                participant_id: participant_id.as_str().to_owned(),
                reason: format!("{reason:?}"),
                cause: reason.into(),
            },
            RoomEvent::TrackPublished {
                participant_id,
                track,
            } => RoomUpdate::TrackPublished {
                participant_id: participant_id.as_str().to_owned(),
                track: track.into(),
            },
            RoomEvent::TrackUnpublished {
                participant_id,
                track_sid,
            } => RoomUpdate::TrackUnpublished {
                participant_id: participant_id.as_str().to_owned(),
                track_sid: track_sid.as_str().to_owned(),
            },
            RoomEvent::TrackSubscribed {
                participant_id,
                track_sid,
            } => RoomUpdate::TrackSubscribed {
                participant_id: participant_id.as_str().to_owned(),
                track_sid: track_sid.as_str().to_owned(),
            },
            RoomEvent::ConnectionStateChanged(state) => RoomUpdate::ConnectionChanged {
                status: state.into(),
            },
            RoomEvent::Reconnecting { reason } => RoomUpdate::Reconnecting {
                reason: reason.to_string(),
            },
            RoomEvent::Reconnected { after } => RoomUpdate::Reconnected {
                after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            },
            RoomEvent::Disconnected { reason, message } => RoomUpdate::Disconnected {
                client_request: matches!(reason, DisconnectReason::ClientRequest),
                reason: reason.to_string(),
                cause: reason.into(),
                message,
            },
            RoomEvent::TrackMuted {
                participant_id,
                track_sid,
                muted,
                by_moderator,
            } => RoomUpdate::TrackMuted {
                participant_id: participant_id.0,
                track_sid: track_sid.0,
                muted,
                by_moderator,
            },
            RoomEvent::Admitted => RoomUpdate::Admitted,
            RoomEvent::ParticipantUpdated(info) => RoomUpdate::ParticipantUpdated {
                participant: info.into(),
            },
            RoomEvent::ClassroomChanged(classroom) => RoomUpdate::ClassroomChanged {
                classroom: classroom.into(),
            },
            RoomEvent::PermissionsChanged(permissions) => RoomUpdate::PermissionsChanged {
                permissions: permissions.into(),
            },
            RoomEvent::StageInvitation { from } => RoomUpdate::StageInvitation {
                from_participant_id: from.0,
            },
            RoomEvent::StageInvitationAnswered {
                participant_id,
                accepted,
            } => RoomUpdate::StageInvitationAnswered {
                participant_id: participant_id.0,
                accepted,
            },
            RoomEvent::ChatReceived(message) => RoomUpdate::ChatReceived {
                message: message.into(),
            },
            RoomEvent::ChatDeleted { seq } => RoomUpdate::ChatDeleted { seq },
            RoomEvent::LocalTrackEnded { track_sid } => RoomUpdate::LocalTrackEnded {
                track_sid: track_sid.0,
            },
            // Events a newer core adds reach the bindings once they are mapped here.
            _ => return None,
        })
    }
}

/// A frame stamp: sequence number and capture time (only the low 48 bits of the time travel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Stamp {
    /// Sequence number.
    pub sequence: u32,
    /// Capture time, µs since the Unix epoch (low 48 bits when read back from a frame).
    pub capture_time_us: u64,
}

impl From<FrameStamp> for Stamp {
    fn from(stamp: FrameStamp) -> Self {
        Stamp {
            sequence: stamp.sequence,
            capture_time_us: stamp.capture_time_us,
        }
    }
}

impl From<Stamp> for FrameStamp {
    fn from(stamp: Stamp) -> Self {
        FrameStamp {
            sequence: stamp.sequence,
            capture_time_us: stamp.capture_time_us,
        }
    }
}

/// A decoded video frame: I420, tightly packed in one buffer (Y, then U, then V).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct DecodedVideoFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width*height*3/2` bytes of I420.
    pub data: Bytes,
    /// The frame's timestamp, µs.
    pub timestamp_us: u64,
    /// The stamp drawn into the picture, if it carries an intact one.
    pub stamp: Option<Stamp>,
}

impl DecodedVideoFrame {
    /// Copies a core frame into one buffer.
    pub(crate) fn from_frame(frame: &VideoFrame, stamp: Option<FrameStamp>) -> Self {
        let mut data = Vec::with_capacity(frame.y.len() + frame.u.len() + frame.v.len());
        data.extend_from_slice(&frame.y);
        data.extend_from_slice(&frame.u);
        data.extend_from_slice(&frame.v);
        DecodedVideoFrame {
            width: frame.width,
            height: frame.height,
            data: data.into(),
            timestamp_us: frame.timestamp_us,
            stamp: stamp.map(Stamp::from),
        }
    }
}

/// Decoded audio: interleaved 16-bit PCM.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct DecodedAudioFrame {
    /// Interleaved samples.
    pub samples: Vec<i16>,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
}

impl From<&AudioFrame> for DecodedAudioFrame {
    fn from(frame: &AudioFrame) -> Self {
        DecodedAudioFrame {
            samples: frame.samples.clone(),
            sample_rate: frame.sample_rate,
            channels: frame.channels,
        }
    }
}

/// What one published track sent.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PublishedTrackStats {
    /// Track id.
    pub track_sid: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Frames handed to the network.
    pub frames_sent: u64,
    /// Bytes handed to the network.
    pub bytes_sent: u64,
    /// Keyframes sent.
    pub keyframes: u64,
    /// Average bitrate, kbit/s.
    pub bitrate_kbps: f64,
}

impl From<PublishedStats> for PublishedTrackStats {
    fn from(s: PublishedStats) -> Self {
        PublishedTrackStats {
            track_sid: s.track_sid.as_str().to_owned(),
            kind: s.kind.into(),
            frames_sent: s.frames_sent,
            bytes_sent: s.bytes_sent,
            keyframes: s.keyframes,
            bitrate_kbps: s.bitrate_kbps,
        }
    }
}

/// What one subscribed track delivered.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ReceivedTrackStats {
    /// The publisher's participant id.
    pub participant_id: String,
    /// The publisher's identity.
    pub from_identity: String,
    /// Track id.
    pub track_sid: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Video frames decoded.
    pub frames_decoded: u64,
    /// Decoded frames whose stamp was read back intact.
    pub frames_stamped_ok: u64,
    /// Median stamp-to-decode latency, ms.
    pub latency_p50_ms: f64,
    /// 95th percentile latency, ms.
    pub latency_p95_ms: f64,
    /// Freezes.
    pub freezes: u64,
    /// Keyframe requests sent.
    pub keyframe_requests: u64,
    /// Audio samples decoded (per channel).
    pub samples_decoded: u64,
    /// Mean absolute amplitude of decoded audio.
    pub audio_level: f64,
}

impl From<ReceivedStats> for ReceivedTrackStats {
    fn from(s: ReceivedStats) -> Self {
        ReceivedTrackStats {
            participant_id: s.participant_id.as_str().to_owned(),
            from_identity: s.from,
            track_sid: s.track_sid.as_str().to_owned(),
            kind: s.kind.into(),
            frames_decoded: s.frames_decoded,
            frames_stamped_ok: s.frames_stamped_ok,
            latency_p50_ms: s.latency_ms.p50,
            latency_p95_ms: s.latency_ms.p95,
            freezes: s.freezes,
            keyframe_requests: s.keyframe_requests,
            samples_decoded: s.samples_decoded,
            audio_level: s.audio_level,
        }
    }
}

/// Everything a room has sent and received so far.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct RoomStatistics {
    /// Join time, ms.
    pub join_ms: f64,
    /// Published tracks.
    pub published: Vec<PublishedTrackStats>,
    /// Subscribed tracks.
    pub received: Vec<ReceivedTrackStats>,
    /// Decoded frames the app's sinks threw on (each lost to the sink, nothing else).
    pub sink_failures: u64,
}

/// Counters of an app-fed publication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct FeedStats {
    /// Frames accepted.
    pub pushed: u64,
    /// Frames replaced or dropped before sending.
    pub dropped: u64,
}

impl From<aula_core::AppFeedStats> for FeedStats {
    fn from(s: aula_core::AppFeedStats) -> Self {
        FeedStats {
            pushed: s.pushed,
            dropped: s.dropped,
        }
    }
}

/// What happened to a pushed access unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum EncodedPushResult {
    /// Queued for sending.
    Queued,
    /// Dropped: a keyframe is awaited; send one.
    DroppedAwaitingKeyframe,
    /// Dropped: the network is behind; the next frame must be a keyframe.
    DroppedQueueFull,
}

impl From<aula_core::PushOutcome> for EncodedPushResult {
    fn from(o: aula_core::PushOutcome) -> Self {
        match o {
            aula_core::PushOutcome::Queued => EncodedPushResult::Queued,
            aula_core::PushOutcome::DroppedAwaitingKeyframe => {
                EncodedPushResult::DroppedAwaitingKeyframe
            }
            aula_core::PushOutcome::DroppedQueueFull => EncodedPushResult::DroppedQueueFull,
        }
    }
}
