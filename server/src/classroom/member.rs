//! One participant as the room's rules see it: who it is, where it is, what it publishes.

use std::collections::BTreeMap;

use aula_protocol::{
    Grants, ParticipantId, ParticipantInfo, PermissionsPatch, Placement, Role, TrackInfo, TrackSid,
    TrackSource,
};

/// A participant that asks to join.
#[derive(Clone, Debug)]
pub struct Joiner {
    /// Its new session id.
    pub id: ParticipantId,
    /// Identity from the token.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Role from the token.
    pub role: Role,
    /// Grants from the token.
    pub grants: Grants,
    /// Whether it wants every track automatically.
    pub auto_subscribe: bool,
    /// Classroom settings from the token, if it carries any.
    pub classroom: Option<aula_protocol::RoomSettings>,
}

/// A track a member announced or publishes.
#[derive(Clone, Debug)]
pub(crate) struct MemberTrack {
    /// The track as others see it (with its muted flag).
    pub info: TrackInfo,
    /// Whether its media arrived (only live tracks are announced to others).
    pub live: bool,
    /// Whether a teacher muted it: nothing of it is forwarded until it is unmuted.
    pub moderator_muted: bool,
}

/// A participant in the room.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub id: ParticipantId,
    pub identity: String,
    pub name: String,
    pub role: Role,
    pub grants: Grants,
    pub auto_subscribe: bool,
    pub placement: Placement,
    pub co_teacher: bool,
    pub tracks: BTreeMap<TrackSid, MemberTrack>,
    /// Token buckets for hands and chat (spam from one member must not slow the others).
    pub hand_rate: crate::limits::MessageRate,
    pub chat_rate: crate::limits::MessageRate,
}

impl Member {
    /// Whether it runs the class: a teacher's token (room admin) or made co-teacher.
    pub fn is_moderator(&self) -> bool {
        self.grants.room_admin || self.co_teacher
    }

    /// Whether it is a student in the classroom's sense: not a moderator.
    pub fn is_student(&self) -> bool {
        !self.is_moderator()
    }

    /// Whether it has been let in (not waiting in the lobby).
    pub fn is_admitted(&self) -> bool {
        self.placement != Placement::Lobby
    }

    /// The sources it could publish on stage, before the room narrows them.
    pub fn stage_sources(&self, overrides: Option<&PermissionsPatch>) -> Vec<TrackSource> {
        if let Some(publish) = overrides.and_then(|o| o.publish.clone()) {
            return publish;
        }
        let mut sources = self.grants.publish.clone();
        if self.co_teacher {
            for source in Role::Teacher.default_grants().publish {
                if !sources.contains(&source) {
                    sources.push(source);
                }
            }
        }
        sources
    }

    /// How others see it now.
    pub fn info(&self, hand_raised: bool) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.clone(),
            identity: self.identity.clone(),
            name: self.name.clone(),
            role: self.role,
            tracks: self
                .tracks
                .values()
                .filter(|t| t.live)
                .map(|t| t.info.clone())
                .collect(),
            placement: self.placement,
            hand_raised,
            co_teacher: self.co_teacher,
        }
    }
}
