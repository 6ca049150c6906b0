//! The room's rules, driven with virtual time: every rule, refusals that change nothing, and
//! the races between teachers, students and reconnects.

use std::time::{Duration, Instant};

use aula_protocol::classroom::{ChatPolicy, CHAT_PAGE};
use aula_protocol::signal::LeaveReason;
use aula_protocol::webhook::WebhookEventKind;
use aula_protocol::{
    ClientMessage, ErrorCode, MediaKind, ParticipantId, Placement, Role, RoomMode, RoomSettings,
    RoomSettingsPatch, ServerMessage, TrackInfo, TrackSid, TrackSource,
};

use super::*;

/// A room under test and its virtual clock.
struct Class {
    room: RoomState,
    now: Now,
    next_id: u64,
    next_sid: u64,
}

impl Class {
    fn new(settings: RoomSettings) -> Self {
        let mut snapshot = RoomSnapshot::fresh("r1", 1_000_000);
        snapshot.record.settings = settings;
        snapshot.record.configured = true;
        Self {
            room: RoomState::new(snapshot, 256),
            now: Now {
                mono: Instant::now(),
                unix_ms: 1_000_000,
            },
            next_id: 0,
            next_sid: 0,
        }
    }

    fn call() -> Self {
        Self::new(RoomSettings::default())
    }

    fn with_stage(lobby: bool, capacity: u32) -> Self {
        Self::new(RoomSettings {
            mode: RoomMode::Class,
            lobby,
            stage_capacity: capacity,
            ..RoomSettings::default()
        })
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    fn joiner(&mut self, identity: &str, role: Role) -> Joiner {
        self.next_id += 1;
        Joiner {
            id: ParticipantId::from_counter(self.next_id),
            identity: identity.into(),
            name: identity.to_uppercase(),
            role,
            grants: role.default_grants(),
            auto_subscribe: true,
            classroom: None,
        }
    }

    fn join(&mut self, identity: &str, role: Role) -> (ParticipantId, Vec<Action>) {
        let joiner = self.joiner(identity, role);
        let id = joiner.id.clone();
        let actions = self
            .room
            .join(joiner, self.now)
            .unwrap_or_else(|r| panic!("{identity} refused: {r}"));
        (id, actions)
    }

    fn try_join(&mut self, identity: &str, role: Role) -> Result<Vec<Action>, Refusal> {
        let joiner = self.joiner(identity, role);
        self.room.join(joiner, self.now)
    }

    fn request(&mut self, from: &ParticipantId, message: ClientMessage) -> Vec<Action> {
        self.room
            .request(from, message, self.now)
            .expect("a classroom request")
    }

    /// Announces a track of `source` and lets its media arrive.
    fn publish(&mut self, id: &ParticipantId, source: TrackSource) -> (TrackSid, Vec<Action>) {
        self.next_sid += 1;
        let sid = TrackSid::from_counter(1000 + self.next_sid);
        self.room
            .announce_track(id, track(&sid, source))
            .expect("announce");
        let actions = self.room.track_started(id, &sid, self.now);
        (sid, actions)
    }

    fn placement(&self, id: &ParticipantId) -> Placement {
        self.room.participant(id).expect("present").placement
    }

    /// Stores every chat message the actions ask for and returns what storing led to.
    fn store_chat(&mut self, actions: &[Action]) -> Vec<Action> {
        let mut out = Vec::new();
        for action in actions {
            if let Action::StoreChat { message, .. } = action {
                out.extend(self.room.chat_stored(message.seq));
            }
        }
        out
    }
}

fn track(sid: &TrackSid, source: TrackSource) -> TrackInfo {
    TrackInfo {
        sid: sid.clone(),
        kind: source.kind(),
        source,
        name: String::new(),
        width: None,
        height: None,
        layers: Vec::new(),
        muted: false,
    }
}

/// Messages the actions send to `to`.
fn sent<'a>(actions: &'a [Action], to: &ParticipantId) -> Vec<&'a ServerMessage> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to: t, message } if t == to => Some(message),
            _ => None,
        })
        .collect()
}

fn error_code(actions: &[Action], to: &ParticipantId) -> Option<ErrorCode> {
    sent(actions, to).into_iter().find_map(|m| match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    })
}

fn ok_to(actions: &[Action], to: &ParticipantId) -> bool {
    sent(actions, to)
        .iter()
        .any(|m| matches!(m, ServerMessage::Ok { .. }))
}

/// Only the refusal: nothing else happened.
fn refused_only(actions: &[Action], to: &ParticipantId, code: ErrorCode) {
    assert_eq!(error_code(actions, to), Some(code), "{actions:#?}");
    assert_eq!(actions.len(), 1, "a refusal changes nothing: {actions:#?}");
}

fn permissions_in(actions: &[Action], to: &ParticipantId) -> Option<aula_protocol::Permissions> {
    sent(actions, to).into_iter().rev().find_map(|m| match m {
        ServerMessage::PermissionsChanged { permissions } => Some(permissions.clone()),
        ServerMessage::Joined { permissions, .. } => permissions.clone(),
        ServerMessage::Admitted { permissions, .. } => Some(permissions.clone()),
        _ => None,
    })
}

fn subscribes(actions: &[Action], subscriber: &ParticipantId) -> Vec<TrackSid> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Subscribe {
                subscriber: s,
                track,
            } if s == subscriber => Some(track.clone()),
            _ => None,
        })
        .collect()
}

fn ended_tracks(actions: &[Action]) -> Vec<TrackSid> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::EndTrack { track, .. } => Some(track.clone()),
            _ => None,
        })
        .collect()
}

fn disconnected(actions: &[Action], who: &ParticipantId) -> Option<(LeaveReason, Option<String>)> {
    actions.iter().find_map(|a| match a {
        Action::Disconnect {
            who: w,
            reason,
            message,
        } if w == who => Some((*reason, message.clone())),
        _ => None,
    })
}

fn invite(id: &ParticipantId) -> ClientMessage {
    ClientMessage::InviteToStage {
        id: 9,
        participant_id: id.clone(),
    }
}

fn answer(accept: bool) -> ClientMessage {
    ClientMessage::AnswerStageInvitation { id: 8, accept }
}

fn chat(text: &str) -> ClientMessage {
    ClientMessage::SendChat {
        id: 5,
        text: text.into(),
        to: None,
        announcement: false,
    }
}

// ----- a plain call -----

#[test]
fn a_plain_call_puts_everyone_on_stage_and_forwards_every_track() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, joined) = c.join("s1", Role::Student);
    let ServerMessage::Joined {
        participant,
        participants,
        permissions,
        ..
    } = sent(&joined, &s)[0]
    else {
        panic!("joined comes first: {joined:#?}");
    };
    assert_eq!(participant.placement, Placement::Stage);
    assert_eq!(participants.len(), 1);
    let permissions = permissions.clone().unwrap();
    assert!(permissions.can_publish(TrackSource::Camera) && !permissions.moderate);
    assert!(sent(&joined, &t)
        .iter()
        .any(|m| matches!(m, ServerMessage::ParticipantJoined { .. })));
    let (sid, actions) = c.publish(&s, TrackSource::Camera);
    assert!(sent(&actions, &t)
        .iter()
        .any(|m| matches!(m, ServerMessage::TrackAdded { track, .. } if track.sid == sid)));
    assert_eq!(subscribes(&actions, &t), vec![sid]);
    assert!(
        sent(&actions, &s).is_empty(),
        "the publisher is not told its own track"
    );
}

#[test]
fn an_observer_watches_from_the_audience_and_may_not_publish() {
    let mut c = Class::call();
    let (o, joined) = c.join("o1", Role::Observer);
    assert_eq!(c.placement(&o), Placement::Audience);
    assert!(permissions_in(&joined, &o).unwrap().publish.is_empty());
    let refusal = c
        .room
        .announce_track(&o, track(&TrackSid::from_counter(1), TrackSource::Camera))
        .unwrap_err();
    assert_eq!(refusal.code, ErrorCode::PermissionDenied);
}

// ----- the lobby -----

#[test]
fn students_wait_in_the_lobby_seeing_nothing_until_admitted() {
    let mut c = Class::with_stage(true, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s2, _) = c.join("s2", Role::Student);
    c.request(
        &t,
        ClientMessage::Admit {
            id: 1,
            participant_id: s2.clone(),
        },
    );
    let (cam, _) = c.publish(&t, TrackSource::Camera);
    let hello = c.request(&t, chat("welcome"));
    c.store_chat(&hello);

    let (s, joined) = c.join("s1", Role::Student);
    let ServerMessage::Joined {
        participant,
        participants,
        classroom,
        chat: history,
        permissions,
        ..
    } = sent(&joined, &s)[0]
    else {
        panic!("joined first");
    };
    assert_eq!(participant.placement, Placement::Lobby);
    assert!(participants.is_empty(), "the lobby sees nobody");
    assert!(history.is_empty(), "nor the chat");
    assert!(classroom.teacher_present);
    assert!(classroom.hands.is_empty());
    assert_eq!(permissions.clone().unwrap(), Default::default());
    assert!(subscribes(&joined, &s).is_empty(), "nor any media");
    // Only teachers learn someone waits.
    assert!(sent(&joined, &t).iter().any(|m| matches!(
        m,
        ServerMessage::ParticipantJoined { participant } if participant.placement == Placement::Lobby
    )));
    assert!(sent(&joined, &s2).is_empty());
    // A waiting student can do nothing.
    for request in [
        chat("hi"),
        ClientMessage::RaiseHand { id: 3 },
        ClientMessage::UpdateSubscription {
            id: 4,
            track_sids: vec![cam.clone()],
            subscribe: true,
        },
    ] {
        let actions = c.request(&s, request);
        assert!(error_code(&actions, &s).is_some(), "{actions:#?}");
        assert_eq!(actions.len(), 1);
    }
    assert!(!actions_have_board(&joined, &s));

    let admitted = c.request(
        &t,
        ClientMessage::Admit {
            id: 2,
            participant_id: s.clone(),
        },
    );
    assert!(ok_to(&admitted, &t));
    let first = sent(&admitted, &s)[0];
    let ServerMessage::Admitted {
        participant,
        participants,
        chat,
        ..
    } = first
    else {
        panic!("admitted first: {admitted:#?}");
    };
    assert_eq!(participant.placement, Placement::Audience);
    assert_eq!(participants.len(), 2);
    assert_eq!(chat.len(), 1, "the class's chat so far");
    assert_eq!(subscribes(&admitted, &s), vec![cam]);
    assert!(actions_have_board(&admitted, &s));
    assert!(sent(&admitted, &s2).iter().any(|m| matches!(
        m,
        ServerMessage::ParticipantJoined { participant } if participant.id == s
    )));
    assert!(sent(&admitted, &t).iter().any(|m| matches!(
        m,
        ServerMessage::ParticipantUpdated { participant } if participant.id == s
    )));
    assert!(admitted.iter().any(|a| matches!(
        a,
        Action::Webhook(WebhookEventKind::ParticipantAdmitted { .. })
    )));
}

fn actions_have_board(actions: &[Action], who: &ParticipantId) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Board { who: w, access } if w == who && access.attached))
}

#[test]
fn teachers_skip_the_lobby_and_a_denied_student_is_told_why() {
    let mut c = Class::with_stage(true, 6);
    let (s, _) = c.join("s1", Role::Student);
    let (t, joined) = c.join("t1", Role::Teacher);
    assert_eq!(c.placement(&t), Placement::Stage);
    let ServerMessage::Joined { participants, .. } = sent(&joined, &t)[0] else {
        panic!()
    };
    assert_eq!(participants.len(), 1, "the teacher sees who waits");
    let denied = c.request(
        &t,
        ClientMessage::Deny {
            id: 1,
            participant_id: s.clone(),
            reason: "wrong class".into(),
        },
    );
    assert_eq!(
        disconnected(&denied, &s),
        Some((LeaveReason::Denied, Some("wrong class".into())))
    );
    assert!(sent(&denied, &t).iter().any(|m| matches!(
        m,
        ServerMessage::ParticipantLeft {
            reason: LeaveReason::Denied,
            ..
        }
    )));
    assert!(c.room.participant(&s).is_none());
}

#[test]
fn a_lobby_without_a_teacher_keeps_its_students_waiting_and_says_so() {
    let mut c = Class::with_stage(true, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, joined) = c.join("s1", Role::Student);
    assert!(matches!(
        sent(&joined, &s)[0],
        ServerMessage::Joined { classroom, .. } if classroom.teacher_present
    ));
    // The teacher leaves while the student waits.
    let left = c.room.leave(&t, LeaveReason::ClientRequest, c.now);
    assert!(sent(&left, &s).iter().any(|m| matches!(
        m,
        ServerMessage::ClassroomUpdated { classroom } if !classroom.teacher_present
    )));
    assert_eq!(c.placement(&s), Placement::Lobby, "still waiting");
    // Nobody can let it in meanwhile.
    let (s2, _) = c.join("s2", Role::Student);
    let actions = c.request(
        &s2,
        ClientMessage::Admit {
            id: 1,
            participant_id: s.clone(),
        },
    );
    assert!(error_code(&actions, &s2).is_some());
    assert_eq!(c.placement(&s), Placement::Lobby);
    // A teacher comes back, sees both waiting, and admits them.
    let (t2, joined) = c.join("t2", Role::Teacher);
    assert!(sent(&joined, &s).iter().any(|m| matches!(
        m,
        ServerMessage::ClassroomUpdated { classroom } if classroom.teacher_present
    )));
    let ServerMessage::Joined { participants, .. } = sent(&joined, &t2)[0] else {
        panic!()
    };
    assert_eq!(participants.len(), 2);
    let all = c.request(&t2, ClientMessage::AdmitAll { id: 3 });
    assert!(ok_to(&all, &t2));
    assert_eq!(c.placement(&s), Placement::Audience);
    assert_eq!(c.placement(&s2), Placement::Audience);
}

#[test]
fn two_teachers_admitting_the_same_student_admit_it_once() {
    let mut c = Class::with_stage(true, 6);
    let (t1, _) = c.join("t1", Role::Teacher);
    let (t2, _) = c.join("t2", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let first = c.request(
        &t1,
        ClientMessage::Admit {
            id: 1,
            participant_id: s.clone(),
        },
    );
    assert!(ok_to(&first, &t1));
    let second = c.request(
        &t2,
        ClientMessage::Admit {
            id: 1,
            participant_id: s.clone(),
        },
    );
    refused_only(&second, &t2, ErrorCode::InvalidState);
    // One denies while the other already admitted: refused, the student stays.
    let deny = c.request(
        &t2,
        ClientMessage::Deny {
            id: 2,
            participant_id: s.clone(),
            reason: String::new(),
        },
    );
    refused_only(&deny, &t2, ErrorCode::InvalidState);
    assert_eq!(c.placement(&s), Placement::Audience);
}

#[test]
fn students_cannot_run_the_class() {
    let mut c = Class::with_stage(true, 6);
    let (_t, _) = c.join("t1", Role::Teacher);
    let (waiting, _) = c.join("s0", Role::Student);
    let (s, _) = c.join("s1", Role::Student);
    c.request(
        &_t,
        ClientMessage::Admit {
            id: 1,
            participant_id: s.clone(),
        },
    );
    let before = c.room.participants();
    for request in [
        ClientMessage::Admit {
            id: 1,
            participant_id: waiting.clone(),
        },
        ClientMessage::AdmitAll { id: 2 },
        invite(&s),
        ClientMessage::MuteParticipant {
            id: 3,
            participant_id: _t.clone(),
            kind: MediaKind::Audio,
        },
        ClientMessage::LockRoom {
            id: 4,
            locked: true,
        },
        ClientMessage::EndClass { id: 5 },
        ClientMessage::ClearStage { id: 6 },
        ClientMessage::UpdateRoomSettings {
            id: 7,
            settings: RoomSettingsPatch {
                lobby: Some(false),
                ..Default::default()
            },
        },
    ] {
        let actions = c.request(&s, request);
        refused_only(&actions, &s, ErrorCode::PermissionDenied);
    }
    assert_eq!(c.room.participants(), before, "the room is as it was");
}

// ----- the stage -----

#[test]
fn invitations_respect_the_stage_capacity() {
    let mut c = Class::with_stage(false, 2);
    let (t, _) = c.join("t1", Role::Teacher);
    let students: Vec<ParticipantId> = (1..=3)
        .map(|i| c.join(&format!("s{i}"), Role::Student).0)
        .collect();
    for s in &students {
        assert_eq!(c.placement(s), Placement::Audience);
    }
    for s in &students[..2] {
        let invited = c.request(&t, invite(s));
        assert!(sent(&invited, s)
            .iter()
            .any(|m| matches!(m, ServerMessage::StageInvitation { from } if *from == t)));
        let accepted = c.request(s, answer(true));
        assert!(ok_to(&accepted, s));
        assert!(sent(&accepted, &t).iter().any(|m| matches!(
            m,
            ServerMessage::StageInvitationAnswered { accepted: true, .. }
        )));
        let permissions = permissions_in(&accepted, s).expect("told it may publish");
        assert!(permissions.can_publish(TrackSource::Camera));
    }
    let full = c.request(&t, invite(&students[2]));
    refused_only(&full, &t, ErrorCode::StageFull);
    assert_eq!(c.room.classroom(c.now.mono).stage_count, 2);
}

#[test]
fn an_invitation_accepted_after_the_stage_filled_is_refused_and_stands() {
    let mut c = Class::with_stage(false, 1);
    let (t1, _) = c.join("t1", Role::Teacher);
    let (t2, _) = c.join("t2", Role::Teacher);
    let (a, _) = c.join("a", Role::Student);
    let (b, _) = c.join("b", Role::Student);
    c.request(&t1, invite(&a));
    c.request(&t2, invite(&b));
    assert!(ok_to(&c.request(&b, answer(true)), &b));
    let late = c.request(&a, answer(true));
    refused_only(&late, &a, ErrorCode::StageFull);
    assert_eq!(c.placement(&a), Placement::Audience);
    // b leaves the stage; a's invitation still stands.
    c.request(
        &b,
        ClientMessage::MoveToAudience {
            id: 1,
            participant_id: b.clone(),
        },
    );
    assert!(ok_to(&c.request(&a, answer(true)), &a));
    assert_eq!(c.placement(&a), Placement::Stage);
}

#[test]
fn a_declined_invitation_tells_the_teachers_and_a_stray_answer_is_refused() {
    let mut c = Class::with_stage(false, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let stray = c.request(&s, answer(true));
    refused_only(&stray, &s, ErrorCode::InvalidState);
    c.request(&t, invite(&s));
    let declined = c.request(&s, answer(false));
    assert!(sent(&declined, &t).iter().any(|m| matches!(
        m,
        ServerMessage::StageInvitationAnswered {
            accepted: false,
            ..
        }
    )));
    assert_eq!(c.placement(&s), Placement::Audience);
}

#[test]
fn leaving_the_stage_ends_the_students_media_at_once() {
    let mut c = Class::with_stage(false, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let (other, _) = c.join("s2", Role::Student);
    c.request(&t, invite(&s));
    c.request(&s, answer(true));
    let (cam, _) = c.publish(&s, TrackSource::Camera);
    let (mic, _) = c.publish(&s, TrackSource::Microphone);
    let moved = c.request(
        &t,
        ClientMessage::MoveToAudience {
            id: 1,
            participant_id: s.clone(),
        },
    );
    assert!(ok_to(&moved, &t));
    let ended = ended_tracks(&moved);
    assert!(ended.contains(&cam) && ended.contains(&mic), "{moved:#?}");
    // The student is told its tracks ended and it may publish nothing.
    assert_eq!(
        sent(&moved, &s)
            .iter()
            .filter(|m| matches!(m, ServerMessage::TrackRemoved { participant_id, .. } if *participant_id == s))
            .count(),
        2
    );
    assert!(permissions_in(&moved, &s).unwrap().publish.is_empty());
    // Everyone else stops receiving them.
    assert!(moved.iter().any(|a| matches!(
        a,
        Action::Unsubscribe { subscriber, track } if *subscriber == other && *track == cam
    )));
    // Media that still comes for a new announcement is refused.
    let refusal = c
        .room
        .announce_track(&s, track(&TrackSid::from_counter(77), TrackSource::Camera))
        .unwrap_err();
    assert_eq!(refusal.code, ErrorCode::PermissionDenied);
}

#[test]
fn media_that_arrives_after_the_student_left_the_stage_is_never_forwarded() {
    let mut c = Class::with_stage(false, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    c.request(&t, invite(&s));
    c.request(&s, answer(true));
    let sid = TrackSid::from_counter(900);
    c.room
        .announce_track(&s, track(&sid, TrackSource::Camera))
        .unwrap();
    c.request(&t, ClientMessage::ClearStage { id: 1 });
    let started = c.room.track_started(&s, &sid, c.now);
    assert!(ended_tracks(&started).contains(&sid));
    assert!(subscribes(&started, &t).is_empty());
    assert!(!sent(&started, &t)
        .iter()
        .any(|m| matches!(m, ServerMessage::TrackAdded { .. })));
}

#[test]
fn hands_queue_in_order_and_a_raised_hand_accepted_goes_on_stage() {
    let mut c = Class::with_stage(false, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (a, _) = c.join("a", Role::Student);
    let (b, _) = c.join("b", Role::Student);
    c.request(&b, ClientMessage::RaiseHand { id: 1 });
    c.advance(Duration::from_millis(10));
    let raised = c.request(&a, ClientMessage::RaiseHand { id: 1 });
    assert!(sent(&raised, &t).iter().any(|m| matches!(
        m,
        ServerMessage::ClassroomUpdated { classroom } if classroom.hands == vec![b.clone(), a.clone()]
    )));
    // Accepting a raised hand needs no invitation.
    let accepted = c.request(&t, invite(&b));
    assert!(ok_to(&accepted, &t));
    assert_eq!(c.placement(&b), Placement::Stage);
    assert_eq!(c.room.classroom(c.now.mono).hands, vec![a.clone()]);
    // Dismissing lowers it.
    c.request(
        &t,
        ClientMessage::LowerHand {
            id: 2,
            participant_id: Some(a.clone()),
        },
    );
    assert!(c.room.classroom(c.now.mono).hands.is_empty());
    let again = c.request(
        &t,
        ClientMessage::LowerHand {
            id: 2,
            participant_id: Some(a.clone()),
        },
    );
    refused_only(&again, &t, ErrorCode::InvalidState);
}

#[test]
fn auto_stage_puts_a_raised_hand_on_stage_while_there_is_room() {
    let mut c = Class::new(RoomSettings {
        mode: RoomMode::Class,
        stage_capacity: 1,
        auto_stage: true,
        ..RoomSettings::default()
    });
    c.join("t1", Role::Teacher);
    let (a, _) = c.join("a", Role::Student);
    let (b, _) = c.join("b", Role::Student);
    c.request(&a, ClientMessage::RaiseHand { id: 1 });
    assert_eq!(c.placement(&a), Placement::Stage);
    c.request(&b, ClientMessage::RaiseHand { id: 1 });
    assert_eq!(
        c.placement(&b),
        Placement::Audience,
        "no room: the hand waits"
    );
    assert_eq!(c.room.classroom(c.now.mono).hands, vec![b]);
}

#[test]
fn a_flood_of_hands_from_one_student_is_refused_without_disturbing_the_class() {
    let mut c = Class::with_stage(false, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let mut refused = 0;
    let mut broadcast = 0;
    for i in 0..200 {
        let request = if i % 2 == 0 {
            ClientMessage::RaiseHand { id: i }
        } else {
            ClientMessage::LowerHand {
                id: i,
                participant_id: None,
            }
        };
        let actions = c.request(&s, request);
        if error_code(&actions, &s) == Some(ErrorCode::RateLimited) {
            refused += 1;
            assert_eq!(actions.len(), 1);
        }
        broadcast += sent(&actions, &t).len();
    }
    assert!(refused >= 190, "{refused} refused");
    assert!(broadcast <= 20, "the teacher got {broadcast} messages");
    // A second later the student may raise its hand again.
    c.advance(Duration::from_secs(2));
    let actions = c.request(&s, ClientMessage::RaiseHand { id: 1 });
    assert!(ok_to(&actions, &s));
}

// ----- moderation -----

#[test]
fn a_teacher_mutes_a_student_who_may_not_unmute_when_the_room_says_so() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let (mic, _) = c.publish(&s, TrackSource::Microphone);
    let muted = c.request(
        &t,
        ClientMessage::MuteAll {
            id: 1,
            kind: MediaKind::Audio,
            allow_unmute: Some(false),
        },
    );
    assert!(muted.iter().any(|a| matches!(
        a,
        Action::SetForwarding { track, forwarded: false } if *track == mic
    )));
    assert!(sent(&muted, &s).iter().any(|m| matches!(
        m,
        ServerMessage::TrackMuted {
            by_moderator: true,
            muted: true,
            ..
        }
    )));
    assert!(!permissions_in(&muted, &s).unwrap().unmute);
    let unmute = c.request(
        &s,
        ClientMessage::SetTrackMuted {
            id: 2,
            sid: mic.clone(),
            muted: false,
        },
    );
    refused_only(&unmute, &s, ErrorCode::PermissionDenied);
    // The teacher lets this student unmute.
    c.request(
        &t,
        ClientMessage::UpdatePermissions {
            id: 3,
            participant_id: s.clone(),
            permissions: aula_protocol::PermissionsPatch {
                unmute: Some(true),
                ..Default::default()
            },
        },
    );
    let unmute = c.request(
        &s,
        ClientMessage::SetTrackMuted {
            id: 4,
            sid: mic.clone(),
            muted: false,
        },
    );
    assert!(ok_to(&unmute, &s));
    assert!(unmute.iter().any(|a| matches!(
        a,
        Action::SetForwarding { track, forwarded: true } if *track == mic
    )));
}

#[test]
fn a_mute_applies_to_a_microphone_published_later() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    c.request(
        &t,
        ClientMessage::MuteParticipant {
            id: 1,
            participant_id: s.clone(),
            kind: MediaKind::Audio,
        },
    );
    let (mic, started) = c.publish(&s, TrackSource::Microphone);
    assert!(started.iter().any(|a| matches!(
        a,
        Action::SetForwarding { track, forwarded: false } if *track == mic
    )));
    assert!(sent(&started, &t).iter().any(|m| matches!(
        m,
        ServerMessage::TrackAdded { track, .. } if track.muted
    )));
}

#[test]
fn removed_students_cannot_rejoin_this_class_but_can_the_next() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let removed = c.request(
        &t,
        ClientMessage::RemoveParticipant {
            id: 1,
            participant_id: s.clone(),
            reason: "disruptive".into(),
        },
    );
    assert_eq!(
        disconnected(&removed, &s),
        Some((LeaveReason::Removed, Some("disruptive".into())))
    );
    assert!(removed
        .iter()
        .any(|a| matches!(a, Action::StoreRoom(r) if r.banned.contains("s1"))));
    assert_eq!(
        c.try_join("s1", Role::Student).unwrap_err().code,
        ErrorCode::Removed
    );
    let ended = c.request(&t, ClientMessage::EndClass { id: 2 });
    assert_eq!(
        disconnected(&ended, &t).map(|d| d.0),
        Some(LeaveReason::ClassEnded)
    );
    // The teacher hears its request succeeded before its session ends.
    let ok_at = ended.iter().position(
        |a| matches!(a, Action::Send { to, message: ServerMessage::Ok { .. } } if *to == t),
    );
    let gone_at = ended
        .iter()
        .position(|a| matches!(a, Action::Disconnect { who, .. } if *who == t));
    assert!(ok_at.unwrap() < gone_at.unwrap(), "{ended:#?}");
    assert!(c.room.has_ended());
    assert_eq!(c.room.record().class, 2);
    assert!(c.room.record().banned.is_empty());
    // The next class starts from the stored record.
    let mut next = Class::call();
    next.room = RoomState::new(
        RoomSnapshot {
            record: c.room.record().clone(),
            chat_tail: Vec::new(),
            next_attendance_seq: 1,
        },
        256,
    );
    assert!(next.try_join("s1", Role::Student).is_ok());
}

#[test]
fn teachers_cannot_be_removed_by_participants() {
    let mut c = Class::call();
    let (t1, _) = c.join("t1", Role::Teacher);
    let (t2, _) = c.join("t2", Role::Teacher);
    let actions = c.request(
        &t2,
        ClientMessage::RemoveParticipant {
            id: 1,
            participant_id: t1.clone(),
            reason: String::new(),
        },
    );
    refused_only(&actions, &t2, ErrorCode::PermissionDenied);
}

#[test]
fn a_locked_room_refuses_new_joins_but_not_teachers_or_returning_students() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let locked = c.request(
        &t,
        ClientMessage::LockRoom {
            id: 1,
            locked: true,
        },
    );
    assert!(sent(&locked, &s).iter().any(|m| matches!(
        m,
        ServerMessage::ClassroomUpdated { classroom } if classroom.locked
    )));
    assert_eq!(
        c.try_join("s2", Role::Student).unwrap_err().code,
        ErrorCode::RoomLocked
    );
    assert!(c.try_join("t2", Role::Teacher).is_ok());
    c.room.leave(&s, LeaveReason::ConnectionLost, c.now);
    assert!(
        c.try_join("s1", Role::Student).is_ok(),
        "s1 was in this class"
    );
}

#[test]
fn a_co_teacher_runs_the_class_until_the_teacher_takes_it_back() {
    let mut c = Class::with_stage(true, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    c.request(
        &t,
        ClientMessage::Admit {
            id: 1,
            participant_id: s.clone(),
        },
    );
    let (waiting, _) = c.join("s2", Role::Student);
    let promoted = c.request(
        &t,
        ClientMessage::SetCoTeacher {
            id: 2,
            participant_id: s.clone(),
            co_teacher: true,
        },
    );
    let permissions = permissions_in(&promoted, &s).unwrap();
    assert!(permissions.moderate && permissions.whiteboard_write);
    assert!(permissions.can_publish(TrackSource::ScreenShare));
    assert_eq!(c.placement(&s), Placement::Stage);
    assert!(sent(&promoted, &s).iter().any(|m| matches!(
        m,
        ServerMessage::ParticipantJoined { participant } if participant.id == waiting
    )));
    assert!(ok_to(
        &c.request(
            &s,
            ClientMessage::Admit {
                id: 3,
                participant_id: waiting.clone()
            }
        ),
        &s
    ));
    let (share, _) = c.publish(&s, TrackSource::ScreenShare);
    let demoted = c.request(
        &t,
        ClientMessage::SetCoTeacher {
            id: 4,
            participant_id: s.clone(),
            co_teacher: false,
        },
    );
    assert!(!permissions_in(&demoted, &s).unwrap().moderate);
    assert_eq!(c.placement(&s), Placement::Audience);
    assert!(ended_tracks(&demoted).contains(&share));
}

#[test]
fn the_spotlight_names_a_participant_for_everyone() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let lit = c.request(
        &t,
        ClientMessage::Spotlight {
            id: 1,
            participant_id: Some(s.clone()),
        },
    );
    for who in [&t, &s] {
        assert!(sent(&lit, who).iter().any(|m| matches!(
            m,
            ServerMessage::ClassroomUpdated { classroom } if classroom.spotlight.as_ref() == Some(&s)
        )));
    }
    let unknown = c.request(
        &t,
        ClientMessage::Spotlight {
            id: 2,
            participant_id: Some(ParticipantId::from_counter(999)),
        },
    );
    refused_only(&unknown, &t, ErrorCode::UnknownParticipant);
}

#[test]
fn stopping_a_screen_share_ends_only_that_track() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (t2, _) = c.join("t2", Role::Teacher);
    let (share, _) = c.publish(&t2, TrackSource::ScreenShare);
    let (cam, _) = c.publish(&t2, TrackSource::Camera);
    let stopped = c.request(
        &t,
        ClientMessage::StopScreenShare {
            id: 1,
            participant_id: t2.clone(),
        },
    );
    assert_eq!(ended_tracks(&stopped), vec![share]);
    assert!(c
        .room
        .participant(&t2)
        .unwrap()
        .tracks
        .iter()
        .any(|tr| tr.sid == cam));
    let again = c.request(
        &t,
        ClientMessage::StopScreenShare {
            id: 2,
            participant_id: t2,
        },
    );
    refused_only(&again, &t, ErrorCode::InvalidState);
}

// ----- settings -----

#[test]
fn switching_a_call_to_a_class_moves_students_to_the_audience() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let (cam, _) = c.publish(&s, TrackSource::Camera);
    let switched = c.request(
        &t,
        ClientMessage::UpdateRoomSettings {
            id: 1,
            settings: RoomSettingsPatch {
                mode: Some(RoomMode::Class),
                ..Default::default()
            },
        },
    );
    assert_eq!(c.placement(&s), Placement::Audience);
    assert_eq!(c.placement(&t), Placement::Stage);
    assert!(ended_tracks(&switched).contains(&cam));
    assert!(switched
        .iter()
        .any(|a| matches!(a, Action::StoreRoom(r) if r.settings.mode == RoomMode::Class)));
    let bad = c.request(
        &t,
        ClientMessage::UpdateRoomSettings {
            id: 2,
            settings: RoomSettingsPatch {
                stage_capacity: Some(0),
                ..Default::default()
            },
        },
    );
    refused_only(&bad, &t, ErrorCode::InvalidRequest);
}

#[test]
fn turning_the_lobby_off_lets_everyone_waiting_in() {
    let mut c = Class::with_stage(true, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    c.request(
        &t,
        ClientMessage::UpdateRoomSettings {
            id: 1,
            settings: RoomSettingsPatch {
                lobby: Some(false),
                ..Default::default()
            },
        },
    );
    assert_eq!(c.placement(&s), Placement::Audience);
}

#[test]
fn a_tokens_classroom_settings_configure_a_room_nobody_configured() {
    let mut room = RoomState::new(RoomSnapshot::fresh("r1", 0), 256);
    let now = Now::system();
    let settings = RoomSettings {
        mode: RoomMode::Class,
        lobby: true,
        ..RoomSettings::default()
    };
    let joiner = |id: u64, identity: &str, role: Role, classroom| Joiner {
        id: ParticipantId::from_counter(id),
        identity: identity.into(),
        name: identity.into(),
        role,
        grants: role.default_grants(),
        auto_subscribe: true,
        classroom,
    };
    room.join(joiner(1, "s1", Role::Student, Some(settings.clone())), now)
        .unwrap();
    assert_eq!(room.settings(), &settings);
    assert_eq!(
        room.participant(&ParticipantId::from_counter(1))
            .unwrap()
            .placement,
        Placement::Lobby
    );
    // A later token cannot change a configured room.
    room.join(
        joiner(2, "t1", Role::Teacher, Some(RoomSettings::default())),
        now,
    )
    .unwrap();
    assert_eq!(room.settings(), &settings);
}

// ----- reconnects -----

#[test]
fn a_student_reconnecting_while_invited_gets_the_invitation_again() {
    let mut c = Class::with_stage(true, 6);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    c.request(
        &t,
        ClientMessage::Admit {
            id: 1,
            participant_id: s.clone(),
        },
    );
    c.request(&t, invite(&s));
    // Its connection drops before it answers, and it comes back.
    c.room.leave(&s, LeaveReason::ConnectionLost, c.now);
    c.advance(Duration::from_secs(3));
    let (s_again, joined) = c.join("s1", Role::Student);
    assert_eq!(c.placement(&s_again), Placement::Audience, "no lobby again");
    assert!(sent(&joined, &s_again)
        .iter()
        .any(|m| matches!(m, ServerMessage::StageInvitation { .. })));
    // The old session's late answer is not the new one's.
    let stale = c.room.request(&s, answer(true), c.now).unwrap();
    assert_eq!(error_code(&stale, &s), Some(ErrorCode::UnknownParticipant));
    assert!(ok_to(&c.request(&s_again, answer(true)), &s_again));
    assert_eq!(c.placement(&s_again), Placement::Stage);
}

#[test]
fn a_second_session_of_a_student_on_stage_takes_its_place() {
    let mut c = Class::with_stage(false, 1);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    c.request(&t, invite(&s));
    c.request(&s, answer(true));
    let (cam, _) = c.publish(&s, TrackSource::Camera);
    // The same identity joins again (a reconnect the server has not noticed yet).
    let (s_new, joined) = c.join("s1", Role::Student);
    assert_eq!(
        disconnected(&joined, &s).map(|d| d.0),
        Some(LeaveReason::DuplicateIdentity)
    );
    assert!(ended_tracks(&joined).contains(&cam));
    assert_eq!(c.placement(&s_new), Placement::Stage, "it keeps its place");
    assert_eq!(c.room.classroom(c.now.mono).stage_count, 1);
    assert!(matches!(
        sent(&joined, &s_new)[0],
        ServerMessage::Joined { .. }
    ));
}

#[test]
fn a_dropped_students_stage_place_waits_for_it_a_while() {
    let mut c = Class::with_stage(false, 1);
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let (other, _) = c.join("s2", Role::Student);
    c.request(&t, invite(&s));
    c.request(&s, answer(true));
    c.room.leave(&s, LeaveReason::ConnectionLost, c.now);
    // Its place is held: nobody else can take it meanwhile.
    let full = c.request(&t, invite(&other));
    refused_only(&full, &t, ErrorCode::StageFull);
    c.advance(Duration::from_secs(5));
    let (back, _) = c.join("s1", Role::Student);
    assert_eq!(c.placement(&back), Placement::Stage);
    // Once the hold has passed, a returning student is in the audience.
    c.room.leave(&back, LeaveReason::ConnectionLost, c.now);
    c.advance(STAGE_HOLD + Duration::from_secs(1));
    let (later, _) = c.join("s1", Role::Student);
    assert_eq!(c.placement(&later), Placement::Audience);
    // A student who left on purpose keeps no place.
    c.request(&t, invite(&later));
    c.request(&later, answer(true));
    c.room.leave(&later, LeaveReason::ClientRequest, c.now);
    assert!(ok_to(&c.request(&t, invite(&other)), &t));
}

// ----- chat -----

#[test]
fn chat_is_delivered_only_once_stored_with_sequence_and_time() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let asked = c.request(&s, chat("hello"));
    assert!(
        sent(&asked, &t).is_empty(),
        "nothing goes out before it is stored"
    );
    let Action::StoreChat { message, class } = &asked[0] else {
        panic!("{asked:#?}")
    };
    assert_eq!((*class, message.seq, message.time), (1, 1, c.now.unix_ms));
    let delivered = c.store_chat(&asked);
    assert!(sent(&delivered, &s).iter().any(
        |m| matches!(m, ServerMessage::ChatSent { request_id: 5, message } if message.seq == 1)
    ));
    assert!(sent(&delivered, &t).iter().any(|m| matches!(
        m,
        ServerMessage::Chat { message } if message.text == "hello" && message.from.as_deref() == Some("s1")
    )));
    // A failed store: the sender hears it, nobody else.
    let asked = c.request(&s, chat("lost"));
    let Action::StoreChat { message, .. } = &asked[0] else {
        panic!()
    };
    let failed = c.room.chat_store_failed(message.seq);
    assert_eq!(error_code(&failed, &s), Some(ErrorCode::Internal));
    assert!(sent(&failed, &t).is_empty());
}

#[test]
fn private_messages_between_students_follow_the_room_setting_and_teachers_do_not_see_them() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (a, _) = c.join("a", Role::Student);
    let (b, _) = c.join("b", Role::Student);
    let private = |to: &ParticipantId| ClientMessage::SendChat {
        id: 6,
        text: "psst".into(),
        to: Some(to.clone()),
        announcement: false,
    };
    let refused = c.request(&a, private(&b));
    refused_only(&refused, &a, ErrorCode::PermissionDenied);
    // To a teacher is always allowed.
    let to_teacher = c.request(&a, private(&t));
    let delivered = c.store_chat(&to_teacher);
    assert!(!sent(&delivered, &t).is_empty());
    assert!(sent(&delivered, &b).is_empty());
    c.request(
        &t,
        ClientMessage::UpdateRoomSettings {
            id: 1,
            settings: RoomSettingsPatch {
                student_private_chat: Some(true),
                ..Default::default()
            },
        },
    );
    let asked = c.request(&a, private(&b));
    let delivered = c.store_chat(&asked);
    assert!(!sent(&delivered, &b).is_empty());
    assert!(
        sent(&delivered, &t).is_empty(),
        "the teacher sees nothing private between students"
    );
    // Nor in a late joiner's history.
    let (t2, joined) = c.join("t2", Role::Teacher);
    let ServerMessage::Joined { chat, .. } = sent(&joined, &t2)[0] else {
        panic!()
    };
    assert!(chat.is_empty(), "{chat:?}");
}

#[test]
fn chat_policy_size_rate_and_announcements_are_enforced() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (s, _) = c.join("s1", Role::Student);
    let big = "x".repeat(aula_protocol::classroom::MAX_CHAT_TEXT_BYTES + 1);
    refused_only(&c.request(&s, chat(&big)), &s, ErrorCode::MessageTooLarge);
    refused_only(&c.request(&s, chat("   ")), &s, ErrorCode::InvalidRequest);
    let announcement = ClientMessage::SendChat {
        id: 1,
        text: "hear ye".into(),
        to: None,
        announcement: true,
    };
    refused_only(
        &c.request(&s, announcement.clone()),
        &s,
        ErrorCode::PermissionDenied,
    );
    assert!(matches!(
        &c.request(&t, announcement)[0],
        Action::StoreChat { .. }
    ));
    // Flooding: the bucket runs dry, then refills.
    let mut limited = 0;
    for _ in 0..50 {
        let actions = c.request(&s, chat("spam"));
        c.store_chat(&actions);
        if error_code(&actions, &s) == Some(ErrorCode::RateLimited) {
            limited += 1;
        }
    }
    assert!(limited >= 35, "{limited}");
    c.advance(Duration::from_secs(3));
    assert!(matches!(
        &c.request(&s, chat("later"))[0],
        Action::StoreChat { .. }
    ));
    // Teachers only.
    c.request(
        &t,
        ClientMessage::UpdateRoomSettings {
            id: 2,
            settings: RoomSettingsPatch {
                chat: Some(ChatPolicy::Teachers),
                ..Default::default()
            },
        },
    );
    refused_only(&c.request(&s, chat("hi")), &s, ErrorCode::ChatDisabled);
    assert!(matches!(
        &c.request(&t, chat("hi"))[0],
        Action::StoreChat { .. }
    ));
}

#[test]
fn messages_are_deleted_by_their_sender_or_a_teacher() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    let (a, _) = c.join("a", Role::Student);
    let (b, _) = c.join("b", Role::Student);
    let sent_a = c.request(&a, chat("mine"));
    c.store_chat(&sent_a);
    let delete = |seq| ClientMessage::DeleteChat { id: 3, seq };
    refused_only(&c.request(&b, delete(1)), &b, ErrorCode::PermissionDenied);
    let deleted = c.request(&a, delete(1));
    let done = c.store_chat(&deleted);
    assert!(ok_to(&done, &a));
    assert!(sent(&done, &t)
        .iter()
        .any(|m| matches!(m, ServerMessage::ChatDeleted { seq: 1 })));
    refused_only(&c.request(&t, delete(1)), &t, ErrorCode::InvalidState);
    let sent_b = c.request(&b, chat("theirs"));
    c.store_chat(&sent_b);
    let deleted = c.request(&t, delete(2));
    assert!(ok_to(&c.store_chat(&deleted), &t));
}

#[test]
fn a_late_joiner_gets_the_newest_messages_and_pages_older_ones_from_the_store() {
    let mut c = Class::call();
    let (t, _) = c.join("t1", Role::Teacher);
    for i in 0..(CHAT_WINDOW + 50) {
        c.advance(Duration::from_secs(1));
        let asked = c.request(&t, chat(&format!("m{i}")));
        c.store_chat(&asked);
    }
    let (s, joined) = c.join("s1", Role::Student);
    let ServerMessage::Joined { chat, .. } = sent(&joined, &s)[0] else {
        panic!()
    };
    assert_eq!(chat.len(), CHAT_PAGE);
    assert_eq!(chat.last().unwrap().text, format!("m{}", CHAT_WINDOW + 49));
    assert!(chat.windows(2).all(|w| w[0].seq < w[1].seq));
    // Older pages: from memory while it has them, then from the store.
    let page = c.request(
        &s,
        ClientMessage::ChatHistory {
            id: 7,
            before: Some(chat[0].seq),
            limit: None,
        },
    );
    assert!(matches!(
        sent(&page, &s)[0],
        ServerMessage::ChatHistory { messages, more: true, .. } if messages.len() == CHAT_PAGE
    ));
    let deep = c.request(
        &s,
        ClientMessage::ChatHistory {
            id: 8,
            before: Some(10),
            limit: Some(5),
        },
    );
    assert!(matches!(
        &deep[0],
        Action::LoadChatPage {
            before: 10,
            limit: 5,
            ..
        }
    ));
}

// ----- attendance -----

#[test]
fn attendance_records_lobby_waits_and_stage_turns() {
    let mut c = Class::with_stage(true, 6);
    let mut events = Vec::new();
    let keep = |actions: &[Action], events: &mut Vec<AttendanceEvent>| {
        for a in actions {
            if let Action::StoreAttendance(e) = a {
                events.push(e.clone());
            }
        }
    };
    let (t, a) = c.join("t1", Role::Teacher);
    keep(&a, &mut events);
    let (s, a) = c.join("s1", Role::Student);
    keep(&a, &mut events);
    c.advance(Duration::from_secs(4));
    let a = c.request(
        &t,
        ClientMessage::Admit {
            id: 1,
            participant_id: s.clone(),
        },
    );
    keep(&a, &mut events);
    let a = c.request(&t, invite(&s));
    keep(&a, &mut events);
    let a = c.request(&s, answer(true));
    keep(&a, &mut events);
    c.advance(Duration::from_secs(10));
    let a = c.room.leave(&s, LeaveReason::ClientRequest, c.now);
    keep(&a, &mut events);
    let records = summarize(&events, c.now.unix_ms);
    let s1 = records.iter().find(|r| r.identity == "s1").unwrap();
    assert_eq!(s1.lobby_ms, 4_000);
    assert_eq!(s1.stage_ms, 10_000);
    assert_eq!(s1.present_ms, 14_000);
    assert_eq!(s1.stage_turns, 1);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
}
