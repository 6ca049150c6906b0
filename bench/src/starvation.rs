//! Which receivers starve: a receiver subscribed to a video track whose publisher is sending,
//! that decoded nothing of it for a while.
//!
//! [`LastFrames`] is the receiver's video sink (when it last decoded a frame of each publisher);
//! [`StarvationWatch`] decides, from plain snapshots taken every second, with no clock of its
//! own: each (receiver, publisher) pair in one room, once both have been there for a grace
//! time, starves when the receiver's last frame of that publisher is older than the quiet
//! limit while the publisher is sending.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aula_core::clock::{micros_since_stamp, unix_micros};
use aula_core::media::{FrameStamp, VideoFrame};
use aula_core::VideoSink;
use aula_protocol::{ParticipantId, TrackSid};

/// Most stamp-to-decode latencies a sink keeps between two reads.
const MAX_LATENCIES: usize = 4096;

/// A video sink that keeps, per publisher, when the last frame of it was decoded, and the
/// stamp-to-decode latency of the frames since it was last asked.
#[derive(Default)]
pub struct LastFrames {
    last: Mutex<HashMap<ParticipantId, Instant>>,
    frames: AtomicU64,
    latencies_ms: Mutex<Vec<f64>>,
}

impl LastFrames {
    /// When the last frame from `publisher` was decoded.
    pub fn last_from(&self, publisher: &ParticipantId) -> Option<Instant> {
        self.lock().get(publisher).copied()
    }

    /// Every frame decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// The stamp-to-decode latencies (ms) of the frames decoded since the last call.
    pub fn take_latencies_ms(&self) -> Vec<f64> {
        std::mem::take(&mut *self.latencies_ms.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ParticipantId, Instant>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl VideoSink for LastFrames {
    fn on_video_frame(
        &self,
        participant: &ParticipantId,
        _track: &TrackSid,
        _frame: &VideoFrame,
        stamp: Option<FrameStamp>,
    ) {
        self.lock().insert(participant.clone(), Instant::now());
        self.frames.fetch_add(1, Ordering::Relaxed);
        let latency = stamp.and_then(|s| micros_since_stamp(s.capture_time_us, unix_micros()));
        if let Some(us) = latency {
            let mut latencies = self.latencies_ms.lock().unwrap_or_else(|p| p.into_inner());
            if latencies.len() < MAX_LATENCIES {
                latencies.push(us as f64 / 1000.0);
            }
        }
    }
}

/// A publisher as seen at one check.
#[derive(Clone, Debug)]
pub struct PublisherView {
    /// The bench's number for this session (one join).
    pub session: u64,
    /// Its room.
    pub room: String,
    /// Its participant id in the room now.
    pub participant: ParticipantId,
    /// When it started publishing video.
    pub since: Instant,
    /// Whether its encoder handed frames to the network lately.
    pub sending: bool,
}

/// A receiver as seen at one check.
#[derive(Clone, Debug)]
pub struct ReceiverView {
    /// The bench's number for this session (one join).
    pub session: u64,
    /// Its room.
    pub room: String,
    /// Its participant id in the room now.
    pub participant: ParticipantId,
    /// When it joined.
    pub joined: Instant,
    /// When it last decoded a frame of each publisher.
    pub last_frames: HashMap<ParticipantId, Instant>,
}

/// The limits of the watch.
#[derive(Clone, Copy, Debug)]
pub struct StarvationRules {
    /// Time a pair gets from the later of the receiver's join and the publisher's start
    /// before silence counts (joining, ICE, DTLS, the first keyframe).
    pub grace: Duration,
    /// Silence that counts as starvation.
    pub quiet: Duration,
}

/// The watch's findings so far.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StarvationTally {
    /// Receiver sessions that starved at least once.
    pub starved_receivers: usize,
    /// Times a pair went quiet (each counted once until frames come again).
    pub episodes: u64,
    /// The longest silence seen on a pair past its grace time, seconds.
    pub longest_quiet_s: f64,
}

/// Decides starvation from snapshots; see the module's docs.
#[derive(Debug)]
pub struct StarvationWatch {
    rules: StarvationRules,
    /// Pairs (receiver session, publisher session) in an episode now.
    quiet_pairs: HashSet<(u64, u64)>,
    starved: HashSet<u64>,
    tally: StarvationTally,
}

impl StarvationWatch {
    /// A watch with `rules`.
    pub fn new(rules: StarvationRules) -> Self {
        Self {
            rules,
            quiet_pairs: HashSet::new(),
            starved: HashSet::new(),
            tally: StarvationTally::default(),
        }
    }

    /// Checks every pair at `now`; returns the receiver sessions that starve now.
    pub fn check(
        &mut self,
        now: Instant,
        receivers: &[ReceiverView],
        publishers: &[PublisherView],
    ) -> Vec<u64> {
        let mut quiet_now = HashSet::new();
        let mut starving = Vec::new();
        for receiver in receivers {
            for publisher in publishers {
                if publisher.room != receiver.room
                    || publisher.session == receiver.session
                    || publisher.participant == receiver.participant
                    || !publisher.sending
                {
                    continue;
                }
                let start = receiver.joined.max(publisher.since);
                if now.saturating_duration_since(start) < self.rules.grace {
                    continue;
                }
                let last = receiver
                    .last_frames
                    .get(&publisher.participant)
                    .copied()
                    .map_or(start, |at| at.max(start));
                let quiet = now.saturating_duration_since(last);
                if quiet <= self.rules.quiet {
                    continue;
                }
                let pair = (receiver.session, publisher.session);
                if !self.quiet_pairs.contains(&pair) {
                    self.tally.episodes += 1;
                }
                quiet_now.insert(pair);
                self.tally.longest_quiet_s = self.tally.longest_quiet_s.max(quiet.as_secs_f64());
                if self.starved.insert(receiver.session) {
                    self.tally.starved_receivers += 1;
                }
                if !starving.contains(&receiver.session) {
                    starving.push(receiver.session);
                }
            }
        }
        self.quiet_pairs = quiet_now;
        starving
    }

    /// What it found so far.
    pub fn tally(&self) -> &StarvationTally {
        &self.tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: StarvationRules = StarvationRules {
        grace: Duration::from_secs(10),
        quiet: Duration::from_secs(5),
    };

    fn id(n: u64) -> ParticipantId {
        ParticipantId::from_counter(n)
    }

    fn publisher(session: u64, since: Instant, sending: bool) -> PublisherView {
        PublisherView {
            session,
            room: "a".into(),
            participant: id(session),
            since,
            sending,
        }
    }

    fn receiver(session: u64, joined: Instant, frames: &[(u64, Instant)]) -> ReceiverView {
        ReceiverView {
            session,
            room: "a".into(),
            participant: id(session),
            joined,
            last_frames: frames.iter().map(|(p, at)| (id(*p), *at)).collect(),
        }
    }

    #[test]
    fn frames_flowing_is_not_starving() {
        let t0 = Instant::now();
        let mut watch = StarvationWatch::new(RULES);
        for s in 0..60 {
            let now = t0 + Duration::from_secs(s);
            let r = receiver(2, t0, &[(1, now - Duration::from_millis(70))]);
            assert!(watch.check(now, &[r], &[publisher(1, t0, true)]).is_empty());
        }
        assert_eq!(watch.tally().starved_receivers, 0);
    }

    #[test]
    fn silence_past_the_limit_starves_once_per_episode() {
        let t0 = Instant::now();
        let mut watch = StarvationWatch::new(RULES);
        let p = publisher(1, t0, true);
        let last = t0 + Duration::from_secs(20);
        // Quiet for 5 s exactly: not yet.
        let r = receiver(2, t0, &[(1, last)]);
        assert!(watch
            .check(
                last + Duration::from_secs(5),
                std::slice::from_ref(&r),
                std::slice::from_ref(&p)
            )
            .is_empty());
        // Then starving, counted once over three checks.
        for s in 6..9 {
            let starving = watch.check(
                last + Duration::from_secs(s),
                std::slice::from_ref(&r),
                std::slice::from_ref(&p),
            );
            assert_eq!(starving, vec![2]);
        }
        assert_eq!(watch.tally().episodes, 1);
        assert_eq!(watch.tally().starved_receivers, 1);
        assert!((watch.tally().longest_quiet_s - 8.0).abs() < 1e-9);
        // Frames again, then a second episode: two episodes, still one receiver.
        let resumed = last + Duration::from_secs(9);
        let r = receiver(2, t0, &[(1, resumed)]);
        assert!(watch
            .check(resumed, std::slice::from_ref(&r), std::slice::from_ref(&p))
            .is_empty());
        assert_eq!(
            watch.check(resumed + Duration::from_secs(6), &[r], &[p]),
            vec![2]
        );
        assert_eq!(watch.tally().episodes, 2);
        assert_eq!(watch.tally().starved_receivers, 1);
    }

    #[test]
    fn nothing_counts_within_the_grace_time_or_when_the_publisher_is_not_sending() {
        let t0 = Instant::now();
        let mut watch = StarvationWatch::new(RULES);
        // Joined 9 s ago, no frame yet: still in grace.
        let r = receiver(2, t0, &[]);
        let now = t0 + Duration::from_secs(9);
        assert!(watch
            .check(now, std::slice::from_ref(&r), &[publisher(1, t0, true)])
            .is_empty());
        // The publisher started 3 s ago: grace counts from the later start.
        let now = t0 + Duration::from_secs(30);
        let late = publisher(1, now - Duration::from_secs(3), true);
        assert!(watch
            .check(now, std::slice::from_ref(&r), &[late])
            .is_empty());
        // A publisher whose encoder stopped is not owed anything.
        assert!(watch
            .check(now, std::slice::from_ref(&r), &[publisher(1, t0, false)])
            .is_empty());
        // Another room's publisher neither.
        let mut elsewhere = publisher(1, t0, true);
        elsewhere.room = "b".into();
        assert!(watch
            .check(now, std::slice::from_ref(&r), &[elsewhere])
            .is_empty());
        // Past the grace time with no frame at all: starving.
        assert_eq!(watch.check(now, &[r], &[publisher(1, t0, true)]), vec![2]);
        // A publisher never starves on its own track.
        let own = publisher(2, t0, true);
        assert!(watch.check(now, &[receiver(2, t0, &[])], &[own]).is_empty());
    }

    #[test]
    fn the_sink_remembers_the_last_frame_per_publisher() {
        let sink = LastFrames::default();
        let frame = VideoFrame::new_black(16, 16);
        let before = Instant::now();
        sink.on_video_frame(&id(1), &TrackSid::from_counter(9), &frame, None);
        sink.on_video_frame(&id(1), &TrackSid::from_counter(9), &frame, None);
        assert!(sink.last_from(&id(1)).unwrap() >= before);
        assert!(sink.last_from(&id(2)).is_none());
        assert_eq!(sink.frames(), 2);
        // Unstamped frames carry no latency; a frame stamped 40 ms ago does.
        assert!(sink.take_latencies_ms().is_empty());
        let stamp = FrameStamp {
            sequence: 1,
            capture_time_us: unix_micros() - 40_000,
        };
        sink.on_video_frame(&id(1), &TrackSid::from_counter(9), &frame, Some(stamp));
        let latencies = sink.take_latencies_ms();
        assert_eq!(latencies.len(), 1);
        assert!((40.0..1000.0).contains(&latencies[0]), "{latencies:?}");
        assert!(sink.take_latencies_ms().is_empty());
    }
}
