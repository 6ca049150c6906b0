//! One client's WebSocket session: join, then requests until it leaves or the socket drops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aula_protocol::signal::LeaveReason;
use aula_protocol::{
    ClientMessage, ErrorCode, IceCandidate, MediaKind, ParticipantId, PeerRole, ServerMessage,
    TokenError, TrackInfo, TrackSid, TrackSource, VideoLayer, MAX_SIGNAL_MESSAGE_BYTES,
    MAX_VIDEO_LAYERS, PROTOCOL_VERSION,
};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnectionEventHandler, RTCIceGatheringState};

use crate::classroom::Joiner;
use crate::limits::{burst_for, MessageRate};
use crate::outbox::Outbox;
use crate::room::{Link, Room, SessionControl};
use crate::sfu::{GatherSignal, PublishedTrack, ServerPeer, Subscriber};
use crate::state::ServerState;

/// How long a new connection may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest client track id accepted.
const MAX_CID_BYTES: usize = 64;

/// Runs a session to its end.
pub async fn run(socket: WebSocket, server: Arc<ServerState>) {
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut outgoing, overflowed) = Outbox::new(Arc::clone(&server.metrics));
    // Binary whiteboard frames from the room's board share the socket with signaling.
    let (wb_tx, mut wb_rx) = crate::whiteboard::connection_queue();
    let writer = tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                msg = outgoing.recv() => match msg {
                    Some(msg) => msg,
                    None => break,
                },
                Some(bytes) = wb_rx.recv() => {
                    if sink.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let closing = matches!(message, ServerMessage::Leave { .. });
            if sink
                .send(Message::Text(Utf8Bytes::from(message.to_json())))
                .await
                .is_err()
            {
                break;
            }
            if closing {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let joined =
        tokio::time::timeout(JOIN_TIMEOUT, wait_for_join(&mut stream, &outbox, &server)).await;
    let Ok(Some(mut session)) = joined else {
        drop(outbox);
        drop(wb_tx);
        let _ = writer.await;
        return;
    };
    let mut shutdown = server.shutdown.subscribe();
    let reason = loop {
        tokio::select! {
            // The room's instructions first: they were queued before anything the client
            // could send in reaction (a board attached on admission comes before the
            // client's first board frame).
            biased;
            Some(control) = session.control.recv() => {
                if let Some(reason) = session
                    .on_control(control, &server, &wb_tx, &overflowed)
                    .await
                {
                    break reason;
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(message)) => {
                    if let Some(reason) = session.on_ws_message(message).await {
                        break reason;
                    }
                }
                _ => break LeaveReason::ConnectionLost,
            },
            Some(event) = session.peer_events.recv() => session.on_peer_event(event).await,
            _ = overflowed.notified() => break LeaveReason::ConnectionLost,
            // `wait_for` also sees a shutdown that began before this session subscribed.
            _ = async { shutdown.wait_for(|stopping| *stopping).await.map(drop) } => {
                outbox.send(ServerMessage::Leave { reason: LeaveReason::ServerShutdown, message: None });
                break LeaveReason::ServerShutdown;
            }
        }
    };
    session.whiteboard.detach().await;
    session.end(reason).await;
    drop(outbox);
    let _ = writer.await;
    // The writer sent `leave` and a close frame. Keep reading until the client closes too: a
    // socket closed with unread client data in it is reset, and a reset can destroy the
    // `leave` still in flight, so the client would see a lost connection instead of the reason.
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// The `id` of a client request, read without decoding the rest of the message.
fn request_id_of(text: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: Option<u64>,
    }
    serde_json::from_str::<Id>(text).ok()?.id
}

/// Longest a session waits for the client's close after telling it to leave.
const CLOSE_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads messages until a valid `join`; answers everything else with an error.
async fn wait_for_join(
    stream: &mut futures::stream::SplitStream<WebSocket>,
    outbox: &Outbox,
    server: &Arc<ServerState>,
) -> Option<Session> {
    let mut gate = crate::limits::PreJoinGate::new(Instant::now());
    while let Some(Ok(message)) = stream.next().await {
        match gate.admit(Instant::now(), outbox) {
            crate::limits::PreJoinStep::Handle => {}
            crate::limits::PreJoinStep::Skip => continue,
            crate::limits::PreJoinStep::Close => return None,
        }
        let msg = match decode(message, outbox) {
            Decoded::Message(msg) => msg,
            Decoded::Skip => continue,
            Decoded::Close => return None,
        };
        let ClientMessage::Join {
            id,
            protocol_version,
            room,
            token,
            auto_subscribe,
        } = msg
        else {
            outbox.send(ServerMessage::error(
                msg.request_id(),
                ErrorCode::NotJoined,
                "send join first",
            ));
            continue;
        };
        match join(
            server,
            outbox,
            id,
            protocol_version,
            &room,
            &token,
            auto_subscribe,
        )
        .await
        {
            Ok(session) => return Some(session),
            Err((code, message)) => {
                tracing::info!(code = %code, "join refused");
                outbox.send(ServerMessage::error(Some(id), code, message));
                // A refused join ends the connection: the client must reconnect with a new token.
                return None;
            }
        }
    }
    None
}

enum Decoded {
    Message(ClientMessage),
    Skip,
    Close,
}

fn decode(message: Message, outbox: &Outbox) -> Decoded {
    let text = match message {
        Message::Text(text) => text,
        Message::Binary(bytes) => {
            if bytes.len() > MAX_SIGNAL_MESSAGE_BYTES {
                outbox.send(too_large(bytes.len()));
            } else {
                outbox.send(ServerMessage::error(
                    None,
                    ErrorCode::MalformedMessage,
                    "binary frames are not signaling messages",
                ));
            }
            return Decoded::Skip;
        }
        Message::Close(_) => return Decoded::Close,
        Message::Ping(_) | Message::Pong(_) => return Decoded::Skip,
    };
    if text.len() > MAX_SIGNAL_MESSAGE_BYTES {
        outbox.send(too_large(text.len()));
        return Decoded::Skip;
    }
    match serde_json::from_str::<ClientMessage>(text.as_str()) {
        Ok(msg) => Decoded::Message(msg),
        Err(err) => {
            let request_id = serde_json::from_str::<serde_json::Value>(text.as_str())
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_u64()));
            outbox.send(ServerMessage::error(
                request_id,
                ErrorCode::MalformedMessage,
                format!("not a valid signaling message: {err}"),
            ));
            Decoded::Skip
        }
    }
}

fn too_large(len: usize) -> ServerMessage {
    ServerMessage::error(
        None,
        ErrorCode::MessageTooLarge,
        format!("message of {len} bytes exceeds the {MAX_SIGNAL_MESSAGE_BYTES}-byte limit"),
    )
}

async fn join(
    server: &Arc<ServerState>,
    outbox: &Outbox,
    request_id: u64,
    protocol_version: u32,
    room_name: &str,
    token: &str,
    auto_subscribe: bool,
) -> Result<Session, (ErrorCode, String)> {
    if *server.shutdown.borrow() {
        return Err((
            ErrorCode::ServerFull,
            "the server is draining; join another instance".into(),
        ));
    }
    if protocol_version != PROTOCOL_VERSION {
        return Err((
            ErrorCode::UnsupportedVersion,
            format!("server speaks protocol version {PROTOCOL_VERSION}"),
        ));
    }
    let claims = server.verify_token(token).map_err(|err| match err {
        TokenError::Expired => (ErrorCode::TokenExpired, err.to_string()),
        other => (ErrorCode::InvalidToken, other.to_string()),
    })?;
    if claims.room != room_name {
        return Err((
            ErrorCode::RoomMismatch,
            "the token is for a different room".into(),
        ));
    }
    let id = ParticipantId::from_counter(server.rooms.next_counter());
    let subscriber = Arc::new(Subscriber::new(
        id.clone(),
        Arc::clone(&server.mux),
        outbox.clone(),
        Arc::clone(&server.metrics),
    ));
    let (control_tx, control) = mpsc::unbounded_channel();
    let link = Link::new(outbox.clone(), control_tx, Arc::clone(&subscriber));
    let starter = link.starter();
    let joiner = Joiner {
        id: id.clone(),
        identity: claims.sub.clone(),
        name: claims.name.clone().unwrap_or_else(|| claims.sub.clone()),
        role: claims.role,
        grants: claims.grants.clone(),
        auto_subscribe,
        classroom: claims.classroom.clone(),
    };
    // `joined` goes out first. The subscriber connection offers only once started below, so
    // its first offer follows `joined` and carries the subscriptions the join made.
    let room = server
        .rooms
        .join(room_name, joiner, link, request_id, &server.limits)
        .await
        .map_err(|refusal| (refusal.code, refusal.message))?;
    tracing::info!(room = room_name, participant = %id, role = %claims.role, "participant joined");
    server.metrics.joins.inc();
    // A participant that will receive tracks gets its subscriber connection now even in an
    // empty room, so that it is up by the time the first track arrives.
    starter.start(auto_subscribe && claims.grants.subscribe);
    let (peer_events_tx, peer_events) = mpsc::channel(64);
    Ok(Session {
        server: Arc::clone(server),
        room,
        id,
        subscriber,
        outbox: outbox.clone(),
        control,
        publisher: None,
        announced: HashMap::new(),
        layered: HashMap::new(),
        sent_layers: HashMap::new(),
        peer_events_tx,
        peer_events,
        rate: MessageRate::new(
            server.limits.max_messages_per_second,
            burst_for(server.limits.max_messages_per_second),
            Instant::now(),
        ),
        whiteboard: crate::whiteboard::SessionBoard::new(&claims, server.boards.limits()),
    })
}

/// Events from the publisher connection, handled on the session task.
enum PeerEvent {
    Track(Arc<dyn TrackRemote>),
}

struct PublisherEvents {
    gathered: GatherSignal,
    events: mpsc::Sender<PeerEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PublisherEvents {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathered.on_state(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PeerEvent::Track(track)).await;
    }
}

struct Session {
    server: Arc<ServerState>,
    room: Arc<Room>,
    id: ParticipantId,
    subscriber: Arc<Subscriber>,
    outbox: Outbox,
    control: mpsc::UnboundedReceiver<SessionControl>,
    publisher: Option<ServerPeer>,
    /// Tracks announced with `publish_track` whose media has not arrived yet, by client id.
    announced: HashMap<String, TrackInfo>,
    /// Published simulcast tracks, by client id, for their later layers to attach to.
    layered: HashMap<String, Arc<PublishedTrack>>,
    /// Layers reported sent for tracks whose media has not arrived yet.
    sent_layers: HashMap<TrackSid, Vec<u8>>,
    peer_events_tx: mpsc::Sender<PeerEvent>,
    peer_events: mpsc::Receiver<PeerEvent>,
    rate: MessageRate,
    whiteboard: crate::whiteboard::SessionBoard,
}

impl Session {
    /// Handles one WebSocket message; returns a reason when the session should end.
    async fn on_ws_message(&mut self, message: Message) -> Option<LeaveReason> {
        if let Message::Binary(bytes) = message {
            // Whiteboard frames have their own rate limit (strokes stream many per second).
            if self.whiteboard.is_attached() {
                self.whiteboard.on_frame(&bytes).await;
            } else {
                self.whiteboard.refuse();
            }
            return None;
        }
        if !matches!(message, Message::Close(_)) && !self.rate.allow(Instant::now()) {
            // The refusal names the request it drops, so that the client's call fails at once
            // instead of waiting out its timeout.
            let request_id = match &message {
                Message::Text(text) => request_id_of(text.as_str()),
                _ => None,
            };
            self.outbox.send(ServerMessage::error(
                request_id,
                ErrorCode::RateLimited,
                "too many messages; this one was dropped",
            ));
            return None;
        }
        let msg = match decode(message, &self.outbox) {
            Decoded::Message(msg) => msg,
            Decoded::Skip => return None,
            Decoded::Close => return Some(LeaveReason::ClientRequest),
        };
        let request_id = msg.request_id();
        if let ClientMessage::Leave { id } = msg {
            self.outbox.send(ServerMessage::Ok { request_id: id });
            return Some(LeaveReason::ClientRequest);
        }
        let started = Instant::now();
        let kind = msg.kind();
        if let Err((code, message)) = self.handle(msg).await {
            self.outbox
                .send(ServerMessage::error(request_id, code, message));
        }
        self.server
            .metrics
            .signaling_handled(kind, started.elapsed());
        None
    }

    async fn handle(&mut self, msg: ClientMessage) -> Result<(), (ErrorCode, String)> {
        match msg {
            ClientMessage::Join { .. } => Err((ErrorCode::AlreadyJoined, "already joined".into())),
            ClientMessage::PublishTrack {
                id,
                cid,
                source,
                name,
                width,
                height,
                layers,
            } => {
                if cid.is_empty() || cid.len() > MAX_CID_BYTES || self.announced.contains_key(&cid)
                {
                    return Err((
                        ErrorCode::InvalidRequest,
                        "cid must be unique, non-empty and at most 64 bytes".into(),
                    ));
                }
                check_layers(source, &layers)?;
                let track = TrackInfo {
                    sid: TrackSid::from_counter(self.server.rooms.next_counter()),
                    kind: source.kind(),
                    source,
                    name: name.chars().take(128).collect(),
                    width,
                    height,
                    layers,
                    muted: false,
                };
                self.room
                    .announce_track(&self.id, track.clone())
                    .await
                    .map_err(|refusal| (refusal.code, refusal.message))?;
                self.announced.insert(cid.clone(), track.clone());
                self.outbox.send(ServerMessage::TrackPublished {
                    request_id: id,
                    cid,
                    track,
                });
                Ok(())
            }
            ClientMessage::PublisherOffer { id, sdp } => {
                if self.publisher.is_none() {
                    let events = self.peer_events_tx.clone();
                    let peer = ServerPeer::new(
                        &self.server.mux,
                        &self.server.metrics,
                        None,
                        move |gathered| {
                            Arc::new(PublisherEvents { gathered, events })
                                as Arc<dyn PeerConnectionEventHandler>
                        },
                    )
                    .await
                    .map_err(internal)?;
                    self.publisher = Some(peer);
                }
                let Some(peer) = self.publisher.as_ref() else {
                    return Err((ErrorCode::Internal, "publisher connection missing".into()));
                };
                let answer = peer
                    .answer(sdp)
                    .await
                    .map_err(|e| (ErrorCode::InvalidRequest, e.to_string()))?;
                self.outbox.send(ServerMessage::PublisherAnswer {
                    request_id: id,
                    sdp: answer,
                });
                Ok(())
            }
            ClientMessage::SubscriberAnswer { id, sdp } => {
                self.subscriber
                    .on_answer(sdp)
                    .await
                    .map_err(|e| (ErrorCode::InvalidRequest, e.to_string()))?;
                self.outbox.send(ServerMessage::Ok { request_id: id });
                Ok(())
            }
            ClientMessage::Trickle { target, candidate } => {
                let init = candidate_init(candidate);
                let result = match target {
                    PeerRole::Publisher => match self.publisher.as_ref() {
                        Some(peer) => peer
                            .pc
                            .add_ice_candidate(init)
                            .await
                            .map_err(|e| e.to_string()),
                        None => Err("no publisher connection yet".into()),
                    },
                    PeerRole::Subscriber => self
                        .subscriber
                        .add_ice_candidate(init)
                        .await
                        .map_err(|e| e.to_string()),
                };
                result.map_err(|e| (ErrorCode::InvalidRequest, format!("candidate refused: {e}")))
            }
            ClientMessage::LayersActive { sid, layers } => {
                match self.layered.values().find(|t| t.info.sid == sid) {
                    Some(track) => {
                        track.set_sent_layers(&layers);
                        Ok(())
                    }
                    // Announced, media not here yet: applied when it comes.
                    None if self.announced.values().any(|t| t.sid == sid) => {
                        self.sent_layers.insert(sid, layers);
                        Ok(())
                    }
                    None => Err((ErrorCode::UnknownTrack, format!("no track {sid}"))),
                }
            }
            ClientMessage::Ping { id } => {
                self.outbox.send(ServerMessage::Pong { request_id: id });
                Ok(())
            }
            ClientMessage::Leave { id } => {
                self.outbox.send(ServerMessage::Ok { request_id: id });
                Ok(())
            }
            // Everything else is the room's: tracks, subscriptions, the classroom, chat.
            other => {
                if self.room.request(&self.id, other).await {
                    Ok(())
                } else {
                    Err((ErrorCode::MalformedMessage, "unsupported message".into()))
                }
            }
        }
    }

    /// Carries out what the room tells this session; returns a reason when it must end.
    async fn on_control(
        &mut self,
        control: SessionControl,
        server: &Arc<ServerState>,
        wb_tx: &crate::whiteboard::FrameSender,
        overflowed: &Arc<tokio::sync::Notify>,
    ) -> Option<LeaveReason> {
        match control {
            SessionControl::End(reason) => return Some(reason),
            SessionControl::Board(access) => {
                if access.attached && !self.whiteboard.is_attached() {
                    self.whiteboard
                        .attach(
                            server,
                            &self.room.info.name,
                            wb_tx.clone(),
                            Arc::clone(overflowed),
                        )
                        .await;
                } else if !access.attached && self.whiteboard.is_attached() {
                    self.whiteboard.detach().await;
                }
                self.whiteboard.set_access(access.write, access.admin);
            }
            SessionControl::TrackEnded(sid) => {
                self.announced.retain(|_, t| t.sid != sid);
                self.layered.retain(|_, t| t.info.sid != sid);
                self.sent_layers.remove(&sid);
            }
        }
        None
    }

    async fn on_peer_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Track(remote) => {
                let track_id = remote.track_id().await;
                // A whole track has its client id; layer `i` of a simulcast track is `cid.i`.
                let (cid, layer) = match track_id.rsplit_once('.') {
                    Some((cid, layer))
                        if !self.announced.contains_key(&track_id)
                            && (self.announced.contains_key(cid)
                                || self.layered.contains_key(cid)) =>
                    {
                        match layer.parse::<u8>() {
                            Ok(layer) => (cid.to_owned(), layer),
                            Err(_) => (track_id.clone(), 0),
                        }
                    }
                    _ => (track_id.clone(), 0),
                };
                if let Some(track) = self.layered.get(&cid) {
                    if crate::track_kind::admit(
                        remote.as_ref(),
                        &cid,
                        &track.info,
                        &self.id,
                        &self.server.metrics,
                        &self.outbox,
                    )
                    .await
                    {
                        track.attach_layer(layer, remote).await;
                    }
                    return;
                }
                let Some(info) = self.announced.remove(&cid) else {
                    tracing::warn!(participant = %self.id, "media for a track that was not announced; ignored");
                    return;
                };
                if !crate::track_kind::admit(
                    remote.as_ref(),
                    &cid,
                    &info,
                    &self.id,
                    &self.server.metrics,
                    &self.outbox,
                )
                .await
                {
                    return;
                }
                if usize::from(layer) >= info.layers.len().max(1) {
                    tracing::warn!(participant = %self.id, layer, "media for a layer that was not announced; ignored");
                    self.announced.insert(cid, info);
                    return;
                }
                let Some(track) = PublishedTrack::start(
                    info,
                    self.id.clone(),
                    layer,
                    remote,
                    self.server.metrics.keyframe_requests.clone(),
                    self.outbox.clone(),
                )
                .await
                else {
                    return;
                };
                if let Some(layers) = self.sent_layers.remove(&track.info.sid) {
                    track.set_sent_layers(&layers);
                }
                // Kept for later layers to attach to, and for `layers_active`.
                self.layered.insert(cid, Arc::clone(&track));
                tracing::info!(participant = %self.id, track = %track.info.sid, kind = %track.info.kind, layers = track.layer_count(), "track published");
                self.room.track_started(&self.id, track).await;
            }
        }
    }

    async fn end(self, reason: LeaveReason) {
        tracing::info!(participant = %self.id, ?reason, "participant left");
        self.server.rooms.leave(&self.room, &self.id, reason).await;
        if let Some(peer) = self.publisher {
            peer.close(&self.server.metrics).await;
        }
    }
}

/// Checks the simulcast layers a client announces: video only, at most [`MAX_VIDEO_LAYERS`],
/// sizes and rates in range and growing from the first to the last.
fn check_layers(source: TrackSource, layers: &[VideoLayer]) -> Result<(), (ErrorCode, String)> {
    let refuse = |why: &str| Err((ErrorCode::InvalidRequest, format!("layers: {why}")));
    if layers.is_empty() {
        return Ok(());
    }
    if source.kind() != MediaKind::Video {
        return refuse("only video tracks have layers");
    }
    if layers.len() > MAX_VIDEO_LAYERS {
        return refuse(&format!("at most {MAX_VIDEO_LAYERS}"));
    }
    let valid = |l: &VideoLayer| {
        (16..=4096).contains(&l.width)
            && (16..=4096).contains(&l.height)
            && (10_000..=100_000_000).contains(&l.max_bitrate_bps)
    };
    if !layers.iter().all(valid) {
        return refuse("sizes must be 16 to 4096 pixels and rates 10 kbit/s to 100 Mbit/s");
    }
    if layers
        .windows(2)
        .any(|w| w[1].width * w[1].height < w[0].width * w[0].height)
    {
        return refuse("must be listed smallest first");
    }
    Ok(())
}

fn internal(err: impl std::fmt::Display) -> (ErrorCode, String) {
    tracing::error!(error = %err, "internal error");
    (ErrorCode::Internal, err.to_string())
}

fn candidate_init(candidate: IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: candidate.candidate,
        sdp_mid: candidate.sdp_mid,
        sdp_mline_index: candidate.sdp_mline_index,
        username_fragment: candidate.username_fragment,
        url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::request_id_of;

    #[test]
    fn a_dropped_request_is_named_by_its_id_when_it_has_one() {
        assert_eq!(
            request_id_of(r#"{"type":"send_chat","id":42,"text":"hi"}"#),
            Some(42)
        );
        assert_eq!(request_id_of(r#"{"type":"leave"}"#), None);
        assert_eq!(request_id_of("not json"), None);
        assert_eq!(request_id_of(r#"{"id":"seven"}"#), None);
    }
}
