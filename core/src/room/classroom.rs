//! The classroom from this client's side: where it is (lobby, audience, stage), what it may
//! do, the room's classroom state, a pending stage invitation and the chat; and the requests
//! students and teachers make.
//!
//! [`ClassroomView`] is plain state updated from server messages (no IO), so its rules are
//! tested without a server; [`Room`]'s classroom methods send the requests.

use std::collections::VecDeque;

use aula_protocol::{
    ChatMessage, ClassroomState, ClientMessage, MediaKind, ParticipantId, ParticipantInfo,
    Permissions, PermissionsPatch, Placement, RoomSettingsPatch, ServerMessage, TrackSource,
};

use super::{Room, RoomError, RoomEvent};

/// Chat messages a client keeps (older ones come with [`Room::chat_history`]).
pub const KEPT_CHAT: usize = 1_000;

/// This client's view of the classroom.
#[derive(Clone, Debug, Default)]
pub struct ClassroomView {
    /// Where this client is.
    pub placement: Placement,
    /// What it may do; `None` from a server without a classroom (the token's grants apply).
    pub permissions: Option<Permissions>,
    /// The room's classroom state.
    pub classroom: ClassroomState,
    /// The teacher whose stage invitation waits for an answer.
    pub invitation: Option<ParticipantId>,
    /// Whether this client has a hand raised.
    pub hand_raised: bool,
    /// Whether a teacher made it co-teacher.
    pub co_teacher: bool,
    /// The newest chat messages it may see, oldest first.
    pub chat: VecDeque<ChatMessage>,
}

impl ClassroomView {
    /// The view a `joined` reply gives.
    pub fn joined(
        participant: &ParticipantInfo,
        classroom: ClassroomState,
        permissions: Option<Permissions>,
        chat: Vec<ChatMessage>,
    ) -> Self {
        let mut view = Self {
            placement: participant.placement,
            permissions,
            classroom,
            invitation: None,
            hand_raised: participant.hand_raised,
            co_teacher: participant.co_teacher,
            chat: VecDeque::new(),
        };
        view.merge_chat(chat);
        view
    }

    /// Whether it may publish `source` now. Without a classroom, the server decides.
    pub fn may_publish(&self, source: TrackSource) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.can_publish(source))
    }

    /// Applies a classroom message from the server; returns what the app should hear.
    /// `local` is this client's participant id.
    pub fn apply(&mut self, local: &ParticipantId, message: &ServerMessage) -> Vec<RoomEvent> {
        let mut events = Vec::new();
        match message {
            ServerMessage::Admitted {
                participant,
                classroom,
                permissions,
                chat,
                ..
            } => {
                self.placement = participant.placement;
                self.classroom = classroom.clone();
                self.permissions = Some(permissions.clone());
                self.merge_chat(chat.clone());
                events.push(RoomEvent::Admitted);
                events.push(RoomEvent::PermissionsChanged(permissions.clone()));
            }
            ServerMessage::ParticipantUpdated { participant } => {
                if participant.id == *local {
                    self.placement = participant.placement;
                    self.hand_raised = participant.hand_raised;
                    self.co_teacher = participant.co_teacher;
                    if participant.placement != Placement::Audience {
                        self.invitation = None;
                    }
                }
                events.push(RoomEvent::ParticipantUpdated(participant.clone()));
            }
            ServerMessage::ClassroomUpdated { classroom } => {
                self.classroom = classroom.clone();
                events.push(RoomEvent::ClassroomChanged(classroom.clone()));
            }
            ServerMessage::PermissionsChanged { permissions } => {
                self.permissions = Some(permissions.clone());
                events.push(RoomEvent::PermissionsChanged(permissions.clone()));
            }
            ServerMessage::StageInvitation { from } => {
                self.invitation = Some(from.clone());
                events.push(RoomEvent::StageInvitation { from: from.clone() });
            }
            ServerMessage::StageInvitationAnswered {
                participant_id,
                accepted,
            } => events.push(RoomEvent::StageInvitationAnswered {
                participant_id: participant_id.clone(),
                accepted: *accepted,
            }),
            ServerMessage::Chat { message } => {
                self.merge_chat(vec![message.clone()]);
                events.push(RoomEvent::ChatReceived(message.clone()));
            }
            ServerMessage::ChatDeleted { seq } => {
                if let Some(m) = self.chat.iter_mut().find(|m| m.seq == *seq) {
                    m.deleted = true;
                    m.text.clear();
                }
                events.push(RoomEvent::ChatDeleted { seq: *seq });
            }
            _ => {}
        }
        events
    }

    /// Adds messages (from a reply, history or an event), keeping the list ordered by
    /// sequence number without duplicates (a reconnect delivers some again).
    pub fn merge_chat(&mut self, messages: Vec<ChatMessage>) {
        for message in messages {
            match self.chat.binary_search_by_key(&message.seq, |m| m.seq) {
                Ok(i) => self.chat[i] = message,
                Err(i) => self.chat.insert(i, message),
            }
        }
        while self.chat.len() > KEPT_CHAT {
            self.chat.pop_front();
        }
    }

    /// The view after rejoining: the new `joined` is the truth, and the chat kept so far is
    /// merged with what the server sent again (a class ended meanwhile starts over).
    pub fn rejoined(&mut self, fresh: ClassroomView, same_class: bool) {
        let mut chat = if same_class {
            std::mem::take(&mut self.chat)
        } else {
            VecDeque::new()
        };
        let incoming = fresh.chat.clone();
        *self = fresh;
        std::mem::swap(&mut self.chat, &mut chat);
        self.merge_chat(incoming.into_iter().collect());
    }
}

/// A chat message to send.
#[derive(Clone, Debug, Default)]
pub struct ChatDraft {
    /// The text (at most 4 KiB).
    pub text: String,
    /// For a private message, the recipient.
    pub to: Option<ParticipantId>,
    /// Send as an announcement (teachers).
    pub announcement: bool,
}

impl Room {
    /// This client's view of the classroom now.
    pub fn classroom(&self) -> ClassroomView {
        super::lock(&self.inner.classroom).clone()
    }

    /// Where this client is (lobby, audience or stage).
    pub fn placement(&self) -> Placement {
        super::lock(&self.inner.classroom).placement
    }

    /// Sends a classroom request and waits for its `ok`.
    async fn classroom_request(
        &self,
        build: impl FnOnce(u64) -> ClientMessage,
    ) -> Result<ServerMessage, RoomError> {
        self.inner.ensure_open()?;
        let signal = self.inner.signal();
        let id = signal.next_id();
        Ok(signal.request(build(id)).await?)
    }

    /// Raises this client's hand.
    pub async fn raise_hand(&self) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::RaiseHand { id })
            .await
            .map(drop)
    }

    /// Lowers this client's hand.
    pub async fn lower_hand(&self) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::LowerHand {
            id,
            participant_id: None,
        })
        .await
        .map(drop)
    }

    /// Accepts or declines the pending stage invitation.
    pub async fn answer_stage_invitation(&self, accept: bool) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::AnswerStageInvitation { id, accept })
            .await?;
        super::lock(&self.inner.classroom).invitation = None;
        Ok(())
    }

    /// Leaves the stage for the audience (its camera and microphone end).
    pub async fn leave_stage(&self) -> Result<(), RoomError> {
        let local = self.local_participant().id;
        self.move_to_audience(&local).await
    }

    /// Sends a chat message; returns it as stored (with its sequence number and time).
    pub async fn send_chat(&self, draft: ChatDraft) -> Result<ChatMessage, RoomError> {
        let reply = self
            .classroom_request(|id| ClientMessage::SendChat {
                id,
                text: draft.text,
                to: draft.to,
                announcement: draft.announcement,
            })
            .await?;
        let ServerMessage::ChatSent { message, .. } = reply else {
            return Err(RoomError::Internal("unexpected reply to send_chat".into()));
        };
        super::lock(&self.inner.classroom).merge_chat(vec![message.clone()]);
        Ok(message)
    }

    /// Deletes a chat message (one's own, or any as a teacher).
    pub async fn delete_chat(&self, seq: u64) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::DeleteChat { id, seq })
            .await
            .map(drop)
    }

    /// Older chat messages: up to `limit` before `before` (the newest without it), oldest
    /// first, and whether there are more.
    pub async fn chat_history(
        &self,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<(Vec<ChatMessage>, bool), RoomError> {
        let reply = self
            .classroom_request(|id| ClientMessage::ChatHistory { id, before, limit })
            .await?;
        let ServerMessage::ChatHistory { messages, more, .. } = reply else {
            return Err(RoomError::Internal(
                "unexpected reply to chat_history".into(),
            ));
        };
        super::lock(&self.inner.classroom).merge_chat(messages.clone());
        Ok((messages, more))
    }

    // ----- teachers -----

    /// Lets a participant in from the lobby.
    pub async fn admit(&self, participant: &ParticipantId) -> Result<(), RoomError> {
        let participant_id = participant.clone();
        self.classroom_request(|id| ClientMessage::Admit { id, participant_id })
            .await
            .map(drop)
    }

    /// Lets everyone in the lobby in.
    pub async fn admit_all(&self) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::AdmitAll { id })
            .await
            .map(drop)
    }

    /// Refuses a participant in the lobby, who is shown `reason`.
    pub async fn deny(&self, participant: &ParticipantId, reason: &str) -> Result<(), RoomError> {
        let participant_id = participant.clone();
        let reason = reason.to_owned();
        self.classroom_request(|id| ClientMessage::Deny {
            id,
            participant_id,
            reason,
        })
        .await
        .map(drop)
    }

    /// Invites a student to the stage (a raised hand goes up at once).
    pub async fn invite_to_stage(&self, participant: &ParticipantId) -> Result<(), RoomError> {
        let participant_id = participant.clone();
        self.classroom_request(|id| ClientMessage::InviteToStage { id, participant_id })
            .await
            .map(drop)
    }

    /// Moves a student from the stage to the audience.
    pub async fn move_to_audience(&self, participant: &ParticipantId) -> Result<(), RoomError> {
        let participant_id = participant.clone();
        self.classroom_request(|id| ClientMessage::MoveToAudience { id, participant_id })
            .await
            .map(drop)
    }

    /// Moves every student on stage to the audience.
    pub async fn clear_stage(&self) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::ClearStage { id })
            .await
            .map(drop)
    }

    /// Lowers (dismisses) a participant's raised hand.
    pub async fn dismiss_hand(&self, participant: &ParticipantId) -> Result<(), RoomError> {
        let participant_id = Some(participant.clone());
        self.classroom_request(|id| ClientMessage::LowerHand { id, participant_id })
            .await
            .map(drop)
    }

    /// Mutes a participant's microphone (audio) or camera (video).
    pub async fn mute_participant(
        &self,
        participant: &ParticipantId,
        kind: MediaKind,
    ) -> Result<(), RoomError> {
        let participant_id = participant.clone();
        self.classroom_request(|id| ClientMessage::MuteParticipant {
            id,
            participant_id,
            kind,
        })
        .await
        .map(drop)
    }

    /// Mutes every student's microphone or camera; `allow_unmute` (when given) sets whether
    /// they may unmute themselves.
    pub async fn mute_all(
        &self,
        kind: MediaKind,
        allow_unmute: Option<bool>,
    ) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::MuteAll {
            id,
            kind,
            allow_unmute,
        })
        .await
        .map(drop)
    }

    /// Ends a participant's screen share.
    pub async fn stop_screen_share(&self, participant: &ParticipantId) -> Result<(), RoomError> {
        let participant_id = participant.clone();
        self.classroom_request(|id| ClientMessage::StopScreenShare { id, participant_id })
            .await
            .map(drop)
    }

    /// Removes a participant from the class (it cannot rejoin it), showing it `reason`.
    pub async fn remove_participant(
        &self,
        participant: &ParticipantId,
        reason: &str,
    ) -> Result<(), RoomError> {
        let participant_id = participant.clone();
        let reason = reason.to_owned();
        self.classroom_request(|id| ClientMessage::RemoveParticipant {
            id,
            participant_id,
            reason,
        })
        .await
        .map(drop)
    }

    /// Locks the room (no new joins) or unlocks it.
    pub async fn lock_room(&self, locked: bool) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::LockRoom { id, locked })
            .await
            .map(drop)
    }

    /// Ends the class for everyone.
    pub async fn end_class(&self) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::EndClass { id })
            .await
            .map(drop)
    }

    /// Makes a participant co-teacher, or takes it back.
    pub async fn set_co_teacher(
        &self,
        participant: &ParticipantId,
        co_teacher: bool,
    ) -> Result<(), RoomError> {
        let participant_id = participant.clone();
        self.classroom_request(|id| ClientMessage::SetCoTeacher {
            id,
            participant_id,
            co_teacher,
        })
        .await
        .map(drop)
    }

    /// Features one participant for everyone (or, with `None`, nobody).
    pub async fn spotlight(&self, participant: Option<&ParticipantId>) -> Result<(), RoomError> {
        let participant_id = participant.cloned();
        self.classroom_request(|id| ClientMessage::Spotlight { id, participant_id })
            .await
            .map(drop)
    }

    /// Changes some of the room's settings.
    pub async fn update_room_settings(&self, settings: RoomSettingsPatch) -> Result<(), RoomError> {
        self.classroom_request(|id| ClientMessage::UpdateRoomSettings { id, settings })
            .await
            .map(drop)
    }

    /// Changes what one participant may do.
    pub async fn update_permissions(
        &self,
        participant: &ParticipantId,
        permissions: PermissionsPatch,
    ) -> Result<(), RoomError> {
        let participant_id = participant.clone();
        self.classroom_request(|id| ClientMessage::UpdatePermissions {
            id,
            participant_id,
            permissions,
        })
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aula_protocol::classroom::ChatKind;
    use aula_protocol::Role;

    fn me() -> ParticipantId {
        ParticipantId::from_counter(1)
    }

    fn info(placement: Placement) -> ParticipantInfo {
        let mut info = ParticipantInfo::new(me(), "s1", "S", Role::Student);
        info.placement = placement;
        info
    }

    fn message(seq: u64) -> ChatMessage {
        ChatMessage {
            seq,
            time: seq,
            from: Some("t1".into()),
            from_name: "T".into(),
            to: None,
            kind: ChatKind::Message,
            text: format!("m{seq}"),
            deleted: false,
        }
    }

    #[test]
    fn a_lobby_view_becomes_a_room_view_when_admitted() {
        let mut view = ClassroomView::joined(
            &info(Placement::Lobby),
            ClassroomState::default(),
            Some(Permissions::default()),
            Vec::new(),
        );
        assert!(!view.may_publish(TrackSource::Camera));
        let permissions = Permissions {
            publish: vec![TrackSource::Camera],
            subscribe: true,
            chat: true,
            ..Permissions::default()
        };
        let events = view.apply(
            &me(),
            &ServerMessage::Admitted {
                participant: info(Placement::Stage),
                participants: Vec::new(),
                classroom: ClassroomState::default(),
                permissions: permissions.clone(),
                chat: vec![message(1), message(2)],
            },
        );
        assert!(matches!(events[0], RoomEvent::Admitted));
        assert_eq!(view.placement, Placement::Stage);
        assert!(view.may_publish(TrackSource::Camera));
        assert_eq!(view.chat.len(), 2);
    }

    #[test]
    fn chat_stays_ordered_without_duplicates_across_a_reconnect() {
        let mut view = ClassroomView::default();
        view.merge_chat(vec![message(3), message(1)]);
        view.apply(
            &me(),
            &ServerMessage::Chat {
                message: message(2),
            },
        );
        view.apply(&me(), &ServerMessage::ChatDeleted { seq: 3 });
        let fresh = ClassroomView::joined(
            &info(Placement::Audience),
            ClassroomState::default(),
            None,
            vec![message(2), message(3), message(4)],
        );
        view.rejoined(fresh, true);
        let seqs: Vec<u64> = view.chat.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        let mut other = view.clone();
        other.rejoined(ClassroomView::default(), false);
        assert!(other.chat.is_empty(), "a new class starts with no chat");
    }

    #[test]
    fn an_invitation_waits_until_the_client_is_placed() {
        let mut view = ClassroomView::joined(
            &info(Placement::Audience),
            ClassroomState::default(),
            None,
            Vec::new(),
        );
        view.apply(
            &me(),
            &ServerMessage::StageInvitation {
                from: ParticipantId::from_counter(9),
            },
        );
        assert!(view.invitation.is_some());
        view.apply(
            &me(),
            &ServerMessage::ParticipantUpdated {
                participant: info(Placement::Stage),
            },
        );
        assert!(view.invitation.is_none());
        assert_eq!(view.placement, Placement::Stage);
    }

    #[test]
    fn without_a_classroom_the_server_decides_what_may_be_published() {
        let view = ClassroomView::default();
        assert!(view.may_publish(TrackSource::ScreenShare));
    }
}
