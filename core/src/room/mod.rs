//! The room: one async API over signaling, the two peer connections, publications and
//! subscriptions.

mod app_source;
pub mod bandwidth;
mod classroom;
mod degradation;
mod mute;
mod peer;
mod publish;
pub mod reconnect;
mod simulcast;
mod sinks;
mod subscribe;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_protocol::signal::LeaveReason;
use aula_protocol::{
    ChatMessage, Claims, ClassroomState, ClientMessage, ErrorCode, MediaKind, ParticipantId,
    ParticipantInfo, Permissions, Placement, RoomInfo, ServerMessage, TrackInfo, TrackSid,
    TrackSource, VideoLayer, PROTOCOL_VERSION,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::RTCPeerConnectionState;

pub use app_source::{
    app_video_source, i420_from_buffer, nv12_to_i420, AppFeedStats, AppVideoFeed, AppVideoSource,
    EncodedVideoFeed, KeyframeRequestHandler, PushOutcome,
};
pub use classroom::{ChatDraft, ClassroomView, KEPT_CHAT};
pub use publish::{AudioSource, VideoSource, H264_FMTP};
pub use sinks::{AudioSink, VideoSink};

use crate::netsim::NetworkImpairment;
use crate::signal_client::{SignalClient, SignalError};
use crate::stats::{PublishedStats, ReceivedStats, RecoveryStats};
use aula_transport::nack::NackStats;
use peer::{ClientPeer, PeerEvent};
use publish::LocalPublication;
use reconnect::{ReconnectPolicy, Retry};
use subscribe::{RemoteSubscription, TrackOrigin};

/// Room failures, as the public API reports them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The server could not be reached.
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    /// The server refused the request.
    #[error("refused by the server ({code}): {message}")]
    Refused {
        /// The server's error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The token could not be read.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The call needs a state the room is not in (for example, it is disconnected).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Encoding or decoding failed.
    #[error("media: {0}")]
    Media(String),
    /// The WebRTC stack failed.
    #[error("webrtc: {0}")]
    WebRtc(String),
    /// The server did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Something that should not fail did.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<SignalError> for RoomError {
    fn from(err: SignalError) -> Self {
        match err {
            SignalError::Connect { .. } => RoomError::Unreachable(err.to_string()),
            SignalError::Refused { code, message } => RoomError::Refused { code, message },
            SignalError::Timeout(_) => RoomError::Timeout(err.to_string()),
            SignalError::Closed => RoomError::InvalidState("the room is disconnected".into()),
        }
    }
}

/// How to join.
#[derive(Clone, Debug)]
pub struct RoomOptions {
    /// Subscribe to every track in the room automatically (default `true`).
    pub auto_subscribe: bool,
    /// Rejoin by itself when the server goes away (drain, restart) or the connection drops,
    /// republishing every track (default `true`).
    pub reconnect: bool,
    /// How long to keep trying to rejoin before giving up (default 30 s).
    pub reconnect_window: Duration,
    /// Impairments applied to this room's media path (loss, delay, caps, cuts): a tool for
    /// tests, benchmarks and `aula join`; `None` in applications.
    pub network: Option<NetworkImpairment>,
    /// STUN/TURN servers for networks that block direct UDP to the server.
    pub ice_servers: Vec<IceServer>,
    /// Send media only through the TURN relays in `ice_servers` (default `false`).
    pub relay_only: bool,
    /// Which transports carry media to the server (default [`MediaTransport::Auto`]).
    pub media_transport: MediaTransport,
    /// Estimate the uplink and make video encoders follow it (default `true`). Off, encoders
    /// keep their configured bitrate whatever the network does: for comparisons only.
    pub adaptive_bitrate: bool,
    /// Repair lost packets of what this room receives: ask for retransmissions and accept FEC
    /// (default `true`). Off, every lost packet costs a keyframe: for comparisons only.
    pub loss_recovery: bool,
}

/// Which transports carry media to the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaTransport {
    /// UDP, with ICE over TCP to the server's media port as the fallback: dialed only when
    /// UDP has not connected within 2 s. Rooms with a simulated `network` stay on UDP,
    /// which is the path the simulator impairs.
    #[default]
    Auto,
    /// UDP only.
    UdpOnly,
    /// ICE over TCP only (for networks known to block UDP).
    TcpOnly,
}

/// A STUN or TURN server, as in the browser's `RTCIceServer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp|tcp` or `turns:host:port`.
    pub urls: Vec<String>,
    /// TURN username.
    pub username: String,
    /// TURN credential.
    pub credential: String,
}

impl Default for RoomOptions {
    fn default() -> Self {
        Self {
            auto_subscribe: true,
            reconnect: true,
            reconnect_window: Duration::from_secs(30),
            network: None,
            ice_servers: Vec::new(),
            relay_only: false,
            media_transport: MediaTransport::Auto,
            adaptive_bitrate: true,
            loss_recovery: true,
        }
    }
}

/// Something that happened in the room.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RoomEvent {
    /// Someone joined.
    ParticipantJoined(ParticipantInfo),
    /// Someone left; their tracks have ended.
    ParticipantLeft {
        /// Who.
        participant_id: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// Someone published a track.
    TrackPublished {
        /// The publisher.
        participant_id: ParticipantId,
        /// The track.
        track: TrackInfo,
    },
    /// Someone stopped publishing a track (also sent for each track of a participant who left).
    TrackUnpublished {
        /// The publisher.
        participant_id: ParticipantId,
        /// The track.
        track_sid: TrackSid,
    },
    /// Media of a subscribed track started arriving.
    TrackSubscribed {
        /// The publisher.
        participant_id: ParticipantId,
        /// The track.
        track_sid: TrackSid,
    },
    /// The connection to the server changed state.
    ConnectionStateChanged(ConnectionState),
    /// The server went away or the connection dropped; the room is rejoining by itself.
    Reconnecting {
        /// What happened.
        reason: DisconnectReason,
    },
    /// The room rejoined: local tracks are published again (with new track ids) and
    /// subscriptions resume. This client's participant id is new.
    Reconnected {
        /// How long the room was away.
        after: Duration,
    },
    /// The room is closed for this client: it left, was removed, or lost the server.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// What a teacher said when denying or removing it, if anything.
        message: Option<String>,
    },
    /// Someone muted or unmuted a track (its media keeps flowing: black video, silence). A
    /// teacher may mute this client's own tracks: then `participant_id` is this client's, and
    /// the track is muted locally already.
    TrackMuted {
        /// The publisher.
        participant_id: ParticipantId,
        /// The track.
        track_sid: TrackSid,
        /// Whether it is muted now.
        muted: bool,
        /// Whether a teacher muted it.
        by_moderator: bool,
    },
    /// A teacher let this client in from the lobby: the participants, their tracks and the
    /// chat are known now ([`Room::remote_participants`], [`Room::classroom`]).
    Admitted,
    /// A participant's placement, raised hand or co-teacher flag changed (this client's own
    /// too).
    ParticipantUpdated(ParticipantInfo),
    /// The room's classroom state changed (settings, lock, spotlight, hands, teacher present).
    ClassroomChanged(ClassroomState),
    /// What this client may do changed (it went on or off stage, a teacher changed it).
    PermissionsChanged(Permissions),
    /// A teacher invites this client to the stage; answer with
    /// [`Room::answer_stage_invitation`].
    StageInvitation {
        /// The teacher.
        from: ParticipantId,
    },
    /// (Teachers) A student answered a stage invitation.
    StageInvitationAnswered {
        /// The student.
        participant_id: ParticipantId,
        /// Whether it went on stage.
        accepted: bool,
    },
    /// A chat message arrived (not this client's own, which [`Room::send_chat`] returns).
    ChatReceived(ChatMessage),
    /// A chat message was deleted.
    ChatDeleted {
        /// Its sequence number.
        seq: u64,
    },
    /// The server ended one of this client's tracks: it left the stage, or a teacher stopped
    /// its screen share. Its encoder has stopped; publish again once permitted.
    LocalTrackEnded {
        /// The track.
        track_sid: TrackSid,
    },
}

/// State of the media connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connecting media.
    Connecting,
    /// Media flows.
    Connected,
    /// Media stopped flowing; it may come back.
    Interrupted,
    /// Media failed.
    Failed,
}

/// Why a room was disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// [`Room::disconnect`] was called.
    ClientRequest,
    /// The server closed the session.
    ServerRequest(LeaveReason),
    /// The signaling connection dropped.
    ConnectionLost,
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::ClientRequest => f.write_str("left the room"),
            DisconnectReason::ConnectionLost => f.write_str("lost the connection to the server"),
            DisconnectReason::ServerRequest(LeaveReason::ServerShutdown) => {
                f.write_str("the server is shutting down")
            }
            DisconnectReason::ServerRequest(LeaveReason::DuplicateIdentity) => {
                f.write_str("the same identity joined from elsewhere")
            }
            DisconnectReason::ServerRequest(LeaveReason::Removed) => {
                f.write_str("a teacher removed this participant from the class")
            }
            DisconnectReason::ServerRequest(LeaveReason::Denied) => {
                f.write_str("a teacher did not admit this participant")
            }
            DisconnectReason::ServerRequest(LeaveReason::ClassEnded) => {
                f.write_str("the class has ended")
            }
            DisconnectReason::ServerRequest(reason) => {
                write!(f, "removed by the server ({reason:?})")
            }
        }
    }
}

/// Options for a video publication.
#[derive(Clone, Debug)]
pub struct VideoPublishOptions {
    /// Camera or screen share.
    pub source: TrackSource,
    /// Target encoder bitrate, bit/s.
    pub bitrate_bps: u32,
    /// Label shown to others.
    pub name: String,
    /// Send a camera as simulcast layers (full, half and quarter size, as far as they are at
    /// least 240 pixels wide), so every subscriber gets the layer its downlink carries
    /// (default `true`). Screen shares are always one stream that keeps its resolution.
    pub simulcast: bool,
}

impl Default for VideoPublishOptions {
    fn default() -> Self {
        Self {
            source: TrackSource::Camera,
            bitrate_bps: 1_500_000,
            name: "camera".into(),
            simulcast: true,
        }
    }
}

impl VideoPublishOptions {
    /// Options for a screen share of up to `bitrate_bps`: the track is marked
    /// [`TrackSource::ScreenShare`], so it keeps its resolution and lowers its frame rate first
    /// when the network is short, and its encoder is tuned for text
    /// ([`VideoContent::Screen`](crate::media::VideoContent)).
    pub fn screen_share(bitrate_bps: u32) -> Self {
        Self {
            source: TrackSource::ScreenShare,
            bitrate_bps,
            name: "screen".into(),
            simulcast: false,
        }
    }
}

/// Everything a room has sent and received so far.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RoomStats {
    /// Time from `connect` to the server's join reply, ms.
    pub join_ms: f64,
    /// The publisher connection's bandwidth estimate, once the server has reported on it.
    pub send_estimate: Option<bandwidth::SendEstimate>,
    /// Published tracks.
    pub published: Vec<PublishedStats>,
    /// Subscribed tracks.
    pub received: Vec<ReceivedStats>,
    /// Loss recovery on everything received.
    pub receive_recovery: RecoveryStats,
    /// Decoded frames (video and audio) the app's sinks failed on (panicked or, through the
    /// bindings, threw); each is lost to that sink only.
    pub sink_failures: u64,
}

struct Inner {
    signal: std::sync::RwLock<Arc<SignalClient>>,
    url: String,
    token: String,
    options: RoomOptions,
    room: std::sync::RwLock<RoomInfo>,
    local: std::sync::RwLock<ParticipantInfo>,
    server_ip: IpAddr,
    started: Instant,
    join_ms: f64,
    participants: Mutex<BTreeMap<ParticipantId, ParticipantInfo>>,
    publisher: tokio::sync::Mutex<Option<ClientPeer>>,
    subscriber: tokio::sync::Mutex<Option<ClientPeer>>,
    publications: Mutex<Vec<LocalPublication>>,
    /// The mute gate of each local track Aula encodes, by track id.
    mutes: Mutex<HashMap<TrackSid, mute::MuteFlag>>,
    subscriptions: Mutex<HashMap<TrackSid, RemoteSubscription>>,
    sinks: Arc<sinks::Sinks>,
    events: mpsc::UnboundedSender<RoomEvent>,
    peer_events: mpsc::UnboundedSender<PeerEvent>,
    closed: AtomicBool,
    next_cid: AtomicU64,
    whiteboard: crate::whiteboard::Whiteboard,
    whiteboard_reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The publisher connection's bandwidth estimate, which the video encoders follow.
    bandwidth: Arc<bandwidth::SendBandwidth>,
    /// Loss recovery on the subscriber connection (kept across reconnects).
    receive_recovery: Arc<NackStats>,
    /// The simulcast layer the server forwards, per subscribed track.
    forwarded_layers: Mutex<HashMap<TrackSid, u8>>,
    /// This client's view of the classroom.
    classroom: Mutex<ClassroomView>,
    /// What the server said when it ended the session, for the `Disconnected` event.
    leave_message: Mutex<Option<String>>,
}

/// A joined room. Cheap to clone; every clone is the same room.
#[derive(Clone)]
pub struct Room {
    inner: Arc<Inner>,
    event_loop: Arc<tokio::task::JoinHandle<()>>,
}

impl Room {
    /// Joins the room named in `token` on the server at `url` (`ws://host:port`). Returns the
    /// room and the stream of its events. Must be called within a tokio runtime.
    pub async fn connect(
        url: &str,
        token: &str,
        options: RoomOptions,
    ) -> Result<(Room, mpsc::UnboundedReceiver<RoomEvent>), RoomError> {
        let started = Instant::now();
        let claims =
            Claims::peek_unverified(token).map_err(|e| RoomError::InvalidToken(e.to_string()))?;
        let server_ip = resolve_host(url)?;
        let (signal, mut server_events) = SignalClient::connect(url).await?;
        let id = signal.next_id();
        let reply = signal
            .request(ClientMessage::Join {
                id,
                protocol_version: PROTOCOL_VERSION,
                room: claims.room.clone(),
                token: token.to_owned(),
                auto_subscribe: options.auto_subscribe,
            })
            .await?;
        let ServerMessage::Joined {
            room,
            participant,
            participants,
            classroom,
            permissions,
            chat,
            ..
        } = reply
        else {
            return Err(RoomError::Internal("unexpected reply to join".into()));
        };
        let view = ClassroomView::joined(&participant, classroom, permissions, chat);
        let join_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (peer_events_tx, mut peer_events) = mpsc::unbounded_channel();
        for other in &participants {
            let _ = events_tx.send(RoomEvent::ParticipantJoined(other.clone()));
        }
        let inner = Arc::new(Inner {
            signal: std::sync::RwLock::new(Arc::new(signal)),
            url: url.to_owned(),
            token: token.to_owned(),
            options: options.clone(),
            room: std::sync::RwLock::new(room),
            local: std::sync::RwLock::new(participant),
            server_ip,
            started,
            join_ms,
            participants: Mutex::new(
                participants
                    .into_iter()
                    .map(|p| (p.id.clone(), p))
                    .collect(),
            ),
            publisher: tokio::sync::Mutex::new(None),
            subscriber: tokio::sync::Mutex::new(None),
            publications: Mutex::new(Vec::new()),
            mutes: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashMap::new()),
            sinks: Arc::new(sinks::Sinks::default()),
            events: events_tx,
            peer_events: peer_events_tx,
            closed: AtomicBool::new(false),
            next_cid: AtomicU64::new(1),
            whiteboard: crate::whiteboard::Whiteboard::new(&claims.sub),
            whiteboard_reader: Mutex::new(None),
            bandwidth: Arc::default(),
            receive_recovery: Arc::default(),
            forwarded_layers: Mutex::new(HashMap::new()),
            classroom: Mutex::new(view),
            leave_message: Mutex::new(None),
        });
        // A participant waiting in the lobby gets the board once admitted.
        if inner.is_admitted() {
            inner.attach_whiteboard();
        }
        let weak = Arc::downgrade(&inner);
        let event_loop = tokio::spawn(async move {
            loop {
                let ended = tokio::select! {
                    msg = server_events.recv() => {
                        let Some(inner) = weak.upgrade() else { break };
                        match msg {
                            Some(msg) => inner.on_server_message(msg).await,
                            None => Some(DisconnectReason::ConnectionLost),
                        }
                    }
                    Some(event) = peer_events.recv() => {
                        let Some(inner) = weak.upgrade() else { break };
                        inner.on_peer_event(event).await
                    }
                };
                let Some(reason) = ended else { continue };
                let Some(inner) = weak.upgrade() else { break };
                match inner.recover(reason).await {
                    Some(events) => server_events = events,
                    None => {
                        inner.mark_disconnected(reason);
                        inner.close_media().await;
                        break;
                    }
                }
            }
        });
        Ok((
            Room {
                inner,
                event_loop: Arc::new(event_loop),
            },
            events,
        ))
    }

    /// The room's shared whiteboard (a local replica kept in sync with the server's).
    pub fn whiteboard(&self) -> crate::whiteboard::Whiteboard {
        self.inner.whiteboard.clone()
    }

    /// The room's name and id.
    pub fn info(&self) -> RoomInfo {
        read(&self.inner.room).clone()
    }

    /// This client as the room sees it.
    pub fn local_participant(&self) -> ParticipantInfo {
        read(&self.inner.local).clone()
    }

    /// Everyone else in the room, with their tracks.
    pub fn remote_participants(&self) -> Vec<ParticipantInfo> {
        lock(&self.inner.participants).values().cloned().collect()
    }

    /// Whether the room is still connected.
    pub fn is_connected(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire)
    }

    /// Publishes video from `source`, encoded as H.264 on a dedicated thread.
    pub async fn publish_video(
        &self,
        source: impl VideoSource,
        options: VideoPublishOptions,
    ) -> Result<TrackInfo, RoomError> {
        if source.width() < 16 || source.height() < 16 || source.fps() == 0 || source.fps() > 120 {
            return Err(RoomError::InvalidArgument(
                "video must be at least 16x16 at 1 to 120 fps".into(),
            ));
        }
        if options.source.kind() != MediaKind::Video {
            return Err(RoomError::InvalidArgument(
                "a video track needs a camera or screen-share source".into(),
            ));
        }
        let (width, height) = (source.width(), source.height());
        let layers = if options.simulcast && options.source == TrackSource::Camera {
            simulcast::simulcast_layers(width, height, options.bitrate_bps)
        } else {
            Vec::new()
        };
        let announced: Vec<VideoLayer> = if layers.len() > 1 {
            layers.iter().map(|l| l.info()).collect()
        } else {
            Vec::new()
        };
        let (info, bound) = self
            .inner
            .add_local_track(
                options.source,
                &options.name,
                Some((width, height)),
                announced,
            )
            .await?;
        let muted = mute::MuteFlag::default();
        let publication = publish::start_video(
            info.clone(),
            bound,
            Box::new(mute::MutableVideo::new(source, Arc::clone(&muted))),
            publish::VideoEncodeSettings {
                bitrate_bps: options.bitrate_bps,
                source_kind: options.source,
                layers,
                share: self.inner.bandwidth.video_track(),
            },
        )?;
        if let Some(control) = publication.layer_control() {
            tokio::spawn(report_active_layers(
                Arc::downgrade(&self.inner),
                Arc::clone(control),
            ));
        }
        lock(&self.inner.publications).push(publication);
        lock(&self.inner.mutes).insert(info.sid.clone(), muted);
        Ok(info)
    }

    /// Publishes pre-encoded H.264 (constrained baseline, Annex-B access units) that the app
    /// pushes through the returned feed, bypassing Aula's encoder. `fps_hint` spaces the first
    /// frame's RTP timestamp; later ones follow the pushed timestamps. Keyframe requests from
    /// receivers reach the app through the feed.
    pub async fn publish_encoded_video(
        &self,
        width: u32,
        height: u32,
        fps_hint: u32,
        options: VideoPublishOptions,
    ) -> Result<(TrackInfo, EncodedVideoFeed), RoomError> {
        self.inner.ensure_open()?;
        if width < 16 || height < 16 || width > 4096 || height > 4096 {
            return Err(RoomError::InvalidArgument(
                "video must be 16x16 to 4096x4096".into(),
            ));
        }
        if options.source.kind() != MediaKind::Video {
            return Err(RoomError::InvalidArgument(
                "a video track needs a camera or screen-share source".into(),
            ));
        }
        let (info, bound) = self
            .inner
            .add_local_track(
                options.source,
                &options.name,
                Some((width, height)),
                Vec::new(),
            )
            .await?;
        let bound = bound
            .into_iter()
            .next()
            .ok_or_else(|| RoomError::Internal("no stream for the track".into()))?;
        let (publication, feed) = app_source::start_encoded(info.clone(), bound, fps_hint);
        lock(&self.inner.publications).push(publication);
        Ok((info, feed))
    }

    /// Publishes audio from `source`, encoded as Opus on a dedicated thread.
    pub async fn publish_audio(
        &self,
        source: impl AudioSource,
        name: &str,
    ) -> Result<TrackInfo, RoomError> {
        let (info, bound) = self
            .inner
            .add_local_track(TrackSource::Microphone, name, None, Vec::new())
            .await?;
        let bound = bound
            .into_iter()
            .next()
            .ok_or_else(|| RoomError::Internal("no stream for the track".into()))?;
        let muted = mute::MuteFlag::default();
        let source = mute::MutableAudio::new(source, Arc::clone(&muted));
        let publication = publish::start_audio(
            info.clone(),
            bound,
            Box::new(source),
            Arc::clone(self.inner.bandwidth.estimate()),
        )?;
        lock(&self.inner.publications).push(publication);
        lock(&self.inner.mutes).insert(info.sid.clone(), muted);
        Ok(info)
    }

    /// Mutes or unmutes a local track without renegotiating, and tells everyone else
    /// ([`RoomEvent::TrackMuted`] on their side).
    ///
    /// A muted video track keeps sending black pictures at its frame rate and stops pulling its
    /// source; a muted audio track sends silence, which Opus DTX makes almost free. The device
    /// behind the source stays open, so unmuting is instant; unpublish to release it. For
    /// video the app encodes itself ([`Room::publish_encoded_video`]) only the flag is
    /// announced: what to push while muted is the app's choice.
    pub async fn set_track_muted(&self, sid: &TrackSid, muted: bool) -> Result<(), RoomError> {
        self.inner.ensure_open()?;
        let was_muted = {
            let mut publications = lock(&self.inner.publications);
            let publication = publications
                .iter_mut()
                .find(|p| &p.info.sid == sid)
                .ok_or_else(|| RoomError::InvalidArgument(format!("no local track {sid}")))?;
            std::mem::replace(&mut publication.info.muted, muted)
        };
        self.inner.set_local_muted(sid, muted);
        let id = self.inner.signal().next_id();
        let outcome = self
            .inner
            .signal()
            .request(ClientMessage::SetTrackMuted {
                id,
                sid: sid.clone(),
                muted,
            })
            .await;
        if let Err(err) = outcome {
            // Refused (a teacher's mute this client may not undo) or unanswered: the track
            // stays as it was, here as on the server.
            self.inner.set_local_muted(sid, was_muted);
            return Err(err.into());
        }
        Ok(())
    }

    /// Whether a local track is muted (`None` when this client publishes no such track).
    pub fn is_track_muted(&self, sid: &TrackSid) -> Option<bool> {
        lock(&self.inner.publications)
            .iter()
            .find(|p| &p.info.sid == sid)
            .map(|p| p.info.muted)
    }

    /// Stops publishing a track.
    pub async fn unpublish(&self, sid: &TrackSid) -> Result<(), RoomError> {
        self.inner.ensure_open()?;
        let publication = {
            let mut publications = lock(&self.inner.publications);
            let index = publications
                .iter()
                .position(|p| &p.info.sid == sid)
                .ok_or_else(|| RoomError::InvalidArgument(format!("no local track {sid}")))?;
            publications.remove(index)
        };
        lock(&self.inner.mutes).remove(sid);
        publication.stop();
        let id = self.inner.signal().next_id();
        self.inner
            .signal()
            .request(ClientMessage::UnpublishTrack {
                id,
                sid: sid.clone(),
            })
            .await?;
        let publisher = self.inner.publisher.lock().await;
        if let Some(peer) = publisher.as_ref() {
            for sender in publication.senders() {
                peer.pc
                    .remove_track(&sender)
                    .await
                    .map_err(peer::webrtc_error)?;
            }
            self.inner.negotiate_publisher(peer).await?;
        }
        Ok(())
    }

    /// Subscribes to or unsubscribes from a remote track.
    pub async fn set_subscribed(&self, sid: &TrackSid, subscribed: bool) -> Result<(), RoomError> {
        self.inner.ensure_open()?;
        let id = self.inner.signal().next_id();
        self.inner
            .signal()
            .request(ClientMessage::UpdateSubscription {
                id,
                track_sids: vec![sid.clone()],
                subscribe: subscribed,
            })
            .await?;
        if !subscribed {
            lock(&self.inner.subscriptions).remove(sid);
        }
        Ok(())
    }

    /// Sets (or with `None`, removes) the sink that receives every decoded video frame.
    pub fn set_video_sink(&self, sink: Option<Arc<dyn VideoSink>>) {
        self.inner.sinks.set_video(sink);
    }

    /// Sets (or with `None`, removes) the sink that receives every decoded audio frame.
    pub fn set_audio_sink(&self, sink: Option<Arc<dyn AudioSink>>) {
        self.inner.sinks.set_audio(sink);
    }

    /// What has been sent and received so far.
    pub fn stats(&self) -> RoomStats {
        let published = lock(&self.inner.publications)
            .iter()
            .map(LocalPublication::stats)
            .collect();
        let mut received: Vec<ReceivedStats> = lock(&self.inner.subscriptions)
            .values()
            .map(RemoteSubscription::stats)
            .collect();
        received.sort_by(|a, b| a.track_sid.cmp(&b.track_sid));
        {
            let layers = lock(&self.inner.forwarded_layers);
            for r in &mut received {
                r.layer = layers.get(&r.track_sid).copied();
            }
        }
        RoomStats {
            join_ms: self.inner.join_ms,
            send_estimate: self.inner.bandwidth.snapshot(),
            published,
            received,
            receive_recovery: RecoveryStats::of(&self.inner.receive_recovery),
            sink_failures: self.inner.sinks.failures(),
        }
    }

    /// Measures a signaling round trip to the server.
    pub async fn ping(&self) -> Result<Duration, RoomError> {
        self.inner.ensure_open()?;
        let start = Instant::now();
        let id = self.inner.signal().next_id();
        self.inner
            .signal()
            .request(ClientMessage::Ping { id })
            .await?;
        Ok(start.elapsed())
    }

    /// Leaves the room: stops publishing, closes both connections. Idempotent.
    pub async fn disconnect(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let id = self.inner.signal().next_id();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.inner.signal().request(ClientMessage::Leave { id }),
        )
        .await;
        self.inner.close_media().await;
        let _ = self.inner.events.send(RoomEvent::Disconnected {
            reason: DisconnectReason::ClientRequest,
            message: None,
        });
        self.event_loop.abort();
    }

    /// Sends a raw text frame on the signaling socket (for tests of server input handling).
    #[doc(hidden)]
    pub fn send_raw_signal(&self, text: String) -> Result<(), RoomError> {
        Ok(self.inner.signal().send_raw(text)?)
    }
}

impl Inner {
    /// The current signaling connection (replaced by a reconnect).
    fn signal(&self) -> Arc<SignalClient> {
        Arc::clone(&read(&self.signal))
    }

    /// After the session ended for `reason`: rejoins when that is worth trying and allowed,
    /// returning the new session's events; `None` when the room is over.
    async fn recover(
        &self,
        reason: DisconnectReason,
    ) -> Option<mpsc::UnboundedReceiver<ServerMessage>> {
        if !ReconnectPolicy::is_recoverable(reason)
            || !self.options.reconnect
            || self.closed.load(Ordering::Acquire)
        {
            return None;
        }
        let away_since = Instant::now();
        let _ = self.events.send(RoomEvent::Reconnecting { reason });
        self.close_peers().await;
        let mut policy = ReconnectPolicy::new(away_since, self.options.reconnect_window);
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            let refused = match self.rejoin().await {
                Ok(events) => {
                    *lock(&self.leave_message) = None;
                    let _ = self.events.send(RoomEvent::Reconnected {
                        after: away_since.elapsed(),
                    });
                    return Some(events);
                }
                Err(RoomError::Refused { code, message }) => {
                    tracing::debug!(%code, message, "rejoin refused");
                    *lock(&self.leave_message) = Some(message);
                    Some(code)
                }
                Err(err) => {
                    tracing::debug!(error = %err, "rejoin failed");
                    None
                }
            };
            match policy.after_failure(refused, Instant::now()) {
                Retry::After(wait) => tokio::time::sleep(wait).await,
                Retry::GiveUp => {
                    tracing::warn!(?refused, "giving up rejoining");
                    return None;
                }
            }
        }
    }

    /// Joins again with the same token and republishes every local track on new connections.
    async fn rejoin(&self) -> Result<mpsc::UnboundedReceiver<ServerMessage>, RoomError> {
        let claims = Claims::peek_unverified(&self.token)
            .map_err(|e| RoomError::InvalidToken(e.to_string()))?;
        let (signal, server_events) = SignalClient::connect(&self.url).await?;
        let id = signal.next_id();
        let reply = signal
            .request(ClientMessage::Join {
                id,
                protocol_version: PROTOCOL_VERSION,
                room: claims.room,
                token: self.token.clone(),
                auto_subscribe: self.options.auto_subscribe,
            })
            .await?;
        let ServerMessage::Joined {
            room,
            participant,
            participants,
            classroom,
            permissions,
            chat,
            ..
        } = reply
        else {
            return Err(RoomError::Internal("unexpected reply to join".into()));
        };
        let fresh_view = ClassroomView::joined(&participant, classroom, permissions, chat);
        let same_class = {
            let mut view = lock(&self.classroom);
            // The chat's sequence numbers restart with a new class.
            let same = view.chat.back().is_none_or(|last| {
                fresh_view
                    .chat
                    .back()
                    .is_none_or(|newest| newest.seq >= last.seq)
            });
            view.rejoined(fresh_view, same);
            same
        };
        let _ = same_class;
        *write(&self.signal) = Arc::new(signal);
        *write(&self.room) = room;
        *write(&self.local) = participant;
        if self.is_admitted() {
            self.attach_whiteboard();
        }
        let fresh: BTreeMap<ParticipantId, ParticipantInfo> = participants
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let previous = std::mem::replace(&mut *lock(&self.participants), fresh.clone());
        for (id, _) in previous.iter().filter(|(id, _)| !fresh.contains_key(*id)) {
            let _ = self.events.send(RoomEvent::ParticipantLeft {
                participant_id: id.clone(),
                reason: LeaveReason::ConnectionLost,
            });
        }
        for (_, p) in fresh.iter().filter(|(id, _)| !previous.contains_key(*id)) {
            let _ = self.events.send(RoomEvent::ParticipantJoined(p.clone()));
        }
        self.republish().await?;
        Ok(server_events)
    }

    /// Announces every local publication again and moves it onto a new publisher connection.
    /// Publications the new session may not publish (it is back in the audience) end.
    async fn republish(&self) -> Result<(), RoomError> {
        let not_allowed: Vec<TrackSid> = {
            let view = lock(&self.classroom);
            lock(&self.publications)
                .iter()
                .filter(|p| !view.may_publish(p.info.source))
                .map(|p| p.info.sid.clone())
                .collect()
        };
        for sid in not_allowed {
            if let Some(publication) = self.take_publication(&sid) {
                publication.stop();
            }
            let _ = self
                .events
                .send(RoomEvent::LocalTrackEnded { track_sid: sid });
        }
        let announced: Vec<TrackInfo> = lock(&self.publications)
            .iter()
            .map(|p| p.info.clone())
            .collect();
        if announced.is_empty() {
            return Ok(());
        }
        let stream_id = read(&self.local).id.clone();
        let mut publisher = self.publisher.lock().await;
        let peer = ClientPeer::new(
            self.server_ip,
            self.peer_events.clone(),
            &self.options,
            self.options.adaptive_bitrate.then_some(&self.bandwidth),
            &Arc::default(),
        )
        .await?;
        let mut moved = Vec::new();
        for old in &announced {
            let (info, cid) = self
                .announce(
                    old.source,
                    &old.name,
                    old.width.zip(old.height),
                    old.layers.clone(),
                )
                .await?;
            let streams = add_streams(&peer, stream_id.as_str(), &cid, &info).await?;
            moved.push((old.sid.clone(), info, streams));
        }
        self.negotiate_publisher(&peer).await?;
        let mut rebound = Vec::new();
        for (old_sid, info, streams) in moved {
            rebound.push((old_sid, info, bind_streams(streams).await?));
        }
        // The restarted server numbers tracks afresh, so a new sid may equal another
        // publication's old one: every publication is matched by its old sid on the list as it
        // was before any rebinding, and the mute flags move all at once.
        let mut still_muted = Vec::new();
        let mut renamed = Vec::new();
        {
            let mut publications = lock(&self.publications);
            let before: Vec<TrackSid> = publications.iter().map(|p| p.info.sid.clone()).collect();
            let old_sids: Vec<TrackSid> = rebound.iter().map(|(old, _, _)| old.clone()).collect();
            let targets = match_moved(&before, &old_sids);
            for ((old_sid, mut info, bound), target) in rebound.into_iter().zip(targets) {
                let Some(publication) = target.and_then(|i| publications.get_mut(i)) else {
                    continue;
                };
                info.muted = publication.info.muted;
                if info.muted {
                    still_muted.push(info.sid.clone());
                }
                renamed.push((old_sid, info.sid.clone()));
                publication.rebind(info, bound);
            }
        }
        rename_keys(&mut lock(&self.mutes), &renamed);
        *publisher = Some(peer);
        drop(publisher);
        // The new session knows nothing of earlier mutes.
        for sid in still_muted {
            let id = self.signal().next_id();
            self.signal()
                .request(ClientMessage::SetTrackMuted {
                    id,
                    sid,
                    muted: true,
                })
                .await?;
        }
        Ok(())
    }

    /// Mutes or unmutes a local track here (a teacher muted it on the server).
    fn set_local_muted(&self, sid: &TrackSid, muted: bool) {
        if let Some(publication) = lock(&self.publications)
            .iter_mut()
            .find(|p| &p.info.sid == sid)
        {
            publication.info.muted = muted;
        }
        if let Some(flag) = lock(&self.mutes).get(sid) {
            flag.store(muted, Ordering::Release);
        }
    }

    /// Takes a local publication out of the room's list.
    fn take_publication(&self, sid: &TrackSid) -> Option<LocalPublication> {
        lock(&self.mutes).remove(sid);
        let mut publications = lock(&self.publications);
        let index = publications.iter().position(|p| &p.info.sid == sid)?;
        Some(publications.remove(index))
    }

    /// The server ended a local track: stop encoding it and take its streams off the
    /// publisher connection.
    async fn drop_local_track(&self, sid: &TrackSid) {
        let Some(publication) = self.take_publication(sid) else {
            return;
        };
        publication.stop();
        let publisher = self.publisher.lock().await;
        if let Some(peer) = publisher.as_ref() {
            for sender in publication.senders() {
                if let Err(err) = peer.pc.remove_track(&sender).await {
                    tracing::debug!(error = %err, "ended track's stream not removed");
                }
            }
            if let Err(err) = self.negotiate_publisher(peer).await {
                tracing::debug!(error = %err, "renegotiation after an ended track failed");
            }
        }
    }

    /// Connects the whiteboard replica to the current signaling connection.
    fn attach_whiteboard(&self) {
        let signal = self.signal();
        let Some(mut incoming) = signal.take_binary_receiver() else {
            return;
        };
        let whiteboard = self.whiteboard.clone();
        let generation = whiteboard.attach(signal.binary_sender());
        let reader = tokio::spawn(async move {
            while let Some(bytes) = incoming.recv().await {
                whiteboard.on_frame(&bytes);
            }
            whiteboard.detach(generation);
        });
        if let Some(old) = lock(&self.whiteboard_reader).replace(reader) {
            old.abort();
        }
    }

    /// Closes both peer connections and drops subscriptions; publications keep encoding.
    async fn close_peers(&self) {
        lock(&self.subscriptions).clear();
        for slot in [&self.publisher, &self.subscriber] {
            if let Some(peer) = slot.lock().await.take() {
                let _ = peer.pc.close().await;
            }
        }
    }

    fn ensure_open(&self) -> Result<(), RoomError> {
        if self.closed.load(Ordering::Acquire) {
            Err(RoomError::InvalidState("the room is disconnected".into()))
        } else {
            Ok(())
        }
    }

    /// Announces a track to the server; returns it and the client id its streams are named by.
    async fn announce(
        &self,
        source: TrackSource,
        name: &str,
        size: Option<(u32, u32)>,
        layers: Vec<VideoLayer>,
    ) -> Result<(TrackInfo, String), RoomError> {
        let kind = source.kind();
        let cid = format!("{kind}-{}", self.next_cid.fetch_add(1, Ordering::Relaxed));
        let id = self.signal().next_id();
        let reply = self
            .signal()
            .request(ClientMessage::PublishTrack {
                id,
                cid: cid.clone(),
                source,
                name: name.to_owned(),
                width: size.map(|s| s.0),
                height: size.map(|s| s.1),
                layers,
            })
            .await?;
        let ServerMessage::TrackPublished { track: info, .. } = reply else {
            return Err(RoomError::Internal(
                "unexpected reply to publish_track".into(),
            ));
        };
        Ok((info, cid))
    }

    /// Announces a track (with its simulcast `layers`, if any), adds its streams to the
    /// publisher connection and negotiates. Returns the track and its streams, lowest layer
    /// first.
    async fn add_local_track(
        &self,
        source: TrackSource,
        name: &str,
        size: Option<(u32, u32)>,
        layers: Vec<VideoLayer>,
    ) -> Result<(TrackInfo, Vec<publish::BoundStream>), RoomError> {
        self.ensure_open()?;
        let (info, cid) = self.announce(source, name, size, layers).await?;
        let stream_id = read(&self.local).id.clone();
        let mut publisher = self.publisher.lock().await;
        if publisher.is_none() {
            *publisher = Some(
                ClientPeer::new(
                    self.server_ip,
                    self.peer_events.clone(),
                    &self.options,
                    self.options.adaptive_bitrate.then_some(&self.bandwidth),
                    &Arc::default(),
                )
                .await?,
            );
        }
        let Some(peer) = publisher.as_ref() else {
            return Err(RoomError::Internal("publisher connection missing".into()));
        };
        let streams = add_streams(peer, stream_id.as_str(), &cid, &info).await?;
        self.negotiate_publisher(peer).await?;
        let bound = bind_streams(streams).await?;
        Ok((info, bound))
    }

    async fn negotiate_publisher(&self, peer: &ClientPeer) -> Result<(), RoomError> {
        let offer = peer
            .pc
            .create_offer(None)
            .await
            .map_err(peer::webrtc_error)?;
        peer.pc
            .set_local_description(offer)
            .await
            .map_err(peer::webrtc_error)?;
        let sdp = peer.local_sdp().await?;
        let id = self.signal().next_id();
        let reply = self
            .signal()
            .request(ClientMessage::PublisherOffer { id, sdp })
            .await?;
        let ServerMessage::PublisherAnswer { sdp, .. } = reply else {
            return Err(RoomError::Internal(
                "unexpected reply to publisher_offer".into(),
            ));
        };
        let answer = RTCSessionDescription::answer(sdp).map_err(peer::webrtc_error)?;
        peer.set_remote_description(answer).await
    }

    /// Handles one server event; returns why the session ended, when it did.
    async fn on_server_message(&self, msg: ServerMessage) -> Option<DisconnectReason> {
        match msg {
            ServerMessage::ParticipantJoined { participant } => {
                lock(&self.participants).insert(participant.id.clone(), participant.clone());
                let _ = self.events.send(RoomEvent::ParticipantJoined(participant));
            }
            ServerMessage::ParticipantLeft {
                participant_id,
                reason,
            } => {
                let left = lock(&self.participants).remove(&participant_id);
                if let Some(left) = left {
                    let mut subscriptions = lock(&self.subscriptions);
                    for track in &left.tracks {
                        subscriptions.remove(&track.sid);
                        let _ = self.events.send(RoomEvent::TrackUnpublished {
                            participant_id: participant_id.clone(),
                            track_sid: track.sid.clone(),
                        });
                    }
                }
                let _ = self.events.send(RoomEvent::ParticipantLeft {
                    participant_id,
                    reason,
                });
            }
            ServerMessage::TrackAdded {
                participant_id,
                track,
            } => {
                if let Some(p) = lock(&self.participants).get_mut(&participant_id) {
                    p.tracks.retain(|t| t.sid != track.sid);
                    p.tracks.push(track.clone());
                }
                let _ = self.events.send(RoomEvent::TrackPublished {
                    participant_id,
                    track,
                });
            }
            ServerMessage::TrackMuted {
                participant_id,
                track_sid,
                muted,
                by_moderator,
            } => {
                if participant_id == read(&self.local).id {
                    // A teacher muted one of this client's tracks: mute it here too.
                    self.set_local_muted(&track_sid, muted);
                }
                if let Some(p) = lock(&self.participants).get_mut(&participant_id) {
                    if let Some(track) = p.tracks.iter_mut().find(|t| t.sid == track_sid) {
                        track.muted = muted;
                    }
                }
                let _ = self.events.send(RoomEvent::TrackMuted {
                    participant_id,
                    track_sid,
                    muted,
                    by_moderator,
                });
            }
            ServerMessage::TrackRemoved {
                participant_id,
                track_sid,
            } if participant_id == read(&self.local).id => {
                // The server ended one of this client's tracks.
                self.drop_local_track(&track_sid).await;
                let _ = self.events.send(RoomEvent::LocalTrackEnded { track_sid });
            }
            ServerMessage::Admitted {
                ref participant,
                ref participants,
                ..
            } => {
                let tracks = read(&self.local).tracks.clone();
                *write(&self.local) = ParticipantInfo {
                    tracks,
                    ..participant.clone()
                };
                *lock(&self.participants) = participants
                    .iter()
                    .map(|p| (p.id.clone(), p.clone()))
                    .collect();
                for other in participants {
                    let _ = self
                        .events
                        .send(RoomEvent::ParticipantJoined(other.clone()));
                }
                let local = read(&self.local).id.clone();
                let events = lock(&self.classroom).apply(&local, &msg);
                self.attach_whiteboard();
                for event in events {
                    let _ = self.events.send(event);
                }
            }
            ServerMessage::ParticipantUpdated { ref participant } => {
                let local = read(&self.local).id.clone();
                if participant.id == local {
                    let mut me = write(&self.local);
                    me.placement = participant.placement;
                    me.hand_raised = participant.hand_raised;
                    me.co_teacher = participant.co_teacher;
                } else if let Some(p) = lock(&self.participants).get_mut(&participant.id) {
                    p.placement = participant.placement;
                    p.hand_raised = participant.hand_raised;
                    p.co_teacher = participant.co_teacher;
                }
                let events = lock(&self.classroom).apply(&local, &msg);
                for event in events {
                    let _ = self.events.send(event);
                }
            }
            ServerMessage::ClassroomUpdated { .. }
            | ServerMessage::PermissionsChanged { .. }
            | ServerMessage::StageInvitation { .. }
            | ServerMessage::StageInvitationAnswered { .. }
            | ServerMessage::Chat { .. }
            | ServerMessage::ChatDeleted { .. } => {
                let local = read(&self.local).id.clone();
                let events = lock(&self.classroom).apply(&local, &msg);
                for event in events {
                    let _ = self.events.send(event);
                }
            }
            ServerMessage::TrackRemoved {
                participant_id,
                track_sid,
            } => {
                if let Some(p) = lock(&self.participants).get_mut(&participant_id) {
                    p.tracks.retain(|t| t.sid != track_sid);
                }
                lock(&self.subscriptions).remove(&track_sid);
                let _ = self.events.send(RoomEvent::TrackUnpublished {
                    participant_id,
                    track_sid,
                });
            }
            ServerMessage::SubscriberOffer { sdp } => {
                if let Err(err) = self.answer_subscriber(sdp).await {
                    if !self.closed.load(Ordering::Acquire) {
                        tracing::warn!(error = %err, "subscriber negotiation failed");
                    }
                }
            }
            ServerMessage::Leave { reason, message } => {
                *lock(&self.leave_message) = message;
                return Some(DisconnectReason::ServerRequest(reason));
            }
            ServerMessage::LayersWanted { sid, layers } => {
                if let Some(publication) =
                    lock(&self.publications).iter().find(|p| p.info.sid == sid)
                {
                    publication.set_wanted_layers(&layers);
                }
            }
            ServerMessage::LayerForwarded { sid, layer } => {
                // It may come before the track's media does.
                lock(&self.forwarded_layers).insert(sid, layer);
            }
            ServerMessage::Error { code, message, .. } => {
                tracing::warn!(%code, message, "server reported an error");
            }
            _ => {}
        }
        None
    }

    async fn answer_subscriber(&self, sdp: String) -> Result<(), RoomError> {
        let mut subscriber = self.subscriber.lock().await;
        if subscriber.is_none() {
            *subscriber = Some(
                ClientPeer::new(
                    self.server_ip,
                    self.peer_events.clone(),
                    &self.options,
                    None,
                    &self.receive_recovery,
                )
                .await?,
            );
        }
        let Some(peer) = subscriber.as_ref() else {
            return Err(RoomError::Internal("subscriber connection missing".into()));
        };
        let offer = RTCSessionDescription::offer(sdp).map_err(peer::webrtc_error)?;
        peer.set_remote_description(offer).await?;
        let answer = peer
            .pc
            .create_answer(None)
            .await
            .map_err(peer::webrtc_error)?;
        peer.pc
            .set_local_description(answer)
            .await
            .map_err(peer::webrtc_error)?;
        let sdp = peer.local_sdp().await?;
        let id = self.signal().next_id();
        self.signal()
            .request(ClientMessage::SubscriberAnswer { id, sdp })
            .await?;
        Ok(())
    }

    /// Handles a peer connection's event; returns why the session must end when a current
    /// connection failed (the room then rejoins on new ones).
    async fn on_peer_event(&self, event: PeerEvent) -> Option<DisconnectReason> {
        match event {
            PeerEvent::Track(remote) => {
                self.on_remote_track(remote).await;
                None
            }
            PeerEvent::State(state) => {
                tracing::debug!(
                    ?state,
                    since_connect_ms = self.started.elapsed().as_millis() as u64,
                    "peer connection state"
                );
                let state = match state {
                    RTCPeerConnectionState::Connected => ConnectionState::Connected,
                    RTCPeerConnectionState::Disconnected => ConnectionState::Interrupted,
                    RTCPeerConnectionState::Failed => ConnectionState::Failed,
                    _ => ConnectionState::Connecting,
                };
                let _ = self.events.send(RoomEvent::ConnectionStateChanged(state));
                (state == ConnectionState::Failed && self.a_current_peer_failed().await).then(
                    || {
                        tracing::info!("a media connection failed; rejoining on new connections");
                        DisconnectReason::ConnectionLost
                    },
                )
            }
        }
    }

    /// Whether the publisher or subscriber connection in use now has failed (a failure
    /// reported by a connection a rejoin has already replaced is old news).
    async fn a_current_peer_failed(&self) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let publisher = self
            .publisher
            .lock()
            .await
            .as_ref()
            .is_some_and(ClientPeer::has_failed);
        publisher
            || self
                .subscriber
                .lock()
                .await
                .as_ref()
                .is_some_and(ClientPeer::has_failed)
    }

    async fn on_remote_track(&self, remote: Arc<dyn TrackRemote>) {
        let participant_id = ParticipantId(remote.stream_id().await);
        let track_sid = TrackSid(remote.track_id().await);
        let origin = {
            let participants = lock(&self.participants);
            let Some(participant) = participants.get(&participant_id) else {
                tracing::debug!(%participant_id, "media from a participant not in the room");
                return;
            };
            let (kind, source) = participant
                .tracks
                .iter()
                .find(|t| t.sid == track_sid)
                .map(|t| (t.kind, t.source))
                .unwrap_or((MediaKind::Video, TrackSource::Camera));
            TrackOrigin {
                participant_id: participant_id.clone(),
                identity: participant.identity.clone(),
                track_sid: track_sid.clone(),
                kind,
                source,
                fps_hint: 30,
            }
        };
        match RemoteSubscription::start(origin, remote, Arc::clone(&self.sinks), self.started) {
            Ok(subscription) => {
                lock(&self.subscriptions).insert(track_sid.clone(), subscription);
                let _ = self.events.send(RoomEvent::TrackSubscribed {
                    participant_id,
                    track_sid,
                });
            }
            Err(err) => tracing::warn!(error = %err, "cannot receive track"),
        }
    }

    fn mark_disconnected(&self, reason: DisconnectReason) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let message = lock(&self.leave_message).take();
            let _ = self
                .events
                .send(RoomEvent::Disconnected { reason, message });
        }
    }

    /// Whether this client has been let in (not waiting in the lobby).
    fn is_admitted(&self) -> bool {
        lock(&self.classroom).placement != Placement::Lobby
    }

    async fn close_media(&self) {
        lock(&self.publications).clear();
        lock(&self.mutes).clear();
        self.close_peers().await;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for publication in lock(&self.publications).iter() {
            publication.stop();
        }
    }
}

/// Tells the server which simulcast layers of the publication `control` belongs to are being
/// sent, whenever that changes, for as long as the room and the publication last.
async fn report_active_layers(
    inner: std::sync::Weak<Inner>,
    control: Arc<simulcast::LayerControl>,
) {
    loop {
        control.active_changed().await;
        let Some(inner) = inner.upgrade() else { return };
        let sid = lock(&inner.publications)
            .iter()
            .find(|p| p.layer_control().is_some_and(|c| Arc::ptr_eq(c, &control)))
            .map(|p| p.info.sid.clone());
        let Some(sid) = sid else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let message = ClientMessage::LayersActive {
            sid,
            layers: control.active(),
        };
        if let Err(err) = inner.signal().send(&message) {
            tracing::debug!(error = %err, "active layers not reported");
        }
    }
}

/// For each sid in `moved`, the index in `current` of the publication it names: the first
/// one with that sid not already taken by an earlier entry (`None` if there is none, e.g. it
/// was unpublished meanwhile).
fn match_moved(current: &[TrackSid], moved: &[TrackSid]) -> Vec<Option<usize>> {
    let mut taken = vec![false; current.len()];
    moved
        .iter()
        .map(|sid| {
            let index = (0..current.len()).find(|&i| !taken[i] && current[i] == *sid)?;
            taken[index] = true;
            Some(index)
        })
        .collect()
}

/// Moves the values of `map` from each `(old, new)` key pair's old key to its new one, all at
/// once: a new key equal to another pair's old key takes that pair's value only if moved to it.
fn rename_keys<V>(map: &mut HashMap<TrackSid, V>, renamed: &[(TrackSid, TrackSid)]) {
    let moved: Vec<(TrackSid, V)> = renamed
        .iter()
        .filter_map(|(old, new)| map.remove(old).map(|value| (new.clone(), value)))
        .collect();
    map.extend(moved);
}

/// Adds the streams of `info` (one, or one per simulcast layer, named `cid.i`) to `peer`.
async fn add_streams(
    peer: &ClientPeer,
    stream_id: &str,
    cid: &str,
    info: &TrackInfo,
) -> Result<
    Vec<(
        publish::PreparedTrack,
        Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    )>,
    RoomError,
> {
    let track_ids: Vec<String> = if info.layers.is_empty() {
        vec![cid.to_owned()]
    } else {
        (0..info.layers.len())
            .map(|i| format!("{cid}.{i}"))
            .collect()
    };
    let mut streams = Vec::new();
    for track_id in track_ids {
        let prepared = publish::prepare_track(stream_id, &track_id, info.kind)?;
        let sender = peer
            .pc
            .add_track(Arc::clone(&prepared.track) as Arc<dyn TrackLocal>)
            .await
            .map_err(peer::webrtc_error)?;
        streams.push((prepared, sender));
    }
    Ok(streams)
}

/// The negotiated payload types of streams added with [`add_streams`].
async fn bind_streams(
    streams: Vec<(
        publish::PreparedTrack,
        Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    )>,
) -> Result<Vec<publish::BoundStream>, RoomError> {
    let mut bound = Vec::new();
    for (prepared, sender) in streams {
        let payload_type = publish::negotiated_payload_type(&sender, &prepared.codec).await?;
        bound.push(publish::BoundStream {
            sender,
            track: prepared.track,
            ssrc: prepared.ssrc,
            payload_type,
        });
    }
    Ok(bound)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The IP of the host in a `ws://` URL, to choose which local address media binds on.
fn resolve_host(url: &str) -> Result<IpAddr, RoomError> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| RoomError::InvalidArgument(format!("{url:?} is not a ws:// URL")))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| RoomError::Unreachable(format!("cannot resolve {authority}: {e}")))?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| RoomError::Unreachable(format!("{authority} has no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u32) -> TrackSid {
        TrackSid::from_counter(u64::from(n))
    }

    #[test]
    fn republished_tracks_find_their_publication_when_new_sids_reuse_old_ones() {
        // Before a server restart: video TR_2, audio TR_3. The restarted server numbered a
        // participant first, so the republished video got TR_3, the audio TR_4.
        let before = [sid(2), sid(3)];
        let moved = [sid(2), sid(3)];
        assert_eq!(match_moved(&before, &moved), vec![Some(0), Some(1)]);
        let mut mutes = HashMap::from([(sid(2), "video flag"), (sid(3), "audio flag")]);
        rename_keys(&mut mutes, &[(sid(2), sid(3)), (sid(3), sid(4))]);
        assert_eq!(
            mutes,
            HashMap::from([(sid(3), "video flag"), (sid(4), "audio flag")])
        );
    }

    #[test]
    fn a_publication_is_matched_once_and_a_vanished_one_not_at_all() {
        let before = [sid(5), sid(5), sid(7)];
        assert_eq!(
            match_moved(&before, &[sid(5), sid(5), sid(9)]),
            vec![Some(0), Some(1), None]
        );
        let mut flags = HashMap::from([(sid(1), 1)]);
        rename_keys(&mut flags, &[(sid(8), sid(9))]);
        assert_eq!(flags, HashMap::from([(sid(1), 1)]), "nothing to move");
    }
}
