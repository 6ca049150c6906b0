//! Rooms and the participants in them.
//!
//! A room exists while someone is in it: created by the first join, closed when the last
//! participant leaves. Every change to a room's membership or tracks is announced to the others
//! here, so the announcements and the state cannot drift apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use aula_protocol::signal::LeaveReason;
use aula_protocol::{
    ErrorCode, Grants, ParticipantId, ParticipantInfo, RoomInfo, ServerMessage, TrackInfo, TrackSid,
};
use tokio::sync::{Mutex, Notify};

use aula_protocol::webhook::WebhookEventKind;

use crate::config::Limits;
use crate::outbox::Outbox;
use crate::sfu::{PublishedTrack, Subscriber};
use crate::webhooks::Webhooks;

/// One participant's session in a room.
pub struct Participant {
    /// How others see it (tracks are filled in from `published` when listed).
    pub info: ParticipantInfo,
    /// What its token allows.
    pub grants: Grants,
    /// Whether it is subscribed to new tracks automatically.
    pub auto_subscribe: bool,
    /// Its signaling queue.
    pub outbox: Outbox,
    /// Its subscriber connection.
    pub subscriber: Subscriber,
    /// Woken to end the session from outside (duplicate identity).
    pub kicked: Notify,
    published: StdMutex<BTreeMap<TrackSid, Arc<PublishedTrack>>>,
    /// Which of its published tracks it has muted (the flag others see in `TrackInfo`).
    muted: StdMutex<BTreeSet<TrackSid>>,
}

impl Participant {
    /// A participant with nothing published yet.
    pub fn new(
        info: ParticipantInfo,
        grants: Grants,
        auto_subscribe: bool,
        outbox: Outbox,
        subscriber: Subscriber,
    ) -> Self {
        Self {
            info,
            grants,
            auto_subscribe,
            outbox,
            subscriber,
            kicked: Notify::new(),
            published: StdMutex::new(BTreeMap::new()),
            muted: StdMutex::new(BTreeSet::new()),
        }
    }

    /// The participant's id.
    pub fn id(&self) -> &ParticipantId {
        &self.info.id
    }

    /// Its published tracks.
    pub fn published(&self) -> Vec<Arc<PublishedTrack>> {
        self.lock_published().values().cloned().collect()
    }

    /// How others see it, with its current tracks.
    pub fn snapshot(&self) -> ParticipantInfo {
        let mut info = self.info.clone();
        info.tracks = self
            .published()
            .iter()
            .map(|t| self.track_info(&t.info))
            .collect();
        info
    }

    /// `track` as others see it now (with its current muted flag).
    fn track_info(&self, track: &TrackInfo) -> TrackInfo {
        let muted = self.lock_muted().contains(&track.sid);
        TrackInfo {
            muted,
            ..track.clone()
        }
    }

    fn lock_muted(&self) -> std::sync::MutexGuard<'_, BTreeSet<TrackSid>> {
        self.muted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_published(&self) -> std::sync::MutexGuard<'_, BTreeMap<TrackSid, Arc<PublishedTrack>>> {
        self.published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct RoomState {
    participants: BTreeMap<ParticipantId, Arc<Participant>>,
    closed: bool,
}

/// A room: its participants and their tracks.
pub struct Room {
    /// The room's name and incarnation id.
    pub info: RoomInfo,
    state: Mutex<RoomState>,
    webhooks: Arc<Webhooks>,
}

impl Room {
    fn new(info: RoomInfo, webhooks: Arc<Webhooks>) -> Self {
        Self {
            info,
            state: Mutex::new(RoomState::default()),
            webhooks,
        }
    }

    /// Tells the application's backend (webhooks) that `kind` happened here.
    fn announce(&self, kind: WebhookEventKind) {
        self.webhooks.emit(&self.info, kind);
    }

    /// Adds `participant`, announces it, subscribes it to existing tracks if it asked for that,
    /// and returns everyone else. A participant with the same identity is asked to leave.
    async fn add(
        &self,
        participant: Arc<Participant>,
        max_participants: usize,
    ) -> Result<Vec<ParticipantInfo>, ErrorCode> {
        let mut state = self.state.lock().await;
        if state.closed {
            return Err(ErrorCode::Internal);
        }
        if state.participants.len() >= max_participants {
            return Err(ErrorCode::RoomFull);
        }
        for existing in state.participants.values() {
            if existing.info.identity == participant.info.identity {
                existing.kicked.notify_one();
            }
        }
        let others: Vec<Arc<Participant>> = state.participants.values().cloned().collect();
        state
            .participants
            .insert(participant.id().clone(), Arc::clone(&participant));
        drop(state);

        self.announce(WebhookEventKind::ParticipantJoined {
            participant: participant.snapshot(),
        });
        let joined = ServerMessage::ParticipantJoined {
            participant: participant.snapshot(),
        };
        for other in &others {
            other.outbox.send(joined.clone());
        }
        if participant.auto_subscribe && participant.grants.subscribe {
            for other in &others {
                for track in other.published() {
                    subscribe_or_log(&participant, track).await;
                }
            }
        }
        Ok(others.iter().map(|p| p.snapshot()).collect())
    }

    /// Removes a participant, ends its tracks for everyone, and announces it. Returns whether the
    /// room is now empty.
    async fn remove(&self, id: &ParticipantId, reason: LeaveReason) -> bool {
        let mut state = self.state.lock().await;
        let removed = state.participants.remove(id);
        let others: Vec<Arc<Participant>> = state.participants.values().cloned().collect();
        let empty = state.participants.is_empty();
        drop(state);
        let Some(removed) = removed else {
            return empty;
        };
        let ended: Vec<Arc<PublishedTrack>> = removed.lock_published().values().cloned().collect();
        let tracks: Vec<TrackSid> = ended.iter().map(|t| t.info.sid.clone()).collect();
        removed.lock_published().clear();
        for track in &ended {
            self.announce(WebhookEventKind::TrackUnpublished {
                participant_identity: removed.info.identity.clone(),
                track: track.info.clone(),
            });
        }
        self.announce(WebhookEventKind::ParticipantLeft {
            participant: removed.info.clone(),
            reason,
        });
        for other in &others {
            for sid in &tracks {
                unsubscribe_or_log(other, sid).await;
            }
            other.outbox.send(ServerMessage::ParticipantLeft {
                participant_id: id.clone(),
                reason,
            });
        }
        removed.subscriber.close().await;
        empty
    }

    /// Records a track that started arriving from `publisher`, announces it, and subscribes
    /// everyone who subscribes automatically.
    pub async fn publish(&self, publisher: &Arc<Participant>, track: Arc<PublishedTrack>) {
        publisher
            .lock_published()
            .insert(track.info.sid.clone(), Arc::clone(&track));
        if track.info.muted {
            // Muted while announced, before its media arrived.
            publisher.lock_muted().insert(track.info.sid.clone());
        }
        let info = publisher.track_info(&track.info);
        self.announce(WebhookEventKind::TrackPublished {
            participant_identity: publisher.info.identity.clone(),
            track: info.clone(),
        });
        let others = self.others(publisher.id()).await;
        let added = ServerMessage::TrackAdded {
            participant_id: publisher.id().clone(),
            track: info,
        };
        for other in &others {
            other.outbox.send(added.clone());
            if other.auto_subscribe && other.grants.subscribe {
                subscribe_or_log(other, Arc::clone(&track)).await;
            }
        }
    }

    /// Ends a published track for everyone. Returns whether it existed.
    pub async fn unpublish(&self, publisher: &Arc<Participant>, sid: &TrackSid) -> bool {
        let Some(track) = publisher.lock_published().remove(sid) else {
            return false;
        };
        publisher.lock_muted().remove(sid);
        self.announce(WebhookEventKind::TrackUnpublished {
            participant_identity: publisher.info.identity.clone(),
            track: track.info.clone(),
        });
        for other in self.others(publisher.id()).await {
            unsubscribe_or_log(&other, sid).await;
            other.outbox.send(ServerMessage::TrackRemoved {
                participant_id: publisher.id().clone(),
                track_sid: sid.clone(),
            });
        }
        true
    }

    /// Records that `publisher` muted or unmuted its track `sid` and tells everyone else when
    /// that changed the flag. Returns whether the track exists.
    pub async fn set_track_muted(
        &self,
        publisher: &Arc<Participant>,
        sid: &TrackSid,
        muted: bool,
    ) -> bool {
        if !publisher.lock_published().contains_key(sid) {
            return false;
        }
        let changed = {
            let mut set = publisher.lock_muted();
            if muted {
                set.insert(sid.clone())
            } else {
                set.remove(sid)
            }
        };
        if changed {
            let event = ServerMessage::TrackMuted {
                participant_id: publisher.id().clone(),
                track_sid: sid.clone(),
                muted,
                by_moderator: false,
            };
            for other in self.others(publisher.id()).await {
                other.outbox.send(event.clone());
            }
        }
        true
    }

    /// Subscribes `subscriber` to, or unsubscribes it from, `sids`.
    pub async fn update_subscription(
        &self,
        subscriber: &Arc<Participant>,
        sids: &[TrackSid],
        subscribe: bool,
    ) -> Result<(), ErrorCode> {
        let tracks = self.tracks_of_others(subscriber.id()).await;
        if let Some(unknown) = sids.iter().find(|sid| !tracks.contains_key(*sid)) {
            tracing::debug!(track = %unknown, "subscription to unknown track");
            return Err(ErrorCode::UnknownTrack);
        }
        for sid in sids {
            if subscribe {
                if let Some(track) = tracks.get(sid) {
                    subscriber
                        .subscriber
                        .subscribe(Arc::clone(track))
                        .await
                        .map_err(|_| ErrorCode::Internal)?;
                }
            } else {
                subscriber
                    .subscriber
                    .unsubscribe(sid)
                    .await
                    .map_err(|_| ErrorCode::Internal)?;
            }
        }
        Ok(())
    }

    async fn others(&self, id: &ParticipantId) -> Vec<Arc<Participant>> {
        let state = self.state.lock().await;
        state
            .participants
            .values()
            .filter(|p| p.id() != id)
            .cloned()
            .collect()
    }

    async fn tracks_of_others(&self, id: &ParticipantId) -> HashMap<TrackSid, Arc<PublishedTrack>> {
        self.others(id)
            .await
            .iter()
            .flat_map(|p| p.published())
            .map(|t| (t.info.sid.clone(), t))
            .collect()
    }

    async fn everyone(&self) -> Vec<Arc<Participant>> {
        self.state
            .lock()
            .await
            .participants
            .values()
            .cloned()
            .collect()
    }
}

async fn subscribe_or_log(participant: &Participant, track: Arc<PublishedTrack>) {
    if let Err(err) = participant.subscriber.subscribe(track).await {
        tracing::warn!(participant = %participant.info.id, error = %err, "subscription failed");
    }
}

async fn unsubscribe_or_log(participant: &Participant, sid: &TrackSid) {
    if let Err(err) = participant.subscriber.unsubscribe(sid).await {
        tracing::warn!(participant = %participant.info.id, error = %err, "unsubscription failed");
    }
}

/// Every open room on this server.
pub struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_id: AtomicU64,
    webhooks: Arc<Webhooks>,
}

impl Rooms {
    /// No rooms yet; room and participant events go to `webhooks`.
    pub fn new(webhooks: Arc<Webhooks>) -> Self {
        Self {
            rooms: Mutex::default(),
            next_id: AtomicU64::new(0),
            webhooks,
        }
    }

    /// A fresh id for a participant or track.
    pub fn next_counter(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds `participant` to room `name`, opening the room if needed and `limits` allow.
    pub async fn join(
        &self,
        name: &str,
        participant: Arc<Participant>,
        limits: &Limits,
    ) -> Result<(Arc<Room>, Vec<ParticipantInfo>), ErrorCode> {
        let mut rooms = self.rooms.lock().await;
        let room = match rooms.get(name) {
            Some(room) => Arc::clone(room),
            None if rooms.len() >= limits.max_rooms => return Err(ErrorCode::ServerFull),
            None => {
                let room = Arc::new(Room::new(
                    RoomInfo {
                        name: name.to_owned(),
                        sid: format!("RM_{:08x}", self.next_counter()),
                    },
                    Arc::clone(&self.webhooks),
                ));
                rooms.insert(name.to_owned(), Arc::clone(&room));
                room.announce(WebhookEventKind::RoomStarted);
                tracing::info!(room = name, "room opened");
                room
            }
        };
        // Joining under the registry lock keeps a concurrent last-leave from closing the room
        // between lookup and join.
        let others = room
            .add(participant, limits.max_participants_per_room)
            .await?;
        Ok((room, others))
    }

    /// Removes a participant; closes the room if it is now empty.
    pub async fn leave(&self, room: &Arc<Room>, id: &ParticipantId, reason: LeaveReason) {
        let mut rooms = self.rooms.lock().await;
        if room.remove(id, reason).await {
            let mut state = room.state.lock().await;
            if state.participants.is_empty() {
                state.closed = true;
                if rooms
                    .get(&room.info.name)
                    .is_some_and(|r| Arc::ptr_eq(r, room))
                {
                    rooms.remove(&room.info.name);
                }
                tracing::info!(room = %room.info.name, "room closed");
                room.announce(WebhookEventKind::RoomFinished);
            }
        }
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
            for participant in room.everyone().await {
                participants += 1;
                tracks += participant.published().len();
            }
        }
        (rooms.len(), participants, tracks)
    }
}
