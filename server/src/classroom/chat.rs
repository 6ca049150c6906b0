//! Chat: who may send what to whom, sequence and time, storing before acknowledging, history.

use aula_protocol::classroom::{ChatKind, CHAT_PAGE, MAX_CHAT_TEXT_BYTES};
use aula_protocol::{ChatMessage, ErrorCode, ParticipantId, ServerMessage};

use super::state::RoomState;
use super::{Action, ChatReply, Now, Refusal, CHAT_WINDOW};

/// A chat message asked for, before the room checks it.
#[derive(Clone, Debug)]
pub(super) struct ChatRequest {
    pub text: String,
    pub to: Option<ParticipantId>,
    pub announcement: bool,
}

impl RoomState {
    /// A participant sends a chat message: checked, numbered, and handed to the store. It is
    /// delivered (and acknowledged) once stored, in [`chat_stored`](Self::chat_stored).
    pub(super) fn send_chat(
        &mut self,
        from: &ParticipantId,
        request_id: u64,
        request: ChatRequest,
        now: Now,
    ) -> Result<Vec<Action>, Refusal> {
        let member = self.member(from)?;
        if !member.is_admitted() {
            return Err(Refusal::new(
                ErrorCode::ChatDisabled,
                "no chat while you wait in the lobby",
            ));
        }
        if !self.permissions_of(member).chat {
            return Err(Refusal::new(
                ErrorCode::ChatDisabled,
                "chat is off for you in this room",
            ));
        }
        check_text(&request.text)?;
        if request.announcement && !member.is_moderator() {
            return Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "only teachers make announcements",
            ));
        }
        let to = match &request.to {
            None => None,
            Some(to) => {
                let recipient = self.member(to)?;
                if recipient.id == *from {
                    return Err(Refusal::new(
                        ErrorCode::InvalidRequest,
                        "a private message needs another recipient",
                    ));
                }
                if !recipient.is_admitted() {
                    return Err(Refusal::new(
                        ErrorCode::UnknownParticipant,
                        format!("no participant {to} in the room"),
                    ));
                }
                if member.is_student()
                    && recipient.is_student()
                    && !self.record.settings.student_private_chat
                {
                    return Err(Refusal::new(
                        ErrorCode::PermissionDenied,
                        "private messages between students are off in this room",
                    ));
                }
                Some(recipient.identity.clone())
            }
        };
        let member = self
            .members
            .get_mut(from)
            .ok_or_else(|| Refusal::new(ErrorCode::UnknownParticipant, "not in the room"))?;
        if !member.chat_rate.allow(now.mono) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many chat messages; this one was dropped",
            ));
        }
        let message = ChatMessage {
            seq: self.next_chat_seq,
            time: now.unix_ms,
            from: Some(member.identity.clone()),
            from_name: member.name.clone(),
            to,
            kind: if request.announcement {
                ChatKind::Announcement
            } else {
                ChatKind::Message
            },
            text: request.text,
            deleted: false,
        };
        Ok(self.store_new(
            message,
            ChatReply::Participant {
                id: from.clone(),
                request_id,
            },
        ))
    }

    /// A system message from the backend.
    pub(super) fn system_message(
        &mut self,
        text: String,
        to: Option<String>,
        now: Now,
    ) -> Result<Vec<Action>, Refusal> {
        check_text(&text)?;
        if let Some(to) = &to {
            if self.id_of(to).is_none() {
                return Err(Refusal::new(
                    ErrorCode::UnknownParticipant,
                    format!("{to} is not in the room"),
                ));
            }
        }
        let message = ChatMessage {
            seq: self.next_chat_seq,
            time: now.unix_ms,
            from: None,
            from_name: String::new(),
            to,
            kind: ChatKind::System,
            text,
            deleted: false,
        };
        Ok(self.store_new(message, ChatReply::Api))
    }

    fn store_new(&mut self, message: ChatMessage, reply: ChatReply) -> Vec<Action> {
        self.next_chat_seq += 1;
        self.pending_chat
            .insert(message.seq, (message.clone(), reply));
        vec![Action::StoreChat {
            class: self.record.class,
            message,
        }]
    }

    /// A participant deletes a message: its own, or any as a teacher. The deletion is
    /// stored, then announced.
    pub(super) fn delete_chat(
        &mut self,
        by: &ParticipantId,
        request_id: u64,
        seq: u64,
    ) -> Result<Vec<Action>, Refusal> {
        let member = self.member(by)?;
        let Some(message) = self.chat.iter().find(|m| m.seq == seq) else {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                format!("no message {seq} among the newest {CHAT_WINDOW}"),
            ));
        };
        if message.deleted {
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                "the message is deleted already",
            ));
        }
        let own = message.from.as_deref() == Some(member.identity.as_str());
        if !own && !member.is_moderator() {
            return Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "only its sender or a teacher deletes a message",
            ));
        }
        if !message.visible_to(&member.identity) {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                format!("no message {seq}"),
            ));
        }
        let deleted = ChatMessage {
            text: String::new(),
            deleted: true,
            ..message.clone()
        };
        self.pending_chat.insert(
            seq,
            (
                deleted.clone(),
                ChatReply::Participant {
                    id: by.clone(),
                    request_id,
                },
            ),
        );
        Ok(vec![Action::StoreChat {
            class: self.record.class,
            message: deleted,
        }])
    }

    /// The store has the chat message (or deletion) `seq`: deliver it and acknowledge.
    pub fn chat_stored(&mut self, seq: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some((message, reply)) = self.pending_chat.remove(&seq) else {
            return actions;
        };
        if message.deleted {
            if let Some(old) = self.chat.iter_mut().find(|m| m.seq == seq) {
                *old = message.clone();
            }
            for member in self.members.values().filter(|m| m.is_admitted()) {
                if message.visible_to(&member.identity) {
                    actions.push(Action::Send {
                        to: member.id.clone(),
                        message: ServerMessage::ChatDeleted { seq },
                    });
                }
            }
            if let ChatReply::Participant { id, request_id } = reply {
                actions.push(Action::Send {
                    to: id,
                    message: ServerMessage::Ok { request_id },
                });
            }
            return actions;
        }
        self.chat.push_back(message.clone());
        while self.chat.len() > CHAT_WINDOW {
            self.chat.pop_front();
        }
        let sender = match &reply {
            ChatReply::Participant { id, request_id } => {
                actions.push(Action::Send {
                    to: id.clone(),
                    message: ServerMessage::ChatSent {
                        request_id: *request_id,
                        message: message.clone(),
                    },
                });
                Some(id.clone())
            }
            ChatReply::Api => None,
        };
        for member in self.members.values().filter(|m| m.is_admitted()) {
            if Some(&member.id) != sender.as_ref() && message.visible_to(&member.identity) {
                actions.push(Action::Send {
                    to: member.id.clone(),
                    message: ServerMessage::Chat {
                        message: message.clone(),
                    },
                });
            }
        }
        actions
    }

    /// Storing `seq` failed: the sender is told, nobody else hears of it.
    pub fn chat_store_failed(&mut self, seq: u64) -> Vec<Action> {
        match self.pending_chat.remove(&seq) {
            Some((_, ChatReply::Participant { id, request_id })) => vec![Action::Send {
                to: id,
                message: ServerMessage::error(
                    Some(request_id),
                    ErrorCode::Internal,
                    "the message could not be stored; send it again",
                ),
            }],
            _ => Vec::new(),
        }
    }

    /// A page of history for a participant: from memory when the newest messages cover it,
    /// else a load from the store.
    pub(super) fn chat_history(
        &self,
        to: &ParticipantId,
        request_id: u64,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Vec<Action>, Refusal> {
        let member = self.member(to)?;
        if !member.is_admitted() {
            return Err(Refusal::new(
                ErrorCode::ChatDisabled,
                "no chat while you wait in the lobby",
            ));
        }
        let limit = limit.map_or(CHAT_PAGE, |l| (l as usize).clamp(1, CHAT_PAGE));
        let before = before.unwrap_or(u64::MAX);
        let oldest_in_memory = self.chat.front().map_or(1, |m| m.seq);
        let (messages, more_in_memory) =
            self.chat_visible_to(&member.identity, Some(before), limit);
        if messages.len() == limit || oldest_in_memory <= 1 {
            return Ok(vec![Action::Send {
                to: to.clone(),
                message: ServerMessage::ChatHistory {
                    request_id,
                    messages,
                    more: more_in_memory || oldest_in_memory > 1,
                },
            }]);
        }
        Ok(vec![Action::LoadChatPage {
            to: to.clone(),
            identity: member.identity.clone(),
            request_id,
            class: self.record.class,
            before: before.min(self.next_chat_seq),
            limit,
        }])
    }

    /// Up to `limit` of the newest messages in memory visible to `identity` (before `before`),
    /// oldest first, and whether visible ones remain before them in memory.
    pub(super) fn chat_visible_to(
        &self,
        identity: &str,
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<ChatMessage>, bool) {
        let before = before.unwrap_or(u64::MAX);
        let mut visible = self
            .chat
            .iter()
            .rev()
            .filter(|m| m.seq < before && m.visible_to(identity));
        let mut page: Vec<ChatMessage> = visible.by_ref().take(limit).cloned().collect();
        let more = visible.next().is_some();
        page.reverse();
        (page, more)
    }
}

fn check_text(text: &str) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Err(Refusal::new(
            ErrorCode::InvalidRequest,
            "a chat message needs text",
        ));
    }
    if text.len() > MAX_CHAT_TEXT_BYTES {
        return Err(Refusal::new(
            ErrorCode::MessageTooLarge,
            format!("chat messages are at most {MAX_CHAT_TEXT_BYTES} bytes"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Refusal::new(
            ErrorCode::InvalidRequest,
            "chat text may not hold control characters",
        ));
    }
    Ok(())
}
