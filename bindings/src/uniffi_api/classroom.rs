//! The classroom on `AulaRoom`: this client's view of it, and the requests students and
//! teachers make (`aula_core::Room`'s classroom methods, one for one).
//!
//! Every request blocks until the server answered. A refusal is
//! `AulaError::Refused { code, reason }`, whose `code` (`PermissionDenied`, `InvalidState`,
//! `UnknownParticipant`, `StageFull`, `RoomLocked`, `ChatDisabled`, `RateLimited`,
//! `MessageTooLarge`, ...) says why; a refused request changed nothing. Teacher-only requests
//! from anyone else are `PermissionDenied`.

use aula_protocol::{MediaKind, ParticipantId, TrackSid};

use super::classroom_records::{
    ChatDraft, ChatMessage, ChatPage, ClassroomView, PermissionsPatch, Placement, RoomSettingsPatch,
};
use super::error::AulaError;
use super::records::TrackKind;
use super::{block_on, AulaRoom};

/// A participant id from the bindings.
fn participant(id: &str) -> ParticipantId {
    ParticipantId::from(id)
}

/// The core's media kind for a request that mutes audio or video.
fn media_kind(kind: TrackKind) -> Result<MediaKind, AulaError> {
    match kind {
        TrackKind::Audio => Ok(MediaKind::Audio),
        TrackKind::Video => Ok(MediaKind::Video),
        TrackKind::Unknown => Err(AulaError::InvalidArgument {
            reason: "mute audio or video, not an unknown kind".into(),
        }),
    }
}

#[uniffi::export]
impl AulaRoom {
    /// Where this client is now: lobby, audience or stage.
    pub fn placement(&self) -> Result<Placement, AulaError> {
        Ok(self.room()?.placement().into())
    }

    /// This client's view of the classroom now: placement, permissions, the room's classroom
    /// state, a pending stage invitation, its hand, and the chat it has seen.
    pub fn classroom(&self) -> Result<ClassroomView, AulaError> {
        Ok(self.room()?.classroom().into())
    }

    /// Mutes or unmutes one of this client's tracks (others get `TrackMuted`). Unmuting what a
    /// teacher muted is refused (`PermissionDenied`) unless `Permissions.unmute`.
    pub fn set_track_muted(&self, track_sid: String, muted: bool) -> Result<(), AulaError> {
        let room = self.room()?;
        let sid = TrackSid::from(track_sid.as_str());
        Ok(block_on(room.set_track_muted(&sid, muted))??)
    }

    /// Whether one of this client's tracks is muted (none when it publishes no such track).
    pub fn is_track_muted(&self, track_sid: String) -> Result<Option<bool>, AulaError> {
        Ok(self
            .room()?
            .is_track_muted(&TrackSid::from(track_sid.as_str())))
    }

    // ----- everyone -----

    /// Raises this client's hand (`InvalidState` in the lobby).
    pub fn raise_hand(&self) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.raise_hand())??)
    }

    /// Lowers this client's hand.
    pub fn lower_hand(&self) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.lower_hand())??)
    }

    /// Accepts or declines the pending stage invitation (`InvalidState` without one;
    /// `StageFull` if the stage filled meanwhile, and the invitation stands).
    pub fn answer_stage_invitation(&self, accept: bool) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.answer_stage_invitation(accept))??)
    }

    /// Leaves the stage for the audience; the server ends this client's camera and
    /// microphone (`LocalTrackEnded`).
    pub fn leave_stage(&self) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.leave_stage())??)
    }

    /// Sends a chat message; returns it as the server stored it (with its `seq` and time).
    /// Others get `ChatReceived`.
    pub fn send_chat(&self, draft: ChatDraft) -> Result<ChatMessage, AulaError> {
        let room = self.room()?;
        Ok(block_on(room.send_chat(draft.into()))??.into())
    }

    /// Deletes a chat message: one's own, or any as a teacher.
    pub fn delete_chat(&self, seq: u64) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.delete_chat(seq))??)
    }

    /// Older chat messages: up to `limit` (at most 200, the default) before `before` (the
    /// newest without it), oldest first.
    #[uniffi::method(default(before = None, limit = None))]
    pub fn chat_history(
        &self,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<ChatPage, AulaError> {
        let room = self.room()?;
        let (messages, more) = block_on(room.chat_history(before, limit))??;
        Ok(ChatPage {
            messages: messages.into_iter().map(Into::into).collect(),
            more,
        })
    }

    // ----- teachers -----

    /// Lets a participant in from the lobby (`InvalidState` if it is not there).
    pub fn admit(&self, participant_id: String) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.admit(&participant(&participant_id)))??)
    }

    /// Lets everyone in the lobby in.
    pub fn admit_all(&self) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.admit_all())??)
    }

    /// Refuses a participant in the lobby, who is shown `reason` (at most 256 bytes).
    pub fn deny(&self, participant_id: String, reason: String) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(
            room.deny(&participant(&participant_id), &reason),
        )??)
    }

    /// Invites a student in the audience to the stage; one with a raised hand goes up at
    /// once (`StageFull`, `InvalidState`).
    pub fn invite_to_stage(&self, participant_id: String) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(
            room.invite_to_stage(&participant(&participant_id)),
        )??)
    }

    /// Moves a student from the stage to the audience (its camera and microphone end).
    pub fn move_to_audience(&self, participant_id: String) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(
            room.move_to_audience(&participant(&participant_id)),
        )??)
    }

    /// Moves every student on stage to the audience.
    pub fn clear_stage(&self) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.clear_stage())??)
    }

    /// Lowers (dismisses) a participant's raised hand.
    pub fn dismiss_hand(&self, participant_id: String) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.dismiss_hand(&participant(&participant_id)))??)
    }

    /// Mutes a participant's microphone (`Audio`) or camera (`Video`); the server forwards
    /// nothing of it until it is unmuted.
    pub fn mute_participant(
        &self,
        participant_id: String,
        kind: TrackKind,
    ) -> Result<(), AulaError> {
        let room = self.room()?;
        let kind = media_kind(kind)?;
        Ok(block_on(
            room.mute_participant(&participant(&participant_id), kind),
        )??)
    }

    /// Mutes every student's microphone or camera; `allow_unmute`, when given, sets whether
    /// they may unmute themselves (the room's `students_may_unmute`).
    #[uniffi::method(default(allow_unmute = None))]
    pub fn mute_all(&self, kind: TrackKind, allow_unmute: Option<bool>) -> Result<(), AulaError> {
        let room = self.room()?;
        let kind = media_kind(kind)?;
        Ok(block_on(room.mute_all(kind, allow_unmute))??)
    }

    /// Ends a participant's screen share.
    pub fn stop_screen_share(&self, participant_id: String) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(
            room.stop_screen_share(&participant(&participant_id)),
        )??)
    }

    /// Removes a participant from the class, showing it `reason` (at most 256 bytes); its
    /// identity cannot rejoin this class (`Removed`).
    pub fn remove_participant(
        &self,
        participant_id: String,
        reason: String,
    ) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.remove_participant(
            &participant(&participant_id),
            &reason,
        ))??)
    }

    /// Locks the room (no new participants: `RoomLocked`) or unlocks it.
    pub fn lock_room(&self, locked: bool) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.lock_room(locked))??)
    }

    /// Ends the class for everyone (`Disconnected` with cause `ClassEnded`).
    pub fn end_class(&self) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.end_class())??)
    }

    /// Makes a participant co-teacher, or takes it back.
    pub fn set_co_teacher(
        &self,
        participant_id: String,
        co_teacher: bool,
    ) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.set_co_teacher(
            &participant(&participant_id),
            co_teacher,
        ))??)
    }

    /// Features one participant for everyone, or (with none) nobody.
    pub fn spotlight(&self, participant_id: Option<String>) -> Result<(), AulaError> {
        let room = self.room()?;
        let participant_id = participant_id.as_deref().map(participant);
        Ok(block_on(room.spotlight(participant_id.as_ref()))??)
    }

    /// Changes the fields of the room's settings that `settings` sets.
    pub fn update_room_settings(&self, settings: RoomSettingsPatch) -> Result<(), AulaError> {
        let room = self.room()?;
        Ok(block_on(room.update_room_settings(settings.into()))??)
    }

    /// Changes what one participant may do (the fields `permissions` sets).
    pub fn update_permissions(
        &self,
        participant_id: String,
        permissions: PermissionsPatch,
    ) -> Result<(), AulaError> {
        let room = self.room()?;
        let permissions = permissions.try_into()?;
        Ok(block_on(room.update_permissions(
            &participant(&participant_id),
            permissions,
        ))??)
    }
}
