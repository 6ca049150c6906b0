//! Reassembles H.264 access units from RTP packets that may arrive late, twice or out of order.
//!
//! Plain logic over packets and arrival times (no IO), so loss and reordering are unit-tested.
//!
//! A frame behind a hole waits for the hole to be filled (by a retransmission, FEC or a late
//! packet). How long is learned from the path ([`AdaptiveWait`]): a little longer than nearly
//! all recent repairs took, and never less than a keyframe takes to come after it is asked for
//! — giving up on a hole means asking for one, so giving up sooner only trades a wait for a
//! longer one. On a lossy path with a long round trip the wait grows (up to
//! [`MAX_LOSS_WAIT`]); on a clean one it shrinks (down to [`MIN_LOSS_WAIT`]) and a truly lost
//! packet is given up on quickly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How long a hole in the sequence may wait for a retransmission before the frames behind it
/// are given up on, until filled holes have shown what the path needs.
pub const DEFAULT_LOSS_WAIT: Duration = Duration::from_millis(200);
/// The shortest wait the assembler adapts down to.
pub const MIN_LOSS_WAIT: Duration = Duration::from_millis(80);
/// The longest wait the assembler adapts up to.
pub const MAX_LOSS_WAIT: Duration = Duration::from_millis(900);
/// Filled holes remembered for the wait.
const FILL_SAMPLES: usize = 512;
/// Share of recent filled holes the wait covers.
const FILL_QUANTILE: f64 = 0.995;
/// Added to that quantile: scheduling noise.
const WAIT_MARGIN: Duration = Duration::from_millis(20);
/// Most packets buffered; beyond this the oldest incomplete data is dropped.
const MAX_BUFFERED: usize = 4096;
/// A frame this far (in 90 kHz ticks: 500 ms) behind the newest one seen is stale: a live call
/// skips it rather than showing the past (retransmissions after a network cut can complete
/// frames from seconds ago). While the loss wait is longer, a frame may be as old as twice the
/// wait and 200 ms (a repair on the publisher's uplink, then one on the subscriber's downlink).
pub const MAX_FRAME_AGE_TICKS: u32 = 45_000;

/// One RTP packet as the assembler needs it.
#[derive(Clone, Debug)]
pub struct MediaPacket {
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit: last packet of a frame.
    pub marker: bool,
    /// Payload (codec-specific).
    pub payload: Bytes,
}

/// A complete frame's packets in order.
#[derive(Debug)]
pub struct AssembledFrame {
    /// RTP timestamp of the frame.
    pub timestamp: u32,
    /// Payloads, in sequence order.
    pub payloads: Vec<Bytes>,
    /// True when frames before this one were given up on: the decoder needs a keyframe.
    pub after_loss: bool,
}

struct Buffered {
    packet: MediaPacket,
    arrived: Instant,
}

/// The wait for a hole, from how long recent holes took to fill.
#[derive(Debug, Clone)]
pub struct AdaptiveWait {
    fills: std::collections::VecDeque<Duration>,
    fixed: Option<Duration>,
    /// From the repairs alone.
    repairs: Duration,
    /// How long a requested keyframe takes to arrive (smoothed), once measured.
    keyframe: Option<Duration>,
    current: Duration,
}

impl AdaptiveWait {
    /// A wait that adapts, starting from [`DEFAULT_LOSS_WAIT`].
    pub fn adaptive() -> Self {
        Self {
            fills: std::collections::VecDeque::new(),
            fixed: None,
            repairs: DEFAULT_LOSS_WAIT,
            keyframe: None,
            current: DEFAULT_LOSS_WAIT,
        }
    }

    /// A wait that stays at `wait`.
    pub fn fixed(wait: Duration) -> Self {
        Self {
            fills: std::collections::VecDeque::new(),
            fixed: Some(wait),
            repairs: wait,
            keyframe: None,
            current: wait,
        }
    }

    /// The current wait.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// A hole was filled `took` after it opened.
    fn on_fill(&mut self, took: Duration) {
        if self.fixed.is_some() {
            return;
        }
        self.fills.push_back(took);
        if self.fills.len() > FILL_SAMPLES {
            self.fills.pop_front();
        }
        let mut sorted: Vec<Duration> = self.fills.iter().copied().collect();
        sorted.sort();
        let index = ((sorted.len() as f64 * FILL_QUANTILE).ceil() as usize).clamp(1, sorted.len());
        let quantile = sorted[index - 1];
        // Few samples say little about the tail: never below the default until there are many.
        let floor = if sorted.len() < 32 {
            DEFAULT_LOSS_WAIT
        } else {
            MIN_LOSS_WAIT
        };
        self.repairs = (quantile + WAIT_MARGIN).clamp(floor, MAX_LOSS_WAIT);
        self.update();
    }

    /// A keyframe asked for arrived `took` after the request.
    fn on_keyframe(&mut self, took: Duration) {
        if self.fixed.is_some() {
            return;
        }
        let took = took.min(MAX_LOSS_WAIT);
        self.keyframe = Some(match self.keyframe {
            None => took,
            Some(smoothed) => smoothed.mul_f64(0.7) + took.mul_f64(0.3),
        });
        self.update();
    }

    fn update(&mut self) {
        self.current = self
            .repairs
            .max(self.keyframe.unwrap_or(Duration::ZERO))
            .min(MAX_LOSS_WAIT);
    }
}

/// Buffers packets and releases complete frames in order.
pub struct FrameAssembler {
    buffer: BTreeMap<u64, Buffered>,
    /// Extended sequence number of the next packet to release.
    next: Option<u64>,
    highest: Option<u64>,
    loss_wait: AdaptiveWait,
    lost_since_last_frame: bool,
    newest_timestamp: Option<u32>,
    counts: AssemblerCounts,
    /// Holes given up on, with when they opened: a packet that fills one later still tells how
    /// long this path's repairs take (without it the wait would only learn from the repairs
    /// quick enough to be waited for, and shrink until most were not).
    skipped: BTreeMap<u64, Instant>,
}

/// How a frame in the buffer ends: the sequence number of its last packet.
enum FrameEnd {
    /// With its marker packet.
    Whole(u64),
    /// Without one: the next packet in sequence belongs to another frame.
    Cut(u64),
}

/// Skipped holes remembered for late repairs.
const MAX_SKIPPED: usize = 512;

/// What an assembler had to give up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssemblerCounts {
    /// Times it gave up waiting for missing packets and skipped to the next frame.
    pub holes_skipped: u64,
    /// Frames completed too late to show.
    pub stale_frames: u64,
}

impl Default for FrameAssembler {
    fn default() -> Self {
        Self::new(AdaptiveWait::adaptive())
    }
}

impl FrameAssembler {
    /// An assembler that waits `loss_wait` for missing packets.
    pub fn new(loss_wait: AdaptiveWait) -> Self {
        Self {
            buffer: BTreeMap::new(),
            next: None,
            highest: None,
            loss_wait,
            lost_since_last_frame: false,
            newest_timestamp: None,
            counts: AssemblerCounts::default(),
            skipped: BTreeMap::new(),
        }
    }

    /// Adds a packet received at `now`; returns the frames it completes.
    pub fn push(&mut self, packet: MediaPacket, now: Instant) -> Vec<AssembledFrame> {
        let ext = self.extend(packet.sequence);
        let newer = self
            .newest_timestamp
            .is_none_or(|newest| timestamp_after(packet.timestamp, newest));
        if newer {
            self.newest_timestamp = Some(packet.timestamp);
        }
        if self.next.is_none() {
            self.next = Some(ext);
        }
        if self.next.is_some_and(|next| ext < next) {
            if let Some(opened) = self.skipped.remove(&ext) {
                self.loss_wait
                    .on_fill(now.saturating_duration_since(opened));
            }
            return self.drain(now); // duplicate or too late
        }
        if self.highest.is_some_and(|highest| ext < highest) && !self.buffer.contains_key(&ext) {
            // A hole filled: it opened when the first packet after it arrived.
            if let Some((_, after)) = self.buffer.range(ext + 1..).next() {
                self.loss_wait
                    .on_fill(now.saturating_duration_since(after.arrived));
            }
        }
        self.buffer.entry(ext).or_insert(Buffered {
            packet,
            arrived: now,
        });
        while self.buffer.len() > MAX_BUFFERED {
            self.buffer.pop_first();
            self.lost_since_last_frame = true;
            self.next = self.buffer.keys().next().copied();
        }
        self.drain(now)
    }

    /// A keyframe that was asked for arrived `took` after the request: the wait for a hole is
    /// never shorter than that.
    pub fn on_requested_keyframe(&mut self, took: Duration) {
        self.loss_wait.on_keyframe(took);
    }

    /// What the assembler gave up so far.
    pub fn counts(&self) -> AssemblerCounts {
        self.counts
    }

    /// How long a hole currently waits before the frames behind it are given up on.
    pub fn loss_wait(&self) -> Duration {
        self.loss_wait.current()
    }

    /// Releases frames whose holes have waited long enough; call on a timer too.
    pub fn poll(&mut self, now: Instant) -> Vec<AssembledFrame> {
        self.drain(now)
    }

    fn extend(&mut self, sequence: u16) -> u64 {
        let ext = match self.highest {
            None => u64::from(sequence) + (1 << 16),
            Some(highest) => {
                let base = highest & !0xFFFF;
                let candidates = [
                    base.wrapping_sub(1 << 16) | u64::from(sequence),
                    base | u64::from(sequence),
                    (base + (1 << 16)) | u64::from(sequence),
                ];
                // The candidate nearest the highest seen.
                candidates
                    .into_iter()
                    .min_by_key(|c| c.abs_diff(highest))
                    .unwrap_or(base | u64::from(sequence))
            }
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    fn drain(&mut self, now: Instant) -> Vec<AssembledFrame> {
        let mut frames = Vec::new();
        while let Some(next) = self.next {
            match self.complete_frame_from(next) {
                Some(FrameEnd::Whole(end)) => {
                    let packets: Vec<MediaPacket> = (next..=end)
                        .filter_map(|seq| self.buffer.remove(&seq))
                        .map(|b| b.packet)
                        .collect();
                    self.next = Some(end + 1);
                    let timestamp = packets.first().map(|p| p.timestamp).unwrap_or(0);
                    if self.is_stale(timestamp) {
                        self.counts.stale_frames += 1;
                        self.lost_since_last_frame = true;
                        continue;
                    }
                    frames.push(AssembledFrame {
                        timestamp,
                        payloads: packets.into_iter().map(|p| p.payload).collect(),
                        after_loss: std::mem::take(&mut self.lost_since_last_frame),
                    });
                }
                Some(FrameEnd::Cut(end)) => {
                    // The sender cut the frame short (an SFU switching simulcast layers): there
                    // is nothing to wait for, and the next frame (a keyframe) resyncs.
                    self.buffer.retain(|seq, _| *seq > end);
                    self.next = Some(end + 1);
                    self.lost_since_last_frame = true;
                }
                None => {
                    if !self.give_up_on_hole(next, now) {
                        break;
                    }
                }
            }
        }
        frames
    }

    fn is_stale(&self, timestamp: u32) -> bool {
        let wait_ms = self.loss_wait.current().as_millis() as u32 * 2 + 200;
        let wait_ticks = wait_ms.saturating_mul(90);
        let max_age = MAX_FRAME_AGE_TICKS.max(wait_ticks);
        self.newest_timestamp.is_some_and(|newest| {
            newest.wrapping_sub(timestamp) > max_age && timestamp_after(newest, timestamp)
        })
    }

    /// Where the frame whose first packet is `start` ends, if all of it is here.
    fn complete_frame_from(&self, start: u64) -> Option<FrameEnd> {
        let first = self.buffer.get(&start)?;
        let timestamp = first.packet.timestamp;
        let mut seq = start;
        loop {
            let buffered = self.buffer.get(&seq)?;
            if buffered.packet.timestamp != timestamp {
                // The next packet in sequence starts another frame, yet this one had no marker:
                // it was cut short. (A lost marker packet would have left a hole instead.)
                return Some(FrameEnd::Cut(seq - 1));
            }
            if buffered.packet.marker {
                return Some(FrameEnd::Whole(seq));
            }
            seq += 1;
        }
    }

    /// Skips the frame at `next` if it is stuck behind a hole that has waited long enough.
    /// Returns whether anything was skipped.
    fn give_up_on_hole(&mut self, next: u64, now: Instant) -> bool {
        let Some((&oldest_seq, oldest)) = self.buffer.iter().next() else {
            return false;
        };
        if now.saturating_duration_since(oldest.arrived) < self.loss_wait.current() {
            return false;
        }
        // Drop everything up to the first packet that starts a new frame after `next`.
        let stuck_timestamp = self.buffer.get(&next).map(|b| b.packet.timestamp);
        let resume = self
            .buffer
            .range(oldest_seq.max(next)..)
            .find(|(seq, b)| {
                **seq > next
                    && Some(b.packet.timestamp) != stuck_timestamp
                    && self.starts_frame(**seq)
            })
            .map(|(seq, _)| *seq);
        let Some(resume) = resume else {
            return false;
        };
        let opened = oldest.arrived;
        for seq in next..resume {
            if !self.buffer.contains_key(&seq) {
                self.skipped.insert(seq, opened);
            }
        }
        while self.skipped.len() > MAX_SKIPPED {
            self.skipped.pop_first();
        }
        self.buffer.retain(|seq, _| *seq >= resume);
        self.next = Some(resume);
        self.lost_since_last_frame = true;
        self.counts.holes_skipped += 1;
        true
    }

    /// Whether the packet at `seq` is the first of its frame (the previous packet, if present,
    /// had a marker or another timestamp; if absent, we assume so when the timestamp changed).
    fn starts_frame(&self, seq: u64) -> bool {
        let Some(this) = self.buffer.get(&seq) else {
            return false;
        };
        match self.buffer.get(&(seq - 1)) {
            Some(prev) => prev.packet.marker || prev.packet.timestamp != this.packet.timestamp,
            None => true,
        }
    }
}

/// Whether RTP timestamp `a` is after `b`, across the 32-bit wrap.
fn timestamp_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(sequence: u16, timestamp: u32, marker: bool) -> MediaPacket {
        MediaPacket {
            sequence,
            timestamp,
            marker,
            payload: Bytes::from(vec![sequence as u8]),
        }
    }

    #[test]
    fn in_order_packets_make_frames() {
        let now = Instant::now();
        let mut a = FrameAssembler::default();
        assert!(a.push(pkt(10, 1000, false), now).is_empty());
        let frames = a.push(pkt(11, 1000, true), now);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].payloads.len(), 2);
        assert!(!frames[0].after_loss);
        assert_eq!(a.push(pkt(12, 4000, true), now).len(), 1);
    }

    #[test]
    fn reordered_packets_wait_for_each_other() {
        let now = Instant::now();
        let mut a = FrameAssembler::default();
        assert_eq!(a.push(pkt(1, 0, false), now).len(), 0);
        assert_eq!(a.push(pkt(3, 3000, true), now).len(), 0);
        let frames = a.push(pkt(2, 0, true), now);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].timestamp, 3000);
    }

    #[test]
    fn a_lost_packet_is_given_up_on_after_the_wait() {
        let start = Instant::now();
        let mut a = FrameAssembler::new(AdaptiveWait::fixed(Duration::from_millis(100)));
        a.push(pkt(1, 0, false), start);
        // 2 (end of frame 0) is lost; frame 3000 arrives whole.
        assert!(a.push(pkt(3, 3000, false), start).is_empty());
        assert!(a.push(pkt(4, 3000, true), start).is_empty());
        assert!(a.poll(start + Duration::from_millis(50)).is_empty());
        let frames = a.poll(start + Duration::from_millis(150));
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].timestamp, 3000);
        assert!(frames[0].after_loss);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let now = Instant::now();
        let mut a = FrameAssembler::default();
        assert_eq!(a.push(pkt(65535, 0, true), now).len(), 1);
        assert_eq!(a.push(pkt(0, 3000, false), now).len(), 0);
        assert_eq!(a.push(pkt(1, 3000, true), now).len(), 1);
    }

    #[test]
    fn frames_completed_long_after_newer_ones_arrived_are_skipped() {
        let now = Instant::now();
        let mut a = FrameAssembler::default();
        assert_eq!(a.push(pkt(1, 0, true), now).len(), 1);
        // Frame at ts 3000 loses its last packet; a second later frames flow again.
        a.push(pkt(2, 3000, false), now);
        a.push(pkt(4, 93_000, true), now);
        // The retransmission arrives and completes the one-second-old frame.
        let frames = a.push(pkt(3, 3000, true), now);
        assert_eq!(frames.len(), 1, "only the live frame is released");
        assert_eq!(frames[0].timestamp, 93_000);
        assert!(frames[0].after_loss, "the decoder must resync");
    }

    /// Opens a hole at `seq` (frame `ts`), fills it `took` later; returns the time after.
    fn fill_hole_after(a: &mut FrameAssembler, seq: u16, ts: u32, at: Instant, took: Duration) {
        a.push(pkt(seq, ts, false), at);
        a.push(pkt(seq + 2, ts, true), at);
        a.push(pkt(seq + 1, ts, false), at + took);
    }

    #[test]
    fn the_wait_follows_how_long_holes_take_to_fill() {
        let mut t = Instant::now();
        let mut a = FrameAssembler::default();
        assert_eq!(a.loss_wait(), DEFAULT_LOSS_WAIT);
        let mut seq = 0u16;
        for i in 0..40u32 {
            fill_hole_after(&mut a, seq, i * 3000, t, Duration::from_millis(350));
            seq += 3;
            t += Duration::from_millis(400);
        }
        assert_eq!(
            a.loss_wait(),
            Duration::from_millis(350) + WAIT_MARGIN,
            "a slow path waits longer"
        );
        for i in 40..700u32 {
            fill_hole_after(&mut a, seq, i * 3000, t, Duration::from_millis(30));
            seq = seq.wrapping_add(3);
            t += Duration::from_millis(40);
        }
        assert_eq!(a.loss_wait(), MIN_LOSS_WAIT, "a quick one gives up sooner");
        a.on_requested_keyframe(Duration::from_millis(300));
        assert_eq!(
            a.loss_wait(),
            Duration::from_millis(300),
            "but not sooner than a keyframe would come"
        );
        let mut fixed = FrameAssembler::new(AdaptiveWait::fixed(Duration::from_millis(100)));
        fill_hole_after(&mut fixed, 0, 0, t, Duration::from_millis(500));
        assert_eq!(fixed.loss_wait(), Duration::from_millis(100));
    }

    #[test]
    fn repairs_that_come_after_giving_up_still_lengthen_the_wait() {
        let mut t = Instant::now();
        let mut a = FrameAssembler::default();
        let mut seq = 0u16;
        for i in 0..40u32 {
            // Frame i loses its second packet; frame i + 1 is whole; the wait runs out; the
            // repair comes 600 ms after the hole opened.
            a.push(pkt(seq, i * 6000, false), t);
            a.push(pkt(seq + 2, i * 6000, true), t);
            a.push(pkt(seq + 3, i * 6000 + 3000, true), t);
            let released = a.poll(t + a.loss_wait() + Duration::from_millis(1));
            assert!(!released.is_empty(), "frame {i} given up on");
            a.push(
                pkt(seq + 1, i * 6000, false),
                t + Duration::from_millis(600),
            );
            seq += 4;
            t += Duration::from_secs(1);
        }
        assert_eq!(a.counts().holes_skipped, 40);
        assert_eq!(a.loss_wait(), Duration::from_millis(600) + WAIT_MARGIN);
    }

    #[test]
    fn a_frame_cut_short_by_the_sender_does_not_hold_up_the_next() {
        let now = Instant::now();
        let mut a = FrameAssembler::default();
        assert_eq!(a.push(pkt(1, 0, true), now).len(), 1);
        // Frame 3000 stops after two packets; the next in sequence starts frame 6000.
        assert!(a.push(pkt(2, 3000, false), now).is_empty());
        assert!(a.push(pkt(3, 3000, false), now).is_empty());
        let frames = a.push(pkt(4, 6000, true), now);
        assert_eq!(frames.len(), 1, "released without waiting");
        assert_eq!(frames[0].timestamp, 6000);
        assert!(frames[0].after_loss);
    }

    #[test]
    fn duplicates_are_ignored() {
        let now = Instant::now();
        let mut a = FrameAssembler::default();
        assert_eq!(a.push(pkt(5, 0, true), now).len(), 1);
        assert_eq!(a.push(pkt(5, 0, true), now).len(), 0);
    }
}
