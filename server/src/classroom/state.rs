//! [`RoomState`]: membership, placement, tracks, and the settling of derived events.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use aula_protocol::signal::LeaveReason;
use aula_protocol::webhook::WebhookEventKind;
use aula_protocol::{
    ChatMessage, ClassroomState, ErrorCode, ParticipantId, ParticipantInfo, Permissions,
    PermissionsPatch, Placement, RoomMode, RoomSettings, ServerMessage, TrackInfo, TrackSid,
    TrackSource,
};

use super::attendance::{AttendanceEvent, AttendanceKind};
use super::member::{Joiner, Member, MemberTrack};
use super::record::{RoomRecord, RoomSnapshot};
use super::{
    Action, BoardAccess, Now, Refusal, Subject, CHAT_BURST, CHAT_PER_SECOND, HANDS_PER_SECOND,
    HAND_BURST, MAX_TRACKS_PER_PARTICIPANT, STAGE_HOLD,
};
use crate::limits::MessageRate;

/// A student's place kept for it while it reconnects.
#[derive(Clone, Debug)]
pub(super) struct Hold {
    pub placement: Placement,
    pub co_teacher: bool,
    pub until: Instant,
}

/// What a participant was last told, so that only changes are sent.
#[derive(Clone, Debug, Default)]
pub(super) struct Told {
    pub permissions: Option<Permissions>,
    pub board: Option<BoardAccess>,
}

/// One room's rules and state. See the module documentation.
pub struct RoomState {
    pub(super) record: RoomRecord,
    pub(super) max_participants: usize,
    pub(super) members: BTreeMap<ParticipantId, Member>,
    /// Raised hands by identity, first raised first.
    pub(super) hands: Vec<String>,
    /// Stage invitations by the invited identity, with the inviting participant.
    pub(super) invitations: HashMap<String, ParticipantId>,
    /// Identities admitted during this class: they skip the lobby when they come back.
    pub(super) admitted: HashSet<String>,
    /// Places kept for students whose connection dropped.
    pub(super) holds: HashMap<String, Hold>,
    /// Sources a teacher muted, by identity (applies to tracks published later too).
    pub(super) moderator_mutes: HashMap<String, HashSet<TrackSource>>,
    /// Per-identity permission changes by teachers.
    pub(super) overrides: HashMap<String, PermissionsPatch>,
    /// The identity in the spotlight.
    pub(super) spotlight: Option<String>,
    pub(super) chat: VecDeque<ChatMessage>,
    pub(super) next_chat_seq: u64,
    /// Chat messages being stored, by sequence number, with whom to tell.
    pub(super) pending_chat: HashMap<u64, (ChatMessage, super::ChatReply)>,
    pub(super) next_attendance_seq: u64,
    pub(super) told: HashMap<ParticipantId, Told>,
    pub(super) told_classroom: Option<ClassroomState>,
    pub(super) told_lobby: Option<bool>,
    /// The class ended: the room takes no more input and closes.
    pub(super) ended: bool,
}

impl RoomState {
    /// A room starting from what was stored of it, taking at most `max_participants`.
    pub fn new(snapshot: RoomSnapshot, max_participants: usize) -> Self {
        let next_chat_seq = snapshot.chat_tail.last().map_or(1, |m| m.seq + 1);
        Self {
            record: snapshot.record,
            max_participants,
            members: BTreeMap::new(),
            hands: Vec::new(),
            invitations: HashMap::new(),
            admitted: HashSet::new(),
            holds: HashMap::new(),
            moderator_mutes: HashMap::new(),
            overrides: HashMap::new(),
            spotlight: None,
            chat: snapshot.chat_tail.into_iter().collect(),
            next_chat_seq,
            pending_chat: HashMap::new(),
            next_attendance_seq: snapshot.next_attendance_seq,
            told: HashMap::new(),
            told_classroom: None,
            told_lobby: None,
            ended: false,
        }
    }

    // ----- queries -----

    /// The stored record as it is now.
    pub fn record(&self) -> &RoomRecord {
        &self.record
    }

    /// Marks the room as created through the server API (listed while empty); returns the
    /// record to store.
    pub fn keep_listed(&mut self) -> RoomRecord {
        self.record.created_by_api = true;
        self.record.clone()
    }

    /// The room's settings.
    pub fn settings(&self) -> &RoomSettings {
        &self.record.settings
    }

    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the class ended (the room closes).
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Number of participants (lobby included).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Everyone, as the server API lists them.
    pub fn participants(&self) -> Vec<ParticipantInfo> {
        self.members.values().map(|m| self.info_of(m)).collect()
    }

    /// One participant, as others see it.
    pub fn participant(&self, id: &ParticipantId) -> Option<ParticipantInfo> {
        self.members.get(id).map(|m| self.info_of(m))
    }

    /// The session id of `identity`, if it is in the room.
    pub fn id_of(&self, identity: &str) -> Option<ParticipantId> {
        self.members
            .values()
            .find(|m| m.identity == identity)
            .map(|m| m.id.clone())
    }

    /// The classroom state as admitted participants see it at `now`.
    pub fn classroom(&self, now: Instant) -> ClassroomState {
        ClassroomState {
            settings: self.record.settings.clone(),
            locked: self.record.locked,
            spotlight: self.spotlight.as_deref().and_then(|i| self.id_of(i)),
            hands: self.hands.iter().filter_map(|i| self.id_of(i)).collect(),
            teacher_present: self.teacher_present(),
            stage_count: self.stage_count(None, now) as u32,
        }
    }

    /// What `id` may do now.
    pub fn permissions(&self, id: &ParticipantId) -> Option<Permissions> {
        self.members.get(id).map(|m| self.permissions_of(m))
    }

    /// Whether `id` may publish `source` now (checked when it announces a track).
    pub fn may_publish(&self, id: &ParticipantId, source: TrackSource) -> Result<(), Refusal> {
        let member = self.member(id)?;
        if !self.permissions_of(member).can_publish(source) {
            let why = match member.placement {
                Placement::Lobby => "you are waiting in the lobby".to_owned(),
                Placement::Audience => "only the stage publishes; you are in the audience".into(),
                _ => format!("you may not publish {source:?}"),
            };
            return Err(Refusal::new(ErrorCode::PermissionDenied, why));
        }
        Ok(())
    }

    /// The live tracks of every participant other than `id`, as (publisher, track).
    pub fn live_tracks(&self) -> Vec<(ParticipantId, TrackSid)> {
        self.members
            .values()
            .flat_map(|m| {
                m.tracks
                    .iter()
                    .filter(|(_, t)| t.live)
                    .map(move |(sid, _)| (m.id.clone(), sid.clone()))
            })
            .collect()
    }

    pub(super) fn teacher_present(&self) -> bool {
        self.members
            .values()
            .any(|m| m.is_moderator() && m.is_admitted())
    }

    /// Students on stage plus stage places held for reconnecting ones (other than `except`).
    pub(super) fn stage_count(&self, except: Option<&str>, now: Instant) -> usize {
        let on_stage = self
            .members
            .values()
            .filter(|m| m.is_student() && m.placement == Placement::Stage)
            .count();
        let held = self
            .holds
            .iter()
            .filter(|(identity, hold)| {
                hold.placement == Placement::Stage
                    && hold.until > now
                    && Some(identity.as_str()) != except
                    && !self.members.values().any(|m| &m.identity == *identity)
            })
            .count();
        on_stage + held
    }

    /// Whether the stage (in a class) has room for one more student.
    pub(super) fn stage_has_room(&self, except: Option<&str>, now: Instant) -> bool {
        self.record.settings.mode == RoomMode::Call
            || self.stage_count(except, now) < self.record.settings.stage_capacity as usize
    }

    pub(super) fn member(&self, id: &ParticipantId) -> Result<&Member, Refusal> {
        self.members.get(id).ok_or_else(|| {
            Refusal::new(
                ErrorCode::UnknownParticipant,
                format!("no participant {id} in the room"),
            )
        })
    }

    /// The session id a subject names.
    pub(super) fn resolve(&self, subject: &Subject) -> Result<ParticipantId, Refusal> {
        match subject {
            Subject::Id(id) => self.member(id).map(|m| m.id.clone()),
            Subject::Identity(identity) => self.id_of(identity).ok_or_else(|| {
                Refusal::new(
                    ErrorCode::UnknownParticipant,
                    format!("{identity} is not in the room"),
                )
            }),
        }
    }

    pub(super) fn info_of(&self, member: &Member) -> ParticipantInfo {
        member.info(self.hands.contains(&member.identity))
    }

    pub(super) fn permissions_of(&self, member: &Member) -> Permissions {
        if !member.is_admitted() {
            return Permissions::default();
        }
        let settings = &self.record.settings;
        let overrides = self.overrides.get(&member.identity);
        let moderator = member.is_moderator();
        let publish = if member.placement == Placement::Stage || moderator {
            member.stage_sources(overrides)
        } else {
            Vec::new()
        };
        let chat = match settings.chat {
            aula_protocol::classroom::ChatPolicy::Off => false,
            aula_protocol::classroom::ChatPolicy::Teachers => moderator,
            _ => moderator || overrides.and_then(|o| o.chat).unwrap_or(true),
        };
        Permissions {
            publish,
            subscribe: member.grants.subscribe || member.co_teacher,
            whiteboard_write: overrides
                .and_then(|o| o.whiteboard_write)
                .unwrap_or(member.grants.whiteboard_write || member.co_teacher),
            chat,
            unmute: moderator
                || overrides
                    .and_then(|o| o.unmute)
                    .unwrap_or(settings.students_may_unmute),
            moderate: moderator,
        }
    }

    /// Whether `viewer` sees `subject` in its participant list.
    pub(super) fn sees(viewer: &Member, subject: &Member) -> bool {
        viewer.id != subject.id
            && viewer.is_admitted()
            && (subject.is_admitted() || viewer.is_moderator())
    }

    /// Where an admitted non-moderator goes when it enters (or the mode changes).
    pub(super) fn entry_placement(&self, member: &Member) -> Placement {
        if member.is_moderator() {
            return Placement::Stage;
        }
        let can_publish = !member
            .stage_sources(self.overrides.get(&member.identity))
            .is_empty();
        match self.record.settings.mode {
            RoomMode::Call if can_publish => Placement::Stage,
            _ => Placement::Audience,
        }
    }

    // ----- joining and leaving -----

    /// A participant asks to join. On success the actions start with its `joined`.
    pub fn join(&mut self, joiner: Joiner, now: Now) -> Result<Vec<Action>, Refusal> {
        if self.ended {
            return Err(Refusal::new(
                ErrorCode::Internal,
                "the class just ended; join again",
            ));
        }
        let mut actions = Vec::new();
        if self.record.banned.contains(&joiner.identity) {
            return Err(Refusal::new(
                ErrorCode::Removed,
                "you were removed from this class",
            ));
        }
        let replacing = self.id_of(&joiner.identity);
        let returning = replacing.is_some() || self.admitted.contains(&joiner.identity);
        if self.record.locked && !joiner.grants.room_admin && !returning {
            return Err(Refusal::new(
                ErrorCode::RoomLocked,
                "the room is locked; it takes no new participants",
            ));
        }
        if replacing.is_none() && self.members.len() >= self.max_participants {
            return Err(Refusal::new(ErrorCode::RoomFull, "the room is full"));
        }
        if let Some(settings) = joiner.classroom.clone() {
            if !self.record.configured {
                self.apply_settings(settings, &mut actions, now);
                self.record.configured = true;
            }
        }
        // The same identity again (a reconnect, or a second device): the new session takes
        // the old one's place, and the old one is closed.
        let mut inherited: Option<(Placement, bool)> = None;
        if let Some(old_id) = replacing {
            if let Some(old) = self.members.get(&old_id) {
                inherited = Some((old.placement, old.co_teacher));
            }
            actions.push(Action::Disconnect {
                who: old_id.clone(),
                reason: LeaveReason::DuplicateIdentity,
                message: None,
            });
            self.remove_member(
                &old_id,
                LeaveReason::DuplicateIdentity,
                true,
                &mut actions,
                now,
            );
        } else if let Some(hold) = self.holds.remove(&joiner.identity) {
            if hold.until > now.mono {
                inherited = Some((hold.placement, hold.co_teacher));
            }
        }
        let mut member = Member {
            id: joiner.id.clone(),
            identity: joiner.identity.clone(),
            name: joiner.name,
            role: joiner.role,
            grants: joiner.grants,
            auto_subscribe: joiner.auto_subscribe,
            placement: Placement::Lobby,
            co_teacher: false,
            tracks: BTreeMap::new(),
            hand_rate: MessageRate::new(HANDS_PER_SECOND, HAND_BURST, now.mono),
            chat_rate: MessageRate::new(CHAT_PER_SECOND, CHAT_BURST, now.mono),
        };
        if let Some((placement, co_teacher)) = inherited.filter(|(p, _)| *p != Placement::Lobby) {
            member.co_teacher = co_teacher;
            member.placement = placement;
        } else if !member.is_moderator()
            && self.record.settings.lobby
            && !self.admitted.contains(&member.identity)
        {
            member.placement = Placement::Lobby;
        } else {
            member.placement = self.entry_placement(&member);
        }
        if member.is_admitted() {
            self.admitted.insert(member.identity.clone());
        }
        let id = member.id.clone();
        self.attendance(
            &member,
            AttendanceKind::Joined {
                lobby: !member.is_admitted(),
            },
            &mut actions,
            now,
        );
        if member.placement == Placement::Stage {
            self.attendance(&member, AttendanceKind::StageOn, &mut actions, now);
        }
        self.members.insert(id.clone(), member);
        self.record.last_active_ms = now.unix_ms;

        let joined = self.joined_message(&id, now.mono);
        actions.insert(
            0,
            Action::Send {
                to: id.clone(),
                message: joined,
            },
        );
        self.told.insert(
            id.clone(),
            Told {
                permissions: self.permissions(&id),
                board: None,
            },
        );
        let member = &self.members[&id];
        let info = self.info_of(member);
        for viewer in self.members.values() {
            if Self::sees(viewer, member) {
                actions.push(Action::Send {
                    to: viewer.id.clone(),
                    message: ServerMessage::ParticipantJoined {
                        participant: info.clone(),
                    },
                });
            }
        }
        actions.push(Action::Webhook(WebhookEventKind::ParticipantJoined {
            participant: info,
        }));
        if member.is_admitted() {
            self.subscribe_to_all(&id, &mut actions);
        }
        if let Some(from) = self.invitations.get(&self.members[&id].identity) {
            actions.push(Action::Send {
                to: id.clone(),
                message: ServerMessage::StageInvitation { from: from.clone() },
            });
        }
        self.settle(&mut actions, now);
        Ok(actions)
    }

    /// The `joined` reply for a member that was just added.
    fn joined_message(&self, id: &ParticipantId, now: Instant) -> ServerMessage {
        let member = &self.members[id];
        let participants = self
            .members
            .values()
            .filter(|other| Self::sees(member, other))
            .map(|other| self.info_of(other))
            .collect();
        ServerMessage::Joined {
            request_id: 0,
            protocol_version: aula_protocol::PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            room: aula_protocol::RoomInfo {
                name: self.record.name.clone(),
                sid: String::new(),
            },
            participant: self.info_of(member),
            participants,
            classroom: self.classroom_for(member, now),
            permissions: Some(self.permissions_of(member)),
            chat: if member.is_admitted() {
                self.chat_visible_to(&member.identity, None, aula_protocol::classroom::CHAT_PAGE)
                    .0
            } else {
                Vec::new()
            },
        }
    }

    /// The classroom as `member` may see it: all of it once admitted; from the lobby, only
    /// whether a teacher is there and the settings.
    pub(super) fn classroom_for(&self, member: &Member, now: Instant) -> ClassroomState {
        if member.is_admitted() {
            self.classroom(now)
        } else {
            ClassroomState {
                settings: self.record.settings.clone(),
                locked: self.record.locked,
                teacher_present: self.teacher_present(),
                ..ClassroomState::default()
            }
        }
    }

    /// A participant's session ended.
    pub fn leave(&mut self, id: &ParticipantId, reason: LeaveReason, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.members.contains_key(id) {
            self.remove_member(id, reason, false, &mut actions, now);
            self.record.last_active_ms = now.unix_ms;
            if self.members.is_empty() {
                // When the class was last active decides whether the next opening continues
                // it (see `RoomRecord::last_active_ms`).
                actions.push(Action::StoreRoom(self.record.clone()));
            }
            self.settle(&mut actions, now);
        }
        actions
    }

    /// Takes a member out of the room and tells whoever saw it. `replaced`: its identity is
    /// joining again right now and takes over its place.
    pub(super) fn remove_member(
        &mut self,
        id: &ParticipantId,
        reason: LeaveReason,
        replaced: bool,
        actions: &mut Vec<Action>,
        now: Now,
    ) {
        let Some(member) = self.members.get(id).cloned() else {
            return;
        };
        let sids: Vec<TrackSid> = member.tracks.keys().cloned().collect();
        for sid in sids {
            self.end_track(id, &sid, false, actions);
        }
        if member.placement == Placement::Stage {
            self.attendance(&member, AttendanceKind::StageOff, actions, now);
        }
        self.attendance(&member, AttendanceKind::Left { reason }, actions, now);
        let member = self.members.remove(id).unwrap_or(member);
        self.told.remove(id);
        let dropped = matches!(
            reason,
            LeaveReason::ConnectionLost | LeaveReason::ServerShutdown
        );
        if !replaced {
            self.hands.retain(|i| i != &member.identity);
            if !dropped {
                self.invitations.remove(&member.identity);
            }
            if dropped && member.is_admitted() {
                self.holds.insert(
                    member.identity.clone(),
                    Hold {
                        placement: member.placement,
                        co_teacher: member.co_teacher,
                        until: now.mono + STAGE_HOLD,
                    },
                );
            }
        }
        for viewer in self.members.values() {
            if Self::sees(viewer, &member) {
                actions.push(Action::Send {
                    to: viewer.id.clone(),
                    message: ServerMessage::ParticipantLeft {
                        participant_id: id.clone(),
                        reason,
                    },
                });
            }
        }
        actions.push(Action::Webhook(WebhookEventKind::ParticipantLeft {
            participant: member.info(false),
            reason,
        }));
    }

    // ----- tracks -----

    /// A participant announced a track (`publish_track`); its media has not arrived yet.
    pub fn announce_track(&mut self, id: &ParticipantId, track: TrackInfo) -> Result<(), Refusal> {
        self.may_publish(id, track.source)?;
        let mutes = self
            .moderator_mutes
            .get(&self.member(id)?.identity)
            .cloned();
        let member = self
            .members
            .get_mut(id)
            .ok_or_else(|| Refusal::new(ErrorCode::UnknownParticipant, "not in the room"))?;
        if member.tracks.len() >= MAX_TRACKS_PER_PARTICIPANT {
            return Err(Refusal::new(ErrorCode::InvalidRequest, "too many tracks"));
        }
        let moderator_muted = mutes.is_some_and(|m| m.contains(&track.source));
        let mut info = track;
        info.muted |= moderator_muted;
        member.tracks.insert(
            info.sid.clone(),
            MemberTrack {
                info,
                live: false,
                moderator_muted,
            },
        );
        Ok(())
    }

    /// Media of an announced track arrived: it goes live for everyone who may see it, or
    /// ends at once when its publisher may no longer publish it.
    pub fn track_started(&mut self, id: &ParticipantId, sid: &TrackSid, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(member) = self.members.get(id) else {
            actions.push(Action::EndTrack {
                publisher: id.clone(),
                track: sid.clone(),
            });
            return actions;
        };
        let allowed = member
            .tracks
            .get(sid)
            .is_some_and(|t| self.permissions_of(member).can_publish(t.info.source));
        if !allowed {
            let tell = member.tracks.contains_key(sid);
            self.end_track(id, sid, tell, &mut actions);
            if !tell {
                actions.push(Action::EndTrack {
                    publisher: id.clone(),
                    track: sid.clone(),
                });
            }
            return actions;
        }
        let Some(member) = self.members.get_mut(id) else {
            return actions;
        };
        let Some(track) = member.tracks.get_mut(sid) else {
            return actions;
        };
        track.live = true;
        let info = track.info.clone();
        let moderator_muted = track.moderator_muted;
        let identity = member.identity.clone();
        if moderator_muted {
            actions.push(Action::SetForwarding {
                track: sid.clone(),
                forwarded: false,
            });
        }
        actions.push(Action::Webhook(WebhookEventKind::TrackPublished {
            participant_identity: identity,
            track: info.clone(),
        }));
        let publisher = &self.members[id];
        for viewer in self.members.values() {
            if Self::sees(viewer, publisher) {
                actions.push(Action::Send {
                    to: viewer.id.clone(),
                    message: ServerMessage::TrackAdded {
                        participant_id: id.clone(),
                        track: info.clone(),
                    },
                });
                if viewer.auto_subscribe && self.permissions_of(viewer).subscribe {
                    actions.push(Action::Subscribe {
                        subscriber: viewer.id.clone(),
                        track: sid.clone(),
                    });
                }
            }
        }
        self.settle(&mut actions, now);
        actions
    }

    /// Ends one of `publisher`'s tracks for everyone; with `tell_publisher`, the publisher is
    /// told too (the room ended it, not the publisher).
    pub(super) fn end_track(
        &mut self,
        publisher: &ParticipantId,
        sid: &TrackSid,
        tell_publisher: bool,
        actions: &mut Vec<Action>,
    ) {
        let Some(member) = self.members.get_mut(publisher) else {
            return;
        };
        let Some(track) = member.tracks.remove(sid) else {
            return;
        };
        let identity = member.identity.clone();
        let member = &self.members[publisher];
        if track.live {
            for viewer in self.members.values() {
                if viewer.id == *publisher {
                    continue;
                }
                actions.push(Action::Unsubscribe {
                    subscriber: viewer.id.clone(),
                    track: sid.clone(),
                });
                if Self::sees(viewer, member) {
                    actions.push(Action::Send {
                        to: viewer.id.clone(),
                        message: ServerMessage::TrackRemoved {
                            participant_id: publisher.clone(),
                            track_sid: sid.clone(),
                        },
                    });
                }
            }
            actions.push(Action::Webhook(WebhookEventKind::TrackUnpublished {
                participant_identity: identity,
                track: track.info,
            }));
        }
        actions.push(Action::EndTrack {
            publisher: publisher.clone(),
            track: sid.clone(),
        });
        if tell_publisher {
            actions.push(Action::Send {
                to: publisher.clone(),
                message: ServerMessage::TrackRemoved {
                    participant_id: publisher.clone(),
                    track_sid: sid.clone(),
                },
            });
        }
    }

    /// Subscribes an admitted member that takes every track to every live track it sees.
    pub(super) fn subscribe_to_all(&self, id: &ParticipantId, actions: &mut Vec<Action>) {
        let Some(member) = self.members.get(id) else {
            return;
        };
        if !member.auto_subscribe || !self.permissions_of(member).subscribe {
            return;
        }
        for other in self.members.values() {
            if !Self::sees(member, other) {
                continue;
            }
            for (sid, track) in &other.tracks {
                if track.live {
                    actions.push(Action::Subscribe {
                        subscriber: id.clone(),
                        track: sid.clone(),
                    });
                }
            }
        }
    }

    // ----- placement -----

    /// Moves a member to `placement`, telling everyone and recording it.
    pub(super) fn place(
        &mut self,
        id: &ParticipantId,
        placement: Placement,
        actions: &mut Vec<Action>,
        now: Now,
    ) {
        let Some(member) = self.members.get(id) else {
            return;
        };
        let before = member.placement;
        if before == placement {
            return;
        }
        let member = member.clone();
        if before == Placement::Stage {
            self.attendance(&member, AttendanceKind::StageOff, actions, now);
        }
        if placement == Placement::Stage {
            self.attendance(&member, AttendanceKind::StageOn, actions, now);
            self.hands.retain(|i| i != &member.identity);
            self.invitations.remove(&member.identity);
        }
        if let Some(m) = self.members.get_mut(id) {
            m.placement = placement;
        }
        let member = &self.members[id];
        let info = self.info_of(member);
        if before == Placement::Lobby {
            // Moderators saw it waiting; everyone else meets it now.
            for viewer in self.members.values() {
                if Self::sees(viewer, member) {
                    let message = if viewer.is_moderator() {
                        ServerMessage::ParticipantUpdated {
                            participant: info.clone(),
                        }
                    } else {
                        ServerMessage::ParticipantJoined {
                            participant: info.clone(),
                        }
                    };
                    actions.push(Action::Send {
                        to: viewer.id.clone(),
                        message,
                    });
                }
            }
        } else {
            self.broadcast_update(id, actions);
            actions.push(Action::Webhook(WebhookEventKind::StageChanged {
                participant: info,
            }));
        }
    }

    /// Lets a lobby member in: it is told everything `joined` would have said.
    pub(super) fn admit(&mut self, id: &ParticipantId, actions: &mut Vec<Action>, now: Now) {
        let Some(member) = self.members.get(id) else {
            return;
        };
        if member.is_admitted() {
            return;
        }
        let placement = self.entry_placement(member);
        let identity = member.identity.clone();
        self.admitted.insert(identity);
        let member = member.clone();
        self.attendance(&member, AttendanceKind::Admitted, actions, now);
        self.place(id, placement, actions, now);
        let member = &self.members[id];
        let permissions = self.permissions_of(member);
        let admitted = ServerMessage::Admitted {
            participant: self.info_of(member),
            participants: self
                .members
                .values()
                .filter(|other| Self::sees(member, other))
                .map(|other| self.info_of(other))
                .collect(),
            classroom: self.classroom(now.mono),
            permissions: permissions.clone(),
            chat: self
                .chat_visible_to(&member.identity, None, aula_protocol::classroom::CHAT_PAGE)
                .0,
        };
        // `admitted` goes before anything `place` queued for it.
        let at = actions
            .iter()
            .position(|a| matches!(a, Action::Send { to, .. } if to == id))
            .unwrap_or(actions.len());
        actions.insert(
            at,
            Action::Send {
                to: id.clone(),
                message: admitted,
            },
        );
        if let Some(told) = self.told.get_mut(id) {
            told.permissions = Some(permissions);
        }
        actions.push(Action::Webhook(WebhookEventKind::ParticipantAdmitted {
            participant: self.info_of(&self.members[id]),
        }));
        self.subscribe_to_all(id, actions);
    }

    /// Tells everyone who sees `id` (and `id` itself) how it looks now.
    pub(super) fn broadcast_update(&self, id: &ParticipantId, actions: &mut Vec<Action>) {
        let Some(member) = self.members.get(id) else {
            return;
        };
        let info = self.info_of(member);
        for viewer in self.members.values() {
            if viewer.id == *id || Self::sees(viewer, member) {
                actions.push(Action::Send {
                    to: viewer.id.clone(),
                    message: ServerMessage::ParticipantUpdated {
                        participant: info.clone(),
                    },
                });
            }
        }
    }

    /// Replaces the settings and moves people where the new ones put them.
    pub(super) fn apply_settings(
        &mut self,
        settings: RoomSettings,
        actions: &mut Vec<Action>,
        now: Now,
    ) {
        let before = std::mem::replace(&mut self.record.settings, settings);
        let after = self.record.settings.clone();
        actions.push(Action::StoreRoom(self.record.clone()));
        if before.mode != after.mode {
            let ids: Vec<ParticipantId> = self
                .members
                .values()
                .filter(|m| m.is_student() && m.is_admitted())
                .map(|m| m.id.clone())
                .collect();
            for id in ids {
                let placement = self.entry_placement(&self.members[&id]);
                self.place(&id, placement, actions, now);
            }
            if after.mode == RoomMode::Call {
                self.invitations.clear();
            }
        }
        if before.lobby && !after.lobby {
            let waiting: Vec<ParticipantId> = self
                .members
                .values()
                .filter(|m| !m.is_admitted())
                .map(|m| m.id.clone())
                .collect();
            for id in waiting {
                self.admit(&id, actions, now);
            }
        }
    }

    pub(super) fn attendance(
        &mut self,
        member: &Member,
        kind: AttendanceKind,
        actions: &mut Vec<Action>,
        now: Now,
    ) {
        let seq = self.next_attendance_seq;
        self.next_attendance_seq += 1;
        actions.push(Action::StoreAttendance(AttendanceEvent {
            class: self.record.class,
            seq,
            time: now.unix_ms,
            identity: member.identity.clone(),
            name: member.name.clone(),
            role: member.role,
            kind,
        }));
    }

    // ----- settling -----

    /// Sends what changed as a consequence of the last input: each participant's permissions
    /// (and its whiteboard access), tracks it may no longer publish (ended), and the
    /// classroom state.
    pub(super) fn settle(&mut self, actions: &mut Vec<Action>, now: Now) {
        let ids: Vec<ParticipantId> = self.members.keys().cloned().collect();
        for id in &ids {
            let member = &self.members[id];
            let permissions = self.permissions_of(member);
            let board = BoardAccess {
                attached: member.is_admitted(),
                write: permissions.whiteboard_write,
                admin: permissions.moderate,
            };
            let not_allowed: Vec<TrackSid> = member
                .tracks
                .iter()
                .filter(|(_, t)| !permissions.can_publish(t.info.source))
                .map(|(sid, _)| sid.clone())
                .collect();
            let told = self.told.entry(id.clone()).or_default();
            if told.permissions.as_ref() != Some(&permissions) {
                told.permissions = Some(permissions.clone());
                actions.push(Action::Send {
                    to: id.clone(),
                    message: ServerMessage::PermissionsChanged { permissions },
                });
            }
            if told.board != Some(board) {
                told.board = Some(board);
                actions.push(Action::Board {
                    who: id.clone(),
                    access: board,
                });
            }
            for sid in not_allowed {
                self.end_track(id, &sid, true, actions);
            }
        }
        let classroom = self.classroom(now.mono);
        if self.told_classroom.as_ref() != Some(&classroom) {
            self.told_classroom = Some(classroom.clone());
            for member in self.members.values().filter(|m| m.is_admitted()) {
                actions.push(Action::Send {
                    to: member.id.clone(),
                    message: ServerMessage::ClassroomUpdated {
                        classroom: classroom.clone(),
                    },
                });
            }
        }
        let teacher_present = classroom.teacher_present;
        if self.told_lobby != Some(teacher_present) {
            self.told_lobby = Some(teacher_present);
            for member in self.members.values().filter(|m| !m.is_admitted()) {
                actions.push(Action::Send {
                    to: member.id.clone(),
                    message: ServerMessage::ClassroomUpdated {
                        classroom: self.classroom_for(member, now.mono),
                    },
                });
            }
        }
        // The joiner's `joined` already told it the state: drop a classroom update queued for
        // someone whose first message in this batch is its `joined` or `admitted`.
        dedupe_first_contact(actions);
    }
}

/// Drops a `classroom_updated` sent to a participant after its `joined` or `admitted` in the
/// same batch: those carried the same state already.
fn dedupe_first_contact(actions: &mut Vec<Action>) {
    let mut introduced: HashSet<ParticipantId> = HashSet::new();
    actions.retain(|action| match action {
        Action::Send {
            to,
            message: ServerMessage::Joined { .. } | ServerMessage::Admitted { .. },
        } => {
            introduced.insert(to.clone());
            true
        }
        Action::Send {
            to,
            message: ServerMessage::ClassroomUpdated { .. },
        } => !introduced.contains(to),
        _ => true,
    });
}
