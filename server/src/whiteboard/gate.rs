//! Per-connection rate limits on incoming whiteboard frames, one bucket per kind of frame:
//! edits and presence here; sync requests in the board, which defers the ones over their rate
//! instead of dropping them (a client that reloads must get its answer). Frames no client
//! should send (acks, errors, undecodable bytes) are refused outright, each answered up to
//! [`INVALID_REPORTS_PER_SECOND`]. Other refusals, edits excepted, are reported at most once a
//! second, so a flood earns no flood of replies.

use std::time::{Duration, Instant};

use aula_protocol::whiteboard::{Frame, WhiteboardLimits};

use crate::limits::{burst_for, MessageRate};

/// Shortest time between two reports of refused frames of one kind (edits excepted: each
/// refused edit is reported, since the client reloads on it).
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Invalid frames answered each with an error, on average per second (bursts of twice that);
/// beyond, one a second is.
pub const INVALID_REPORTS_PER_SECOND: u32 = 5;

/// The kinds of incoming frames, each with its own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Sync step 2 or update: changes the board.
    Edit,
    /// Awareness.
    Presence,
    /// Sync step 1: asks for the board (limited by the board, see
    /// [`WhiteboardLimits::max_syncs_per_second`]).
    Sync,
    /// Ack or error (server-to-client frames) or undecodable bytes.
    Invalid,
}

impl FrameKind {
    /// The kind of `frame`.
    pub fn of(frame: &Frame) -> Self {
        match frame {
            Frame::SyncStep2(_) | Frame::Update(_) => FrameKind::Edit,
            Frame::Awareness(_) => FrameKind::Presence,
            Frame::SyncStep1(_) => FrameKind::Sync,
            Frame::Ack { .. } | Frame::Error { .. } => FrameKind::Invalid,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The gate's decision on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limits: hand it to the board.
    Pass,
    /// Over a limit (or invalid): drop it; `report` says whether to tell the client.
    Refuse {
        /// Whether this refusal is to be answered with an error frame.
        report: bool,
    },
}

/// The incoming-frame limits of one connection.
#[derive(Debug)]
pub struct FrameGate {
    edits: MessageRate,
    presence: MessageRate,
    invalid_reports: MessageRate,
    last_report: [Option<Instant>; 4],
}

impl FrameGate {
    /// Full buckets at `now`, sized by `limits`.
    pub fn new(limits: &WhiteboardLimits, now: Instant) -> Self {
        let bucket = |per_second: u32| {
            let per_second = per_second.max(1);
            MessageRate::new(per_second, burst_for(per_second), now)
        };
        Self {
            edits: bucket(limits.max_updates_per_second),
            presence: bucket(limits.max_presence_per_second),
            invalid_reports: bucket(INVALID_REPORTS_PER_SECOND),
            last_report: [None; 4],
        }
    }

    /// Judges a frame of `kind` arriving at `now`.
    pub fn check(&mut self, kind: FrameKind, now: Instant) -> Verdict {
        let allowed = match kind {
            FrameKind::Edit => self.edits.allow(now),
            FrameKind::Presence => self.presence.allow(now),
            FrameKind::Sync => true,
            FrameKind::Invalid => false,
        };
        if allowed {
            return Verdict::Pass;
        }
        let report = match kind {
            FrameKind::Edit => true,
            FrameKind::Invalid => self.invalid_reports.allow(now) || self.may_report(kind, now),
            _ => self.may_report(kind, now),
        };
        Verdict::Refuse { report }
    }

    /// Whether a refusal of `kind` at `now` may be reported (at most one per [`REPORT_EVERY`]).
    pub fn may_report(&mut self, kind: FrameKind, now: Instant) -> bool {
        let last = &mut self.last_report[kind.index()];
        if last.is_some_and(|at| now.saturating_duration_since(at) < REPORT_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::StateVector;

    fn limits() -> WhiteboardLimits {
        WhiteboardLimits {
            max_updates_per_second: 10,
            max_presence_per_second: 5,
            ..WhiteboardLimits::default()
        }
    }

    fn passed(gate: &mut FrameGate, kind: FrameKind, n: usize, now: Instant) -> usize {
        (0..n)
            .filter(|_| gate.check(kind, now) == Verdict::Pass)
            .count()
    }

    #[test]
    fn each_kind_has_its_own_bucket() {
        let now = Instant::now();
        let mut gate = FrameGate::new(&limits(), now);
        assert_eq!(passed(&mut gate, FrameKind::Presence, 1000, now), 10);
        // A presence flood leaves edits alone.
        assert_eq!(passed(&mut gate, FrameKind::Edit, 1000, now), 20);
        let later = now + Duration::from_secs(1);
        assert_eq!(passed(&mut gate, FrameKind::Presence, 1000, later), 5);
        // Sync requests are the board's to limit (it defers them; see board.rs).
        assert_eq!(passed(&mut gate, FrameKind::Sync, 1000, later), 1000);
    }

    #[test]
    fn refusals_are_reported_once_a_second_except_edits() {
        let now = Instant::now();
        let mut gate = FrameGate::new(&limits(), now);
        passed(&mut gate, FrameKind::Presence, 10, now);
        passed(&mut gate, FrameKind::Edit, 20, now);
        let reports = |gate: &mut FrameGate, kind, at| {
            (0..100)
                .filter(|_| gate.check(kind, at) == Verdict::Refuse { report: true })
                .count()
        };
        assert_eq!(reports(&mut gate, FrameKind::Presence, now), 1);
        // A few invalid frames are each answered, a flood of them once a second.
        assert_eq!(
            reports(&mut gate, FrameKind::Invalid, now),
            2 * INVALID_REPORTS_PER_SECOND as usize + 1
        );
        assert_eq!(reports(&mut gate, FrameKind::Edit, now), 100);
        let later = now + REPORT_EVERY;
        gate.presence = MessageRate::new(1, 1, later);
        gate.presence.allow(later);
        assert_eq!(reports(&mut gate, FrameKind::Presence, later), 1);
    }

    #[test]
    fn frames_are_sorted_into_kinds() {
        assert_eq!(
            FrameKind::of(&Frame::SyncStep1(StateVector::default())),
            FrameKind::Sync
        );
        assert_eq!(FrameKind::of(&Frame::Update(vec![])), FrameKind::Edit);
        assert_eq!(FrameKind::of(&Frame::SyncStep2(vec![])), FrameKind::Edit);
        assert_eq!(
            FrameKind::of(&Frame::Awareness(vec![])),
            FrameKind::Presence
        );
        assert_eq!(FrameKind::of(&Frame::Ack { seq: 1 }), FrameKind::Invalid);
    }
}
