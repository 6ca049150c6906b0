//! The async driver of each room's rules: it feeds inputs to the room's
//! [`RoomState`](crate::classroom::RoomState) and carries out the actions it returns, on
//! signaling queues, SFU subscriptions, published tracks, the store and webhooks.
//!
//! A room exists while someone is in it (or while the server API keeps it): opened by the
//! first join from what the store kept of it, closed when the last participant leaves. Every
//! input holds the room's lock from the state machine's decision until its actions are
//! queued, so a room's events go out in the order it decided them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aula_protocol::api::{RoomDetail, RoomSummary};
use aula_protocol::signal::LeaveReason;
use aula_protocol::webhook::WebhookEventKind;
use aula_protocol::{
    ChatMessage, ClientMessage, ErrorCode, ParticipantId, ParticipantInfo, RoomInfo, RoomSettings,
    ServerMessage, TrackInfo, TrackSid,
};
use tokio::sync::{mpsc, Mutex};

use crate::classroom::{
    Action, Actor, BoardAccess, Command, Joiner, Now, Refusal, RoomRecord, RoomSnapshot, RoomState,
};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::sfu::{PublishedTrack, Subscriber};
use crate::storage::{Storage, StorageError, Write};
use crate::webhooks::Webhooks;

/// A class whose room stayed empty this long starts over (new class number: no chat, bans or
/// lock from before) when the room opens again.
pub const CLASS_IDLE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// What the room tells a participant's session to do.
#[derive(Debug)]
pub enum SessionControl {
    /// End the session (the `leave` message is queued already).
    End(LeaveReason),
    /// Attach to, detach from, or change access to the whiteboard.
    Board(BoardAccess),
    /// The room ended one of its tracks: forget it, forward nothing more of it.
    TrackEnded(TrackSid),
}

/// Subscription changes for one participant, carried out in order on its own task.
enum SfuOp {
    Subscribe(Arc<PublishedTrack>),
    Unsubscribe(TrackSid),
    /// The participant was told it joined: the subscriber starts offering (opening its
    /// connection now if asked); queued behind the subscriptions of the join.
    Start {
        open_early: bool,
    },
}

/// Starts a participant's subscriber once its join is through (see [`Link::starter`]).
pub struct SubscriberStarter(mpsc::UnboundedSender<SfuOp>);

impl SubscriberStarter {
    /// Queues the start behind every subscription queued so far, so the first offer carries
    /// the room's tracks.
    pub fn start(self, open_early: bool) {
        let _ = self.0.send(SfuOp::Start { open_early });
    }
}

/// What the room holds of a participant's session.
pub struct Link {
    outbox: Outbox,
    control: mpsc::UnboundedSender<SessionControl>,
    sfu: mpsc::UnboundedSender<SfuOp>,
}

impl Link {
    /// What starts the subscriber after the join (the link itself goes to the room).
    pub fn starter(&self) -> SubscriberStarter {
        SubscriberStarter(self.sfu.clone())
    }

    /// A link to a session that receives on `outbox` and `control`, and whose forwarded
    /// tracks `subscriber` carries. Starts the task that applies its subscription changes.
    pub fn new(
        outbox: Outbox,
        control: mpsc::UnboundedSender<SessionControl>,
        subscriber: Arc<Subscriber>,
    ) -> Self {
        let (sfu, mut ops) = mpsc::unbounded_channel::<SfuOp>();
        tokio::spawn(async move {
            while let Some(op) = ops.recv().await {
                let result = match op {
                    SfuOp::Subscribe(track) => subscriber.subscribe(track).await,
                    SfuOp::Unsubscribe(sid) => subscriber.unsubscribe(&sid).await.map(drop),
                    SfuOp::Start { open_early } => subscriber.start(open_early).await,
                };
                if let Err(err) = result {
                    tracing::warn!(error = %err, "subscription change failed");
                }
            }
            // The session is over: nothing is forwarded to it any more.
            subscriber.close().await;
        });
        Self {
            outbox,
            control,
            sfu,
        }
    }
}

struct Core {
    state: RoomState,
    links: HashMap<ParticipantId, Link>,
    tracks: HashMap<TrackSid, Arc<PublishedTrack>>,
    closed: bool,
}

/// One open room.
pub struct Room {
    /// The room's name and incarnation id.
    pub info: RoomInfo,
    core: Mutex<Core>,
    store: Arc<dyn Storage>,
    webhooks: Arc<Webhooks>,
    metrics: Arc<Metrics>,
}

impl Room {
    /// Tells the application's backend (webhooks) that `kind` happened here.
    fn announce(&self, kind: WebhookEventKind) {
        self.webhooks.emit(&self.info, kind);
    }

    /// Adds a participant; its `joined` (with `request_id`) is queued on success.
    async fn join(&self, joiner: Joiner, link: Link, request_id: u64) -> Result<(), Refusal> {
        let mut core = self.core.lock().await;
        if core.closed {
            return Err(Refusal::new(
                ErrorCode::Internal,
                "the room just closed; join again",
            ));
        }
        let id = joiner.id.clone();
        let mut actions = core.state.join(joiner, Now::system())?;
        for action in &mut actions {
            if let Action::Send {
                to,
                message:
                    ServerMessage::Joined {
                        request_id: r,
                        room,
                        ..
                    },
            } = action
            {
                if *to == id {
                    *r = request_id;
                    *room = self.info.clone();
                }
            }
        }
        core.links.insert(id, link);
        self.execute(&mut core, actions).await;
        Ok(())
    }

    /// A participant's session ended. Returns whether the room is now empty.
    async fn leave(&self, id: &ParticipantId, reason: LeaveReason) -> bool {
        let mut core = self.core.lock().await;
        let actions = core.state.leave(id, reason, Now::system());
        core.links.remove(id);
        self.execute(&mut core, actions).await;
        core.state.is_empty()
    }

    /// A classroom request from a participant. Returns `false` for messages that are not
    /// the room's business.
    pub async fn request(&self, from: &ParticipantId, message: ClientMessage) -> bool {
        let mut core = self.core.lock().await;
        let Some(actions) = core.state.request(from, message, Now::system()) else {
            return false;
        };
        self.execute(&mut core, actions).await;
        true
    }

    /// A participant announced a track (`publish_track`).
    pub async fn announce_track(
        &self,
        id: &ParticipantId,
        track: TrackInfo,
    ) -> Result<(), Refusal> {
        self.core.lock().await.state.announce_track(id, track)
    }

    /// Media of an announced track arrived.
    pub async fn track_started(&self, id: &ParticipantId, track: Arc<PublishedTrack>) {
        let mut core = self.core.lock().await;
        let sid = track.info.sid.clone();
        core.tracks.insert(sid.clone(), track);
        let actions = core.state.track_started(id, &sid, Now::system());
        self.execute(&mut core, actions).await;
    }

    /// A teacher's command through the server API. A system message is returned as stored.
    async fn command(&self, command: Command) -> Result<Option<ChatMessage>, Refusal> {
        let mut core = self.core.lock().await;
        let actions = core.state.command(Actor::Api, command, Now::system())?;
        let stored = actions.iter().find_map(|a| match a {
            Action::StoreChat { message, .. } => Some(message.clone()),
            _ => None,
        });
        let failed = self.execute(&mut core, actions).await;
        match stored {
            Some(message) if failed.contains(&message.seq) => Err(Refusal::new(
                ErrorCode::Internal,
                "the message could not be stored",
            )),
            other => Ok(other),
        }
    }

    /// The room as the server API lists it.
    async fn detail(&self) -> RoomDetail {
        let core = self.core.lock().await;
        let state = &core.state;
        RoomDetail {
            summary: summary(state.record(), Some(&self.info), state.len()),
            classroom: Some(state.classroom(std::time::Instant::now())),
            participant_list: state.participants(),
        }
    }

    /// Participants and tracks, for the metrics.
    async fn census(&self) -> (usize, usize) {
        let core = self.core.lock().await;
        let participants = core.state.participants();
        let tracks = participants.iter().map(|p| p.tracks.len()).sum();
        (participants.len(), tracks)
    }

    /// Carries out `actions` in order. Stores go first, in one transaction: nothing they
    /// record is told to anyone before it is durable. Returns the chat messages whose store
    /// failed.
    async fn execute(&self, core: &mut Core, actions: Vec<Action>) -> Vec<u64> {
        let mut failed = Vec::new();
        let mut queue: VecDeque<Action> = actions.into();
        while !queue.is_empty() {
            let (writes, chats) = self.take_writes(&mut queue);
            if !writes.is_empty() {
                let ok = self.store_writes(writes).await;
                for seq in chats {
                    let follow = if ok {
                        core.state.chat_stored(seq)
                    } else {
                        failed.push(seq);
                        core.state.chat_store_failed(seq)
                    };
                    queue.extend(follow);
                }
            }
            let Some(action) = queue.pop_front() else {
                break;
            };
            self.carry_out(core, action).await;
        }
        failed
    }

    /// Takes every store action out of the queue: the writes, and which chat messages they
    /// hold.
    fn take_writes(&self, queue: &mut VecDeque<Action>) -> (Vec<Write>, Vec<u64>) {
        let mut writes = Vec::new();
        let mut chats = Vec::new();
        queue.retain(|action| match action {
            Action::StoreRoom(record) => {
                writes.push(Write::Room(record.clone()));
                false
            }
            Action::StoreAttendance(event) => {
                writes.push(Write::Attendance {
                    room: self.info.name.clone(),
                    event: event.clone(),
                });
                false
            }
            Action::StoreChat { class, message } => {
                chats.push(message.seq);
                writes.push(Write::Chat {
                    room: self.info.name.clone(),
                    class: *class,
                    message: message.clone(),
                });
                false
            }
            _ => true,
        });
        (writes, chats)
    }

    async fn store_writes(&self, writes: Vec<Write>) -> bool {
        let store = Arc::clone(&self.store);
        let result = tokio::task::spawn_blocking(move || store.write(&writes))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))
            .and_then(|r| r);
        match result {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(room = %self.info.name, error = %err, "storing the room's changes failed");
                self.metrics.error(ErrorCode::Internal);
                false
            }
        }
    }

    async fn carry_out(&self, core: &mut Core, action: Action) {
        match action {
            Action::Send { to, message } => {
                if let Some(link) = core.links.get(&to) {
                    link.outbox.send(message);
                }
            }
            Action::Subscribe { subscriber, track } => {
                if let (Some(link), Some(track)) =
                    (core.links.get(&subscriber), core.tracks.get(&track))
                {
                    let _ = link.sfu.send(SfuOp::Subscribe(Arc::clone(track)));
                }
            }
            Action::Unsubscribe { subscriber, track } => {
                if let Some(link) = core.links.get(&subscriber) {
                    let _ = link.sfu.send(SfuOp::Unsubscribe(track));
                }
            }
            Action::EndTrack { publisher, track } => {
                core.tracks.remove(&track);
                if let Some(link) = core.links.get(&publisher) {
                    let _ = link.control.send(SessionControl::TrackEnded(track));
                }
            }
            Action::SetForwarding { track, forwarded } => {
                if let Some(track) = core.tracks.get(&track) {
                    track.set_forwarded(forwarded);
                }
            }
            Action::Disconnect {
                who,
                reason,
                message,
            } => {
                if let Some(link) = core.links.remove(&who) {
                    link.outbox.send(ServerMessage::Leave { reason, message });
                    let _ = link.control.send(SessionControl::End(reason));
                }
            }
            Action::Board { who, access } => {
                if let Some(link) = core.links.get(&who) {
                    let _ = link.control.send(SessionControl::Board(access));
                }
            }
            Action::Webhook(kind) => self.announce(kind),
            Action::LoadChatPage {
                to,
                identity,
                request_id,
                class,
                before,
                limit,
            } => {
                let Some(link) = core.links.get(&to) else {
                    return;
                };
                let outbox = link.outbox.clone();
                let store = Arc::clone(&self.store);
                let room = self.info.name.clone();
                tokio::spawn(async move {
                    let page = tokio::task::spawn_blocking(move || {
                        store.chat_page(&room, class, before, limit, Some(&identity))
                    })
                    .await;
                    let message = match page {
                        Ok(Ok((messages, more))) => ServerMessage::ChatHistory {
                            request_id,
                            messages,
                            more,
                        },
                        _ => ServerMessage::error(
                            Some(request_id),
                            ErrorCode::Internal,
                            "chat history is unavailable",
                        ),
                    };
                    outbox.send(message);
                });
            }
            Action::StoreRoom(_) | Action::StoreAttendance(_) | Action::StoreChat { .. } => {
                // Taken out and stored before anything else (see `execute`).
            }
        }
    }
}

fn summary(record: &RoomRecord, open: Option<&RoomInfo>, participants: usize) -> RoomSummary {
    RoomSummary {
        name: record.name.clone(),
        sid: open.map(|i| i.sid.clone()),
        class: record.class,
        participants,
        settings: record.settings.clone(),
        locked: record.locked,
    }
}

/// Every open room on this server.
pub struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_id: AtomicU64,
    webhooks: Arc<Webhooks>,
    store: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
}

impl Rooms {
    /// No rooms open yet; rooms keep what lasts in `store`, and tell `webhooks` what happens.
    pub fn new(webhooks: Arc<Webhooks>, store: Arc<dyn Storage>, metrics: Arc<Metrics>) -> Self {
        Self {
            rooms: Mutex::default(),
            next_id: AtomicU64::new(0),
            webhooks,
            store,
            metrics,
        }
    }

    /// A fresh id for a participant or track.
    pub fn next_counter(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The stored record of `name`, if any.
    async fn stored(&self, name: &str) -> Result<Option<RoomRecord>, Refusal> {
        let store = Arc::clone(&self.store);
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || store.room(&name))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))
            .and_then(|r| r)
            .map_err(internal)
    }

    /// Opens room `name` from what the store kept of it.
    async fn open(&self, name: &str, limits: &Limits) -> Result<Arc<Room>, Refusal> {
        let now = Now::system();
        let stored = self.stored(name).await?;
        let mut record = stored
            .clone()
            .unwrap_or_else(|| RoomRecord::new(name, now.unix_ms));
        if record.last_active_ms + (CLASS_IDLE_TIMEOUT.as_millis() as u64) < now.unix_ms {
            record = record.next_class();
        }
        record.last_active_ms = now.unix_ms;
        if stored.as_ref().is_none_or(|s| s.class != record.class) {
            // A new room, or a new class: from now on the store knows it.
            self.write(vec![Write::Room(record.clone())]).await?;
        }
        let store = Arc::clone(&self.store);
        let (room, class) = (name.to_owned(), record.class);
        let (chat_tail, last_attendance) = tokio::task::spawn_blocking(move || {
            let tail =
                store.chat_page(&room, class, u64::MAX, crate::classroom::CHAT_WINDOW, None)?;
            let last = store.last_attendance_seq(&room, class)?;
            Ok::<_, StorageError>((tail.0, last))
        })
        .await
        .map_err(|e| StorageError::Task(e.to_string()))
        .and_then(|r| r)
        .map_err(internal)?;
        let snapshot = RoomSnapshot {
            record,
            chat_tail,
            next_attendance_seq: last_attendance + 1,
        };
        let room = Arc::new(Room {
            info: RoomInfo {
                name: name.to_owned(),
                sid: format!("RM_{:08x}", self.next_counter()),
            },
            core: Mutex::new(Core {
                state: RoomState::new(snapshot, limits.max_participants_per_room),
                links: HashMap::new(),
                tracks: HashMap::new(),
                closed: false,
            }),
            store: Arc::clone(&self.store),
            webhooks: Arc::clone(&self.webhooks),
            metrics: Arc::clone(&self.metrics),
        });
        room.announce(WebhookEventKind::RoomStarted);
        tracing::info!(room = name, "room opened");
        Ok(room)
    }

    /// Adds a participant to room `name`, opening the room if needed and `limits` allow. Its
    /// `joined` (with `request_id`) is queued on success.
    pub async fn join(
        &self,
        name: &str,
        joiner: Joiner,
        link: Link,
        request_id: u64,
        limits: &Limits,
    ) -> Result<Arc<Room>, Refusal> {
        let mut rooms = self.rooms.lock().await;
        let room = match rooms.get(name) {
            Some(room) => Arc::clone(room),
            None if rooms.len() >= limits.max_rooms => {
                return Err(Refusal::new(
                    ErrorCode::ServerFull,
                    "the server opens no more rooms",
                ))
            }
            None => {
                let room = self.open(name, limits).await?;
                rooms.insert(name.to_owned(), Arc::clone(&room));
                room
            }
        };
        // Joining under the registry lock keeps a concurrent last-leave from closing the room
        // between lookup and join.
        let joined = room.join(joiner, link, request_id).await;
        if joined.is_err() {
            self.close_if_idle(&mut rooms, &room).await;
        }
        joined.map(|()| room)
    }

    /// Removes a participant; closes the room if it is now empty.
    pub async fn leave(&self, room: &Arc<Room>, id: &ParticipantId, reason: LeaveReason) {
        let mut rooms = self.rooms.lock().await;
        room.leave(id, reason).await;
        self.close_if_idle(&mut rooms, room).await;
    }

    /// Closes `room` when nobody is in it.
    async fn close_if_idle(&self, rooms: &mut HashMap<String, Arc<Room>>, room: &Arc<Room>) {
        let mut core = room.core.lock().await;
        if core.closed || !core.state.is_empty() {
            return;
        }
        core.closed = true;
        if rooms
            .get(&room.info.name)
            .is_some_and(|r| Arc::ptr_eq(r, room))
        {
            rooms.remove(&room.info.name);
        }
        tracing::info!(room = %room.info.name, "room closed");
        room.announce(WebhookEventKind::RoomFinished);
    }

    /// Number of open rooms.
    pub async fn count(&self) -> usize {
        self.rooms.lock().await.len()
    }

    /// Open rooms, participants in them, and tracks they publish.
    pub async fn census(&self) -> (usize, usize, usize) {
        let rooms: Vec<Arc<Room>> = self.rooms.lock().await.values().cloned().collect();
        let mut participants = 0;
        let mut tracks = 0;
        for room in &rooms {
            let (p, t) = room.census().await;
            participants += p;
            tracks += t;
        }
        (rooms.len(), participants, tracks)
    }

    // ----- the server API -----

    /// Every room open now or created through the API.
    pub async fn list(&self) -> Result<Vec<RoomSummary>, Refusal> {
        let open: Vec<Arc<Room>> = self.rooms.lock().await.values().cloned().collect();
        let mut listed: HashMap<String, RoomSummary> = HashMap::new();
        for room in open {
            listed.insert(room.info.name.clone(), room.detail().await.summary);
        }
        let store = Arc::clone(&self.store);
        let stored = tokio::task::spawn_blocking(move || store.rooms())
            .await
            .map_err(|e| StorageError::Task(e.to_string()))
            .and_then(|r| r)
            .map_err(internal)?;
        for record in stored.into_iter().filter(|r| r.created_by_api) {
            listed
                .entry(record.name.clone())
                .or_insert_with(|| summary(&record, None, 0));
        }
        let mut all: Vec<RoomSummary> = listed.into_values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Creates room `name` with `settings`, or gives an existing room these settings.
    pub async fn create(&self, name: &str, settings: RoomSettings) -> Result<RoomDetail, Refusal> {
        settings
            .validate()
            .map_err(|e| Refusal::new(ErrorCode::InvalidRequest, e.to_string()))?;
        let open = self.rooms.lock().await.get(name).cloned();
        if let Some(room) = open {
            room.command(Command::UpdateSettings(settings_patch(&settings)))
                .await?;
            let record = room.core.lock().await.state.keep_listed();
            self.write(vec![Write::Room(record)]).await?;
            return Ok(room.detail().await);
        }
        let now = Now::system();
        let mut record = self
            .stored(name)
            .await?
            .unwrap_or_else(|| RoomRecord::new(name, now.unix_ms));
        record.settings = settings;
        record.configured = true;
        record.created_by_api = true;
        record.last_active_ms = now.unix_ms;
        self.write(vec![Write::Room(record.clone())]).await?;
        Ok(RoomDetail {
            summary: summary(&record, None, 0),
            classroom: None,
            participant_list: Vec::new(),
        })
    }

    /// Room `name` in detail.
    pub async fn detail(&self, name: &str) -> Result<RoomDetail, Refusal> {
        let open = self.rooms.lock().await.get(name).cloned();
        if let Some(room) = open {
            return Ok(room.detail().await);
        }
        let record = self.stored(name).await?.ok_or_else(|| unknown_room(name))?;
        Ok(RoomDetail {
            summary: summary(&record, None, 0),
            classroom: None,
            participant_list: Vec::new(),
        })
    }

    /// A teacher's command on room `name` from the server API. Settings, lock and end of
    /// class also apply to a room nobody is in; everything else needs it open.
    pub async fn command(
        &self,
        name: &str,
        command: Command,
    ) -> Result<Option<ChatMessage>, Refusal> {
        let mut rooms = self.rooms.lock().await;
        if let Some(room) = rooms.get(name).cloned() {
            let outcome = room.command(command).await;
            self.close_if_idle(&mut rooms, &room).await;
            return outcome;
        }
        drop(rooms);
        let mut record = self.stored(name).await?.ok_or_else(|| unknown_room(name))?;
        match command {
            Command::UpdateSettings(patch) => {
                let settings = record.settings.patched(&patch);
                settings
                    .validate()
                    .map_err(|e| Refusal::new(ErrorCode::InvalidRequest, e.to_string()))?;
                record.settings = settings;
                record.configured = true;
            }
            Command::Lock(locked) => record.locked = locked,
            Command::EndClass => record = record.next_class(),
            _ => {
                return Err(Refusal::new(
                    ErrorCode::UnknownParticipant,
                    format!("nobody is in room {name}"),
                ))
            }
        }
        self.write(vec![Write::Room(record)]).await?;
        Ok(None)
    }

    /// The stored record of room `name` (open or not).
    pub async fn record(&self, name: &str) -> Result<RoomRecord, Refusal> {
        let open = self.rooms.lock().await.get(name).cloned();
        if let Some(room) = open {
            return Ok(room.core.lock().await.state.record().clone());
        }
        self.stored(name).await?.ok_or_else(|| unknown_room(name))
    }

    /// The storage behind the rooms.
    pub fn store(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.store)
    }

    /// Everyone in room `name` now (empty when it is not open).
    pub async fn participants(&self, name: &str) -> Vec<ParticipantInfo> {
        let open = self.rooms.lock().await.get(name).cloned();
        match open {
            Some(room) => room.core.lock().await.state.participants(),
            None => Vec::new(),
        }
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), Refusal> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.write(&writes))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))
            .and_then(|r| r)
            .map_err(internal)
    }
}

fn settings_patch(settings: &RoomSettings) -> aula_protocol::RoomSettingsPatch {
    aula_protocol::RoomSettingsPatch {
        mode: Some(settings.mode),
        lobby: Some(settings.lobby),
        stage_capacity: Some(settings.stage_capacity),
        auto_stage: Some(settings.auto_stage),
        chat: Some(settings.chat),
        student_private_chat: Some(settings.student_private_chat),
        students_may_unmute: Some(settings.students_may_unmute),
    }
}

fn unknown_room(name: &str) -> Refusal {
    Refusal::new(ErrorCode::UnknownRoom, format!("no room {name}"))
}

fn internal(err: StorageError) -> Refusal {
    tracing::error!(error = %err, "storage failed");
    Refusal::new(ErrorCode::Internal, "the server's storage failed")
}
