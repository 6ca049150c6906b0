//! What `aula join` saw of the classroom: where it was and when (lobby, audience, stage), and
//! the chat it sent and received. Plain state fed with the time of each observation, so its
//! figures are tested without a server; `aula join` writes it into the stats file.

use std::time::{Duration, Instant};

use aula_protocol::{ChatMessage, Placement};
use serde_json::{json, Value};

/// One change of placement.
#[derive(Clone, Debug, PartialEq)]
pub struct StageChange {
    /// Time since joining, ms.
    pub at_ms: f64,
    /// Where the participant went.
    pub placement: Placement,
}

/// The classroom as one participant lived it.
#[derive(Clone, Debug)]
pub struct ClassroomLog {
    joined_at: Instant,
    joined_in: Placement,
    placement: Placement,
    /// Since when it waits in the lobby, while it does.
    lobby_since: Option<Instant>,
    /// Time spent in the lobby before the current wait.
    lobby: Duration,
    changes: Vec<StageChange>,
    chat_sent: u64,
    chat_received: Vec<(Option<String>, String)>,
}

impl ClassroomLog {
    /// A participant that joined at `joined_at` into `placement`.
    pub fn new(placement: Placement, joined_at: Instant) -> Self {
        Self {
            joined_at,
            joined_in: placement,
            placement,
            lobby_since: (placement == Placement::Lobby).then_some(joined_at),
            lobby: Duration::ZERO,
            changes: Vec::new(),
            chat_sent: 0,
            chat_received: Vec::new(),
        }
    }

    /// It is at `placement` at `now`; records a change when it moved. Returns whether it did.
    pub fn placed(&mut self, placement: Placement, now: Instant) -> bool {
        if placement == self.placement {
            return false;
        }
        if let Some(since) = self.lobby_since.take() {
            self.lobby += now.saturating_duration_since(since);
        }
        if placement == Placement::Lobby {
            self.lobby_since = Some(now);
        }
        self.placement = placement;
        self.changes.push(StageChange {
            at_ms: ms(now.saturating_duration_since(self.joined_at)),
            placement,
        });
        true
    }

    /// It sent a chat message.
    pub fn sent_chat(&mut self) {
        self.chat_sent += 1;
    }

    /// A chat message arrived.
    pub fn received_chat(&mut self, message: &ChatMessage) {
        self.chat_received
            .push((message.from.clone(), message.text.clone()));
    }

    /// Time in the lobby up to `now`, ms.
    pub fn lobby_ms(&self, now: Instant) -> f64 {
        let waiting = self
            .lobby_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        ms(self.lobby + waiting)
    }

    /// The stats file's `classroom` object at `now`.
    pub fn document(&self, now: Instant) -> Value {
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|c| json!({ "at_ms": c.at_ms, "placement": c.placement.to_string() }))
            .collect();
        let received: Vec<Value> = self
            .chat_received
            .iter()
            .map(|(from, text)| json!({ "from": from, "text": text }))
            .collect();
        json!({
            "state": self.placement.to_string(),
            "joined_in": self.joined_in.to_string(),
            "lobby_ms": self.lobby_ms(now),
            "stage_changes": changes,
            "chat_sent": self.chat_sent,
            "chat_received": received,
        })
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use aula_protocol::classroom::ChatKind;

    #[test]
    fn lobby_time_ends_at_admission_and_changes_are_timed_from_joining() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut log = ClassroomLog::new(Placement::Lobby, t0);
        assert_eq!(log.lobby_ms(at(300)), 300.0, "still waiting");
        assert!(log.placed(Placement::Audience, at(1_200)));
        assert!(!log.placed(Placement::Audience, at(1_300)), "no change");
        assert!(log.placed(Placement::Stage, at(2_000)));
        assert!(log.placed(Placement::Audience, at(5_000)));
        let doc = log.document(at(9_000));
        assert_eq!(doc["lobby_ms"], 1_200.0);
        assert_eq!(doc["state"], "audience");
        assert_eq!(doc["joined_in"], "lobby");
        let changes = doc["stage_changes"].as_array().unwrap();
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[1], json!({"at_ms": 2000.0, "placement": "stage"}));
    }

    #[test]
    fn a_participant_that_never_waited_has_no_lobby_time() {
        let t0 = Instant::now();
        let mut log = ClassroomLog::new(Placement::Stage, t0);
        log.sent_chat();
        log.received_chat(&ChatMessage {
            seq: 1,
            time: 0,
            from: None,
            from_name: String::new(),
            to: None,
            kind: ChatKind::System,
            text: "welcome".into(),
            deleted: false,
        });
        let doc = log.document(t0 + Duration::from_secs(3));
        assert_eq!(doc["lobby_ms"], 0.0);
        assert_eq!(doc["chat_sent"], 1);
        assert_eq!(
            doc["chat_received"],
            json!([{"from": null, "text": "welcome"}])
        );
        assert!(doc["stage_changes"].as_array().unwrap().is_empty());
    }
}
