//! Requests from participants and commands from teachers and the server API.

use aula_protocol::classroom::MAX_REASON_BYTES;
use aula_protocol::signal::LeaveReason;
use aula_protocol::webhook::WebhookEventKind;
use aula_protocol::{
    ClientMessage, ErrorCode, MediaKind, ParticipantId, Placement, RoomMode, ServerMessage,
    TrackSid, TrackSource,
};

use super::chat::ChatRequest;
use super::state::RoomState;
use super::{Action, Actor, Command, Now, Refusal, Subject};

impl RoomState {
    /// A classroom request from a participant's signaling session. Replies (`ok`, or an
    /// `error` with the refusal) are among the actions; a refused request changes nothing.
    /// Returns `None` for messages that are not the room's business (media negotiation).
    pub fn request(
        &mut self,
        from: &ParticipantId,
        message: ClientMessage,
        now: Now,
    ) -> Option<Vec<Action>> {
        let request_id = message.request_id();
        let outcome = match message {
            ClientMessage::Admit { participant_id, .. } => {
                self.by_participant(from, Command::Admit(Subject::Id(participant_id)), now)
            }
            ClientMessage::AdmitAll { .. } => self.by_participant(from, Command::AdmitAll, now),
            ClientMessage::Deny {
                participant_id,
                reason,
                ..
            } => self.by_participant(
                from,
                Command::Deny(Subject::Id(participant_id), reason),
                now,
            ),
            ClientMessage::InviteToStage { participant_id, .. } => self.by_participant(
                from,
                Command::InviteToStage(Subject::Id(participant_id)),
                now,
            ),
            ClientMessage::MoveToAudience { participant_id, .. } if participant_id == *from => {
                self.leave_stage(from, now)
            }
            ClientMessage::MoveToAudience { participant_id, .. } => self.by_participant(
                from,
                Command::MoveToAudience(Subject::Id(participant_id)),
                now,
            ),
            ClientMessage::ClearStage { .. } => self.by_participant(from, Command::ClearStage, now),
            ClientMessage::RaiseHand { .. } => self.raise_hand(from, now),
            ClientMessage::LowerHand { participant_id, .. } => match participant_id {
                Some(id) if id != *from => {
                    self.by_participant(from, Command::LowerHand(Subject::Id(id)), now)
                }
                _ => self.lower_own_hand(from, now),
            },
            ClientMessage::AnswerStageInvitation { accept, .. } => {
                self.answer_invitation(from, accept, now)
            }
            ClientMessage::MuteParticipant {
                participant_id,
                kind,
                ..
            } => self.by_participant(from, Command::Mute(Subject::Id(participant_id), kind), now),
            ClientMessage::MuteAll {
                kind, allow_unmute, ..
            } => self.by_participant(from, Command::MuteAll(kind, allow_unmute), now),
            ClientMessage::StopScreenShare { participant_id, .. } => self.by_participant(
                from,
                Command::StopScreenShare(Subject::Id(participant_id)),
                now,
            ),
            ClientMessage::RemoveParticipant {
                participant_id,
                reason,
                ..
            } => self.by_participant(
                from,
                Command::Remove(Subject::Id(participant_id), reason),
                now,
            ),
            ClientMessage::LockRoom { locked, .. } => {
                self.by_participant(from, Command::Lock(locked), now)
            }
            ClientMessage::EndClass { .. } => self.by_participant(from, Command::EndClass, now),
            ClientMessage::SetCoTeacher {
                participant_id,
                co_teacher,
                ..
            } => self.by_participant(
                from,
                Command::SetCoTeacher(Subject::Id(participant_id), co_teacher),
                now,
            ),
            ClientMessage::Spotlight { participant_id, .. } => self.by_participant(
                from,
                Command::Spotlight(participant_id.map(Subject::Id)),
                now,
            ),
            ClientMessage::UpdateRoomSettings { settings, .. } => {
                self.by_participant(from, Command::UpdateSettings(settings), now)
            }
            ClientMessage::UpdatePermissions {
                participant_id,
                permissions,
                ..
            } => self.by_participant(
                from,
                Command::UpdatePermissions(Subject::Id(participant_id), permissions),
                now,
            ),
            ClientMessage::SendChat {
                id,
                text,
                to,
                announcement,
            } => {
                // Acknowledged once stored (`chat_sent`), not here.
                let request = ChatRequest {
                    text,
                    to,
                    announcement,
                };
                let outcome = self.send_chat(from, id, request, now);
                return Some(self.reply_later(from, id, outcome));
            }
            ClientMessage::DeleteChat { id, seq } => {
                let outcome = self.delete_chat(from, id, seq);
                return Some(self.reply_later(from, id, outcome));
            }
            ClientMessage::ChatHistory { id, before, limit } => {
                let outcome = self.chat_history(from, id, before, limit);
                return Some(self.reply_later(from, id, outcome));
            }
            ClientMessage::SetTrackMuted { sid, muted, .. } => {
                self.set_track_muted(from, &sid, muted, now)
            }
            ClientMessage::UnpublishTrack { sid, .. } => self.unpublish(from, &sid, now),
            ClientMessage::UpdateSubscription {
                track_sids,
                subscribe,
                ..
            } => self.update_subscription(from, &track_sids, subscribe),
            _ => return None,
        };
        Some(self.reply_now(from, request_id, outcome))
    }

    /// Appends `ok` (or the refusal as an `error`) to the outcome's actions.
    fn reply_now(
        &self,
        to: &ParticipantId,
        request_id: Option<u64>,
        outcome: Result<Vec<Action>, Refusal>,
    ) -> Vec<Action> {
        match outcome {
            Ok(mut actions) => {
                if let Some(request_id) = request_id {
                    // The reply goes before the events it caused reach the requester.
                    let at = actions
                        .iter()
                        .position(|a| match a {
                            Action::Send { to: t, .. } => t == to,
                            Action::Disconnect { who, .. } => who == to,
                            _ => false,
                        })
                        .unwrap_or(actions.len());
                    actions.insert(
                        at,
                        Action::Send {
                            to: to.clone(),
                            message: ServerMessage::Ok { request_id },
                        },
                    );
                }
                actions
            }
            Err(refusal) => vec![refusal_to(to, request_id, refusal)],
        }
    }

    /// The outcome's actions carry their own reply; a refusal becomes an `error`.
    fn reply_later(
        &self,
        to: &ParticipantId,
        request_id: u64,
        outcome: Result<Vec<Action>, Refusal>,
    ) -> Vec<Action> {
        outcome.unwrap_or_else(|refusal| vec![refusal_to(to, Some(request_id), refusal)])
    }

    fn by_participant(
        &mut self,
        from: &ParticipantId,
        command: Command,
        now: Now,
    ) -> Result<Vec<Action>, Refusal> {
        self.command(Actor::Participant(from.clone()), command, now)
    }

    /// A teacher's (or the server API's) command. Refused commands change nothing.
    pub fn command(
        &mut self,
        actor: Actor,
        command: Command,
        now: Now,
    ) -> Result<Vec<Action>, Refusal> {
        if self.ended {
            return Err(Refusal::new(ErrorCode::InvalidState, "the class has ended"));
        }
        let actor_id = match &actor {
            Actor::Participant(id) => {
                let member = self.member(id)?;
                if !self.permissions_of(member).moderate {
                    return Err(Refusal::new(
                        ErrorCode::PermissionDenied,
                        "only teachers may do that",
                    ));
                }
                Some(id.clone())
            }
            Actor::Api => None,
        };
        let mut actions = Vec::new();
        match command {
            Command::Admit(subject) => {
                let id = self.resolve(&subject)?;
                if self.members[&id].is_admitted() {
                    return Err(not_in_lobby(&id));
                }
                self.admit(&id, &mut actions, now);
            }
            Command::AdmitAll => {
                let waiting: Vec<ParticipantId> = self
                    .members
                    .values()
                    .filter(|m| !m.is_admitted())
                    .map(|m| m.id.clone())
                    .collect();
                for id in waiting {
                    self.admit(&id, &mut actions, now);
                }
            }
            Command::Deny(subject, reason) => {
                let id = self.resolve(&subject)?;
                if self.members[&id].is_admitted() {
                    return Err(not_in_lobby(&id));
                }
                let reason = check_reason(reason)?;
                actions.push(Action::Disconnect {
                    who: id.clone(),
                    reason: LeaveReason::Denied,
                    message: reason,
                });
                self.remove_member(&id, LeaveReason::Denied, false, &mut actions, now);
            }
            Command::InviteToStage(subject) => {
                let id = self.resolve(&subject)?;
                self.invite(actor_id.as_ref(), &id, &mut actions, now)?;
            }
            Command::MoveToAudience(subject) => {
                let id = self.resolve(&subject)?;
                let member = &self.members[&id];
                if member.is_moderator() {
                    return Err(Refusal::new(
                        ErrorCode::InvalidState,
                        "teachers stay on stage",
                    ));
                }
                if member.placement != Placement::Stage {
                    return Err(Refusal::new(
                        ErrorCode::InvalidState,
                        format!("{id} is not on stage"),
                    ));
                }
                self.place(&id, Placement::Audience, &mut actions, now);
                self.holds.retain(|_, h| h.placement != Placement::Stage);
            }
            Command::ClearStage => {
                let on_stage: Vec<ParticipantId> = self
                    .members
                    .values()
                    .filter(|m| m.is_student() && m.placement == Placement::Stage)
                    .map(|m| m.id.clone())
                    .collect();
                for id in on_stage {
                    self.place(&id, Placement::Audience, &mut actions, now);
                }
                self.holds.retain(|_, h| h.placement != Placement::Stage);
                self.invitations.clear();
            }
            Command::LowerHand(subject) => {
                let id = self.resolve(&subject)?;
                let identity = self.members[&id].identity.clone();
                if !self.hands.contains(&identity) {
                    return Err(Refusal::new(
                        ErrorCode::InvalidState,
                        format!("{id} has no hand raised"),
                    ));
                }
                self.hands.retain(|i| *i != identity);
                self.broadcast_update(&id, &mut actions);
            }
            Command::Mute(subject, kind) => {
                let id = self.resolve(&subject)?;
                self.moderator_mute(&id, kind, &mut actions);
            }
            Command::MuteAll(kind, allow_unmute) => {
                let students: Vec<ParticipantId> = self
                    .members
                    .values()
                    .filter(|m| m.is_student() && m.is_admitted())
                    .map(|m| m.id.clone())
                    .collect();
                for id in students {
                    self.moderator_mute(&id, kind, &mut actions);
                }
                if let Some(allow) = allow_unmute {
                    if self.record.settings.students_may_unmute != allow {
                        self.record.settings.students_may_unmute = allow;
                        self.record.configured = true;
                        actions.push(Action::StoreRoom(self.record.clone()));
                    }
                }
            }
            Command::StopScreenShare(subject) => {
                let id = self.resolve(&subject)?;
                let shares: Vec<TrackSid> = self.members[&id]
                    .tracks
                    .iter()
                    .filter(|(_, t)| t.info.source == TrackSource::ScreenShare)
                    .map(|(sid, _)| sid.clone())
                    .collect();
                if shares.is_empty() {
                    return Err(Refusal::new(
                        ErrorCode::InvalidState,
                        format!("{id} shares no screen"),
                    ));
                }
                for sid in shares {
                    self.end_track(&id, &sid, true, &mut actions);
                }
            }
            Command::Remove(subject, reason) => {
                let id = self.resolve(&subject)?;
                if actor_id.as_ref() == Some(&id) {
                    return Err(Refusal::new(
                        ErrorCode::InvalidRequest,
                        "leave instead of removing yourself",
                    ));
                }
                let member = &self.members[&id];
                if member.grants.room_admin && actor_id.is_some() {
                    return Err(Refusal::new(
                        ErrorCode::PermissionDenied,
                        "teachers cannot be removed by other participants",
                    ));
                }
                let reason = check_reason(reason)?;
                let identity = member.identity.clone();
                let info = self.info_of(member);
                self.record.banned.insert(identity.clone());
                actions.push(Action::StoreRoom(self.record.clone()));
                actions.push(Action::Disconnect {
                    who: id.clone(),
                    reason: LeaveReason::Removed,
                    message: reason,
                });
                self.remove_member(&id, LeaveReason::Removed, false, &mut actions, now);
                self.forget(&identity);
                actions.push(Action::Webhook(WebhookEventKind::ParticipantRemoved {
                    participant: info,
                }));
            }
            Command::Lock(locked) => {
                if self.record.locked != locked {
                    self.record.locked = locked;
                    actions.push(Action::StoreRoom(self.record.clone()));
                }
            }
            Command::EndClass => return Ok(self.end_class(now)),
            Command::SetCoTeacher(subject, co_teacher) => {
                let id = self.resolve(&subject)?;
                let member = &self.members[&id];
                if member.grants.room_admin {
                    return Err(Refusal::new(
                        ErrorCode::InvalidState,
                        format!("{id} is a teacher"),
                    ));
                }
                if !member.is_admitted() {
                    return Err(Refusal::new(
                        ErrorCode::InvalidState,
                        format!("{id} waits in the lobby; admit it first"),
                    ));
                }
                if member.co_teacher != co_teacher {
                    self.set_co_teacher(&id, co_teacher, &mut actions, now);
                }
            }
            Command::Spotlight(subject) => {
                self.spotlight = match subject {
                    None => None,
                    Some(subject) => {
                        let id = self.resolve(&subject)?;
                        let member = &self.members[&id];
                        if !member.is_admitted() {
                            return Err(Refusal::new(
                                ErrorCode::InvalidState,
                                format!("{id} waits in the lobby"),
                            ));
                        }
                        Some(member.identity.clone())
                    }
                };
            }
            Command::UpdateSettings(patch) => {
                let settings = self.record.settings.patched(&patch);
                settings
                    .validate()
                    .map_err(|e| Refusal::new(ErrorCode::InvalidRequest, e.to_string()))?;
                self.record.configured = true;
                self.apply_settings(settings, &mut actions, now);
            }
            Command::UpdatePermissions(subject, patch) => {
                let id = self.resolve(&subject)?;
                let identity = self.members[&id].identity.clone();
                let entry = self.overrides.entry(identity).or_default();
                if patch.publish.is_some() {
                    entry.publish = patch.publish;
                }
                if patch.chat.is_some() {
                    entry.chat = patch.chat;
                }
                if patch.whiteboard_write.is_some() {
                    entry.whiteboard_write = patch.whiteboard_write;
                }
                if patch.unmute.is_some() {
                    entry.unmute = patch.unmute;
                }
            }
            Command::SystemMessage { text, to } => {
                return self.system_message(text, to, now);
            }
        }
        self.settle(&mut actions, now);
        Ok(actions)
    }

    /// Invites `id` to the stage, or puts it there at once if its hand is raised.
    fn invite(
        &mut self,
        by: Option<&ParticipantId>,
        id: &ParticipantId,
        actions: &mut Vec<Action>,
        now: Now,
    ) -> Result<(), Refusal> {
        let member = &self.members[id];
        match member.placement {
            Placement::Lobby => {
                return Err(Refusal::new(
                    ErrorCode::InvalidState,
                    format!("{id} waits in the lobby; admit it first"),
                ))
            }
            Placement::Stage => {
                return Err(Refusal::new(
                    ErrorCode::InvalidState,
                    format!("{id} is on stage already"),
                ))
            }
            _ => {}
        }
        if member
            .stage_sources(self.overrides.get(&member.identity))
            .is_empty()
        {
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                format!("{id} may not publish anything"),
            ));
        }
        if !self.stage_has_room(Some(&member.identity), now.mono) {
            return Err(Refusal::new(
                ErrorCode::StageFull,
                format!(
                    "the stage is full ({} students)",
                    self.record.settings.stage_capacity
                ),
            ));
        }
        let identity = member.identity.clone();
        if self.hands.contains(&identity) {
            // It asked already: accepting a raised hand puts it on stage.
            self.place(id, Placement::Stage, actions, now);
            return Ok(());
        }
        let from = by.cloned().unwrap_or_else(|| id.clone());
        self.invitations.insert(identity, from.clone());
        actions.push(Action::Send {
            to: id.clone(),
            message: ServerMessage::StageInvitation { from },
        });
        Ok(())
    }

    fn answer_invitation(
        &mut self,
        from: &ParticipantId,
        accept: bool,
        now: Now,
    ) -> Result<Vec<Action>, Refusal> {
        let member = self.member(from)?;
        let identity = member.identity.clone();
        if !self.invitations.contains_key(&identity) {
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                "there is no stage invitation to answer",
            ));
        }
        if member.placement != Placement::Audience {
            self.invitations.remove(&identity);
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                "only the audience goes on stage",
            ));
        }
        if accept && !self.stage_has_room(Some(&identity), now.mono) {
            // Refused, and nothing changes: the invitation stands (the student may try again
            // when a place frees up, or decline).
            return Err(Refusal::new(
                ErrorCode::StageFull,
                "the stage filled up meanwhile",
            ));
        }
        let mut actions = Vec::new();
        self.invitations.remove(&identity);
        if accept {
            self.place(from, Placement::Stage, &mut actions, now);
        }
        self.tell_moderators(
            ServerMessage::StageInvitationAnswered {
                participant_id: from.clone(),
                accepted: accept,
            },
            &mut actions,
        );
        self.settle(&mut actions, now);
        Ok(actions)
    }

    fn tell_moderators(&self, message: ServerMessage, actions: &mut Vec<Action>) {
        for member in self.members.values().filter(|m| m.is_moderator()) {
            actions.push(Action::Send {
                to: member.id.clone(),
                message: message.clone(),
            });
        }
    }

    fn raise_hand(&mut self, from: &ParticipantId, now: Now) -> Result<Vec<Action>, Refusal> {
        let member = self.member(from)?;
        if !member.is_admitted() {
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                "you wait in the lobby",
            ));
        }
        if member.is_moderator() {
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                "teachers do not raise hands",
            ));
        }
        let identity = member.identity.clone();
        let placement = member.placement;
        self.check_hand_rate(from, now)?;
        let mut actions = Vec::new();
        if self.hands.contains(&identity) {
            return Ok(actions);
        }
        let auto = self.record.settings.mode == RoomMode::Class
            && self.record.settings.auto_stage
            && placement == Placement::Audience
            && self.stage_has_room(Some(&identity), now.mono)
            && !self.members[from]
                .stage_sources(self.overrides.get(&identity))
                .is_empty();
        if auto {
            self.place(from, Placement::Stage, &mut actions, now);
        } else {
            self.hands.push(identity);
            self.broadcast_update(from, &mut actions);
        }
        self.settle(&mut actions, now);
        Ok(actions)
    }

    fn lower_own_hand(&mut self, from: &ParticipantId, now: Now) -> Result<Vec<Action>, Refusal> {
        let identity = self.member(from)?.identity.clone();
        self.check_hand_rate(from, now)?;
        let mut actions = Vec::new();
        if self.hands.contains(&identity) {
            self.hands.retain(|i| *i != identity);
            self.broadcast_update(from, &mut actions);
            self.settle(&mut actions, now);
        }
        Ok(actions)
    }

    fn check_hand_rate(&mut self, from: &ParticipantId, now: Now) -> Result<(), Refusal> {
        let member = self
            .members
            .get_mut(from)
            .ok_or_else(|| Refusal::new(ErrorCode::UnknownParticipant, "not in the room"))?;
        if member.hand_rate.allow(now.mono) {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many hand changes; this one was dropped",
            ))
        }
    }

    /// A student leaves the stage by itself.
    fn leave_stage(&mut self, from: &ParticipantId, now: Now) -> Result<Vec<Action>, Refusal> {
        let member = self.member(from)?;
        if member.placement != Placement::Stage || member.is_moderator() {
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                "you are not on stage",
            ));
        }
        let mut actions = Vec::new();
        self.place(from, Placement::Audience, &mut actions, now);
        self.settle(&mut actions, now);
        Ok(actions)
    }

    fn moderator_mute(&mut self, id: &ParticipantId, kind: MediaKind, actions: &mut Vec<Action>) {
        let source = match kind {
            MediaKind::Audio => TrackSource::Microphone,
            _ => TrackSource::Camera,
        };
        let Some(member) = self.members.get_mut(id) else {
            return;
        };
        self.moderator_mutes
            .entry(member.identity.clone())
            .or_default()
            .insert(source);
        let mut changed = Vec::new();
        for (sid, track) in member.tracks.iter_mut() {
            if track.info.source != source || track.moderator_muted {
                continue;
            }
            track.moderator_muted = true;
            track.info.muted = true;
            if track.live {
                changed.push(sid.clone());
            }
        }
        let member = &self.members[id];
        for sid in changed {
            actions.push(Action::SetForwarding {
                track: sid.clone(),
                forwarded: false,
            });
            let event = ServerMessage::TrackMuted {
                participant_id: id.clone(),
                track_sid: sid.clone(),
                muted: true,
                by_moderator: true,
            };
            for viewer in self.members.values() {
                if viewer.id == *id || Self::sees(viewer, member) {
                    actions.push(Action::Send {
                        to: viewer.id.clone(),
                        message: event.clone(),
                    });
                }
            }
        }
    }

    /// A publisher mutes or unmutes its own track. Unmuting what a teacher muted needs the
    /// `unmute` permission.
    fn set_track_muted(
        &mut self,
        from: &ParticipantId,
        sid: &TrackSid,
        muted: bool,
        now: Now,
    ) -> Result<Vec<Action>, Refusal> {
        let member = self.member(from)?;
        let may_unmute = self.permissions_of(member).unmute;
        let identity = member.identity.clone();
        let Some(track) = member.tracks.get(sid) else {
            return Err(Refusal::new(
                ErrorCode::UnknownTrack,
                format!("no track {sid}"),
            ));
        };
        if !muted && track.moderator_muted && !may_unmute {
            return Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "a teacher muted this track; you may not unmute it",
            ));
        }
        let source = track.info.source;
        let was_moderator_muted = track.moderator_muted;
        let changed = track.info.muted != muted;
        let live = track.live;
        if let Some(track) = self
            .members
            .get_mut(from)
            .and_then(|m| m.tracks.get_mut(sid))
        {
            track.info.muted = muted;
            if !muted {
                track.moderator_muted = false;
            }
        }
        if !muted {
            if let Some(mutes) = self.moderator_mutes.get_mut(&identity) {
                mutes.remove(&source);
            }
        }
        let mut actions = Vec::new();
        if live && !muted && was_moderator_muted {
            actions.push(Action::SetForwarding {
                track: sid.clone(),
                forwarded: true,
            });
        }
        if live && changed {
            let member = &self.members[from];
            let event = ServerMessage::TrackMuted {
                participant_id: from.clone(),
                track_sid: sid.clone(),
                muted,
                by_moderator: false,
            };
            for viewer in self.members.values() {
                if Self::sees(viewer, member) {
                    actions.push(Action::Send {
                        to: viewer.id.clone(),
                        message: event.clone(),
                    });
                }
            }
        }
        self.settle(&mut actions, now);
        Ok(actions)
    }

    /// A publisher stops one of its tracks.
    fn unpublish(
        &mut self,
        from: &ParticipantId,
        sid: &TrackSid,
        now: Now,
    ) -> Result<Vec<Action>, Refusal> {
        if !self.member(from)?.tracks.contains_key(sid) {
            return Err(Refusal::new(
                ErrorCode::UnknownTrack,
                format!("no track {sid}"),
            ));
        }
        let mut actions = Vec::new();
        self.end_track(from, sid, false, &mut actions);
        self.settle(&mut actions, now);
        Ok(actions)
    }

    fn update_subscription(
        &self,
        from: &ParticipantId,
        sids: &[TrackSid],
        subscribe: bool,
    ) -> Result<Vec<Action>, Refusal> {
        let member = self.member(from)?;
        if subscribe && !self.permissions_of(member).subscribe {
            return Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "you may not receive others' media now",
            ));
        }
        let visible: std::collections::HashSet<&TrackSid> = self
            .members
            .values()
            .filter(|other| Self::sees(member, other))
            .flat_map(|other| other.tracks.iter().filter(|(_, t)| t.live).map(|(s, _)| s))
            .collect();
        if let Some(unknown) = sids.iter().find(|sid| !visible.contains(sid)) {
            return Err(Refusal::new(
                ErrorCode::UnknownTrack,
                format!("no track {unknown}"),
            ));
        }
        Ok(sids
            .iter()
            .map(|sid| {
                if subscribe {
                    Action::Subscribe {
                        subscriber: from.clone(),
                        track: sid.clone(),
                    }
                } else {
                    Action::Unsubscribe {
                        subscriber: from.clone(),
                        track: sid.clone(),
                    }
                }
            })
            .collect())
    }

    fn set_co_teacher(
        &mut self,
        id: &ParticipantId,
        co_teacher: bool,
        actions: &mut Vec<Action>,
        now: Now,
    ) {
        let was_on_stage = self.members[id].placement == Placement::Stage;
        if let Some(member) = self.members.get_mut(id) {
            member.co_teacher = co_teacher;
        }
        let identity = self.members[id].identity.clone();
        if co_teacher {
            self.hands.retain(|i| *i != identity);
            self.invitations.remove(&identity);
            // It sees the lobby now.
            let member = &self.members[id];
            for waiting in self.members.values().filter(|m| !m.is_admitted()) {
                if Self::sees(member, waiting) {
                    actions.push(Action::Send {
                        to: id.clone(),
                        message: ServerMessage::ParticipantJoined {
                            participant: self.info_of(waiting),
                        },
                    });
                }
            }
            if !was_on_stage {
                self.place(id, Placement::Stage, actions, now);
                return;
            }
        } else {
            let placement = self.entry_placement(&self.members[id]);
            if placement != Placement::Stage || !self.stage_has_room(Some(&identity), now.mono) {
                self.place(id, Placement::Audience, actions, now);
                return;
            }
        }
        self.broadcast_update(id, actions);
    }

    /// Ends the class: everyone is told and disconnected, and the room's next class starts
    /// clean (no bans, no lock, empty chat).
    fn end_class(&mut self, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        let ids: Vec<ParticipantId> = self.members.keys().cloned().collect();
        for id in &ids {
            actions.push(Action::Disconnect {
                who: id.clone(),
                reason: LeaveReason::ClassEnded,
                message: None,
            });
        }
        for id in &ids {
            let member = self.members[id].clone();
            if member.placement == Placement::Stage {
                self.attendance(
                    &member,
                    super::attendance::AttendanceKind::StageOff,
                    &mut actions,
                    now,
                );
            }
            self.attendance(
                &member,
                super::attendance::AttendanceKind::Left {
                    reason: LeaveReason::ClassEnded,
                },
                &mut actions,
                now,
            );
            for sid in member.tracks.keys() {
                actions.push(Action::EndTrack {
                    publisher: id.clone(),
                    track: sid.clone(),
                });
            }
        }
        let ended = self.record.class;
        self.record = self.record.next_class();
        self.record.last_active_ms = now.unix_ms;
        actions.push(Action::StoreRoom(self.record.clone()));
        actions.push(Action::Webhook(WebhookEventKind::ClassEnded {
            class: ended,
        }));
        self.members.clear();
        self.hands.clear();
        self.invitations.clear();
        self.admitted.clear();
        self.holds.clear();
        self.moderator_mutes.clear();
        self.overrides.clear();
        self.spotlight = None;
        self.chat.clear();
        self.next_chat_seq = 1;
        self.pending_chat.clear();
        self.next_attendance_seq = 1;
        self.told.clear();
        self.ended = true;
        actions
    }

    /// Forgets everything the room kept for `identity` (it was removed).
    fn forget(&mut self, identity: &str) {
        self.hands.retain(|i| i != identity);
        self.invitations.remove(identity);
        self.admitted.remove(identity);
        self.holds.remove(identity);
        self.overrides.remove(identity);
        if self.spotlight.as_deref() == Some(identity) {
            self.spotlight = None;
        }
    }
}

fn refusal_to(to: &ParticipantId, request_id: Option<u64>, refusal: Refusal) -> Action {
    Action::Send {
        to: to.clone(),
        message: ServerMessage::error(request_id, refusal.code, refusal.message),
    }
}

fn not_in_lobby(id: &ParticipantId) -> Refusal {
    Refusal::new(
        ErrorCode::InvalidState,
        format!("{id} is not waiting in the lobby"),
    )
}

/// A reason shown to a participant: trimmed, bounded, `None` when empty.
fn check_reason(reason: String) -> Result<Option<String>, Refusal> {
    let reason = reason.trim().to_owned();
    if reason.len() > MAX_REASON_BYTES {
        return Err(Refusal::new(
            ErrorCode::InvalidRequest,
            format!("a reason is at most {MAX_REASON_BYTES} bytes"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(Refusal::new(
            ErrorCode::InvalidRequest,
            "a reason may not hold control characters",
        ));
    }
    Ok((!reason.is_empty()).then_some(reason))
}
