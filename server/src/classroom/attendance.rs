//! Attendance: the events the room records per class, and the summary the server API gives.

use std::collections::HashMap;

use aula_protocol::api::{AttendanceRecord, AttendanceVisit};
use aula_protocol::signal::LeaveReason;
use aula_protocol::Role;
use serde::{Deserialize, Serialize};

/// What happened to a participant, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttendanceKind {
    /// It joined (into the lobby, when `lobby`).
    Joined {
        /// Whether it landed in the lobby.
        lobby: bool,
    },
    /// A teacher let it in from the lobby.
    Admitted,
    /// It went on stage.
    StageOn,
    /// It left the stage.
    StageOff,
    /// It left the room.
    Left {
        /// Why.
        reason: LeaveReason,
    },
}

/// One attendance event of a class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceEvent {
    /// The class it belongs to.
    pub class: u64,
    /// Order within the class.
    pub seq: u64,
    /// When, ms since the Unix epoch.
    pub time: u64,
    /// Who.
    pub identity: String,
    /// Its display name then.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// What happened.
    #[serde(flatten)]
    pub kind: AttendanceKind,
}

#[derive(Default)]
struct Open {
    lobby_since: Option<u64>,
    stage_since: Option<u64>,
    present_since: Option<u64>,
}

/// Sums a class's events (in order) into one record per identity, in order of first join.
/// Visits still open count up to `now_ms`.
pub fn summarize(events: &[AttendanceEvent], now_ms: u64) -> Vec<AttendanceRecord> {
    let mut records: Vec<AttendanceRecord> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut open: HashMap<String, Open> = HashMap::new();
    for event in events {
        let i = *index.entry(event.identity.clone()).or_insert_with(|| {
            records.push(AttendanceRecord {
                identity: event.identity.clone(),
                name: event.name.clone(),
                role: event.role,
                visits: Vec::new(),
                present_ms: 0,
                lobby_ms: 0,
                stage_ms: 0,
                stage_turns: 0,
            });
            records.len() - 1
        });
        let record = &mut records[i];
        record.name = event.name.clone();
        let state = open.entry(event.identity.clone()).or_default();
        let t = event.time;
        match event.kind {
            AttendanceKind::Joined { lobby } => {
                // A join while a visit is open (a reconnect that replaced the old session)
                // closes the old visit first.
                close_visit(record, state, t, None);
                record.visits.push(AttendanceVisit {
                    joined: t,
                    left: None,
                    reason: None,
                });
                state.present_since = Some(t);
                if lobby {
                    state.lobby_since = Some(t);
                }
            }
            AttendanceKind::Admitted => {
                if let Some(since) = state.lobby_since.take() {
                    record.lobby_ms += t.saturating_sub(since);
                }
            }
            AttendanceKind::StageOn => {
                if state.stage_since.is_none() {
                    state.stage_since = Some(t);
                    record.stage_turns += 1;
                }
            }
            AttendanceKind::StageOff => {
                if let Some(since) = state.stage_since.take() {
                    record.stage_ms += t.saturating_sub(since);
                }
            }
            AttendanceKind::Left { reason } => close_visit(record, state, t, Some(reason)),
        }
    }
    // Visits still open count up to now; their `left` stays absent.
    for record in &mut records {
        if let Some(state) = open.get_mut(&record.identity) {
            add_open_time(record, state, now_ms);
        }
    }
    records
}

fn close_visit(
    record: &mut AttendanceRecord,
    state: &mut Open,
    t: u64,
    reason: Option<LeaveReason>,
) {
    if state.present_since.is_none() {
        return;
    }
    add_open_time(record, state, t);
    if let Some(visit) = record.visits.last_mut() {
        visit.left = Some(t);
        visit.reason = reason;
    }
}

/// Adds the time of every open span up to `t` and closes the spans.
fn add_open_time(record: &mut AttendanceRecord, state: &mut Open, t: u64) {
    if let Some(since) = state.present_since.take() {
        record.present_ms += t.saturating_sub(since);
    }
    if let Some(since) = state.lobby_since.take() {
        record.lobby_ms += t.saturating_sub(since);
    }
    if let Some(since) = state.stage_since.take() {
        record.stage_ms += t.saturating_sub(since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, time: u64, identity: &str, kind: AttendanceKind) -> AttendanceEvent {
        AttendanceEvent {
            class: 1,
            seq,
            time,
            identity: identity.into(),
            name: identity.to_uppercase(),
            role: Role::Student,
            kind,
        }
    }

    #[test]
    fn lobby_stage_and_presence_add_up_over_visits() {
        let events = vec![
            event(1, 1_000, "s1", AttendanceKind::Joined { lobby: true }),
            event(2, 4_000, "s1", AttendanceKind::Admitted),
            event(3, 5_000, "s1", AttendanceKind::StageOn),
            event(4, 8_000, "s1", AttendanceKind::StageOff),
            event(
                5,
                10_000,
                "s1",
                AttendanceKind::Left {
                    reason: LeaveReason::ConnectionLost,
                },
            ),
            event(6, 12_000, "s1", AttendanceKind::Joined { lobby: false }),
            event(7, 12_000, "s1", AttendanceKind::StageOn),
        ];
        let records = summarize(&events, 15_000);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.lobby_ms, 3_000);
        assert_eq!(
            r.stage_ms,
            3_000 + 3_000,
            "the open stage span counts to now"
        );
        assert_eq!(r.present_ms, 9_000 + 3_000);
        assert_eq!(r.stage_turns, 2);
        assert_eq!(r.visits.len(), 2);
        assert_eq!(r.visits[0].left, Some(10_000));
        assert_eq!(r.visits[1].left, None);
    }

    #[test]
    fn a_lobby_wait_that_ends_in_leaving_counts_as_lobby_time() {
        let events = vec![
            event(1, 0, "s2", AttendanceKind::Joined { lobby: true }),
            event(
                2,
                2_500,
                "s2",
                AttendanceKind::Left {
                    reason: LeaveReason::Denied,
                },
            ),
        ];
        let r = &summarize(&events, 10_000)[0];
        assert_eq!(r.lobby_ms, 2_500);
        assert_eq!(r.present_ms, 2_500);
        assert_eq!(r.visits[0].reason, Some(LeaveReason::Denied));
    }
}
