//! Loss recovery by negative acknowledgement (RFC 4585 generic NACK), tuned for lossy links.
//!
//! `webrtc`'s NACK generator asks for every missing packet on a fixed 100 ms cycle. On a link
//! that loses 30 % of packets each way, a request and its retransmission both arrive only half
//! the time, so a 100 ms cycle repairs too few holes before the picture has to move on and a
//! keyframe is needed. [`NackScheduler`] asks for a hole as soon as it opens and again every
//! half round trip until it is filled or too old:
//!
//! - **Round trip from the repairs themselves.** The receiver of media cannot read the RTT from
//!   RTCP reports (only senders can). Every hole filled by a retransmission gives the time from
//!   its first request to its arrival, never less than a round trip; the lowest of the recent
//!   ones is a request answered at the first try, that is, one round trip. (Holes filled
//!   otherwise say nothing about the round trip: behind an SFU, a packet the server itself had
//!   to recover from upstream arrives whenever that repair finishes.)
//! - **Retry at half the round trip.** Each try succeeds only when both the request and the
//!   retransmission survive; retrying every half round trip gives a hole seven tries in
//!   200 ms on a 50 ms path (it stays open in under 1 % of cases at 30 % loss each way) for
//!   about one and a half retransmissions per lost packet.
//! - **Bounded.** A hole is given up after [`MAX_HOLE_AGE`] or [`MAX_REQUESTS`] requests; a jump
//!   of more than [`MAX_GAP`] sequence numbers restarts the stream's log instead of asking for
//!   thousands of packets.
//!
//! The scheduler is plain logic over sequence numbers and instants; [`NackGenerator`] is the
//! thin interceptor that feeds it received packets and sends what it asks for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::TransportContext;

/// A hole older than this is given up on: the picture has moved on.
pub const MAX_HOLE_AGE: Duration = Duration::from_millis(1_500);
/// Most requests for one packet.
pub const MAX_REQUESTS: u16 = 30;
/// A jump in sequence numbers larger than this restarts the log (a new source, a long cut).
pub const MAX_GAP: u64 = 1_000;
/// Round trip assumed before the first repair measured one.
pub const INITIAL_RTT: Duration = Duration::from_millis(100);
/// Shortest and longest wait between two requests for the same packet.
const MIN_RETRY: Duration = Duration::from_millis(10);
const MAX_RETRY: Duration = Duration::from_millis(250);
/// Repairs remembered for the round-trip estimate.
const RTT_SAMPLES: usize = 64;

/// Counters of one connection's loss recovery, shared with stats.
#[derive(Debug, Default)]
pub struct NackStats {
    /// Sequence numbers found missing.
    pub holes: AtomicU64,
    /// Holes filled afterwards (by retransmission, FEC or late arrival).
    pub repaired: AtomicU64,
    /// Packets rebuilt from FEC (most of them fill a hole before it is asked for).
    pub fec_recovered: AtomicU64,
    /// Holes given up on.
    pub abandoned: AtomicU64,
    /// Packets asked for (a packet asked for twice counts twice).
    pub requested: AtomicU64,
    /// The current round-trip estimate, microseconds.
    pub rtt_us: AtomicU64,
}

impl NackStats {
    /// The round trip the scheduler currently works with.
    pub fn rtt(&self) -> Duration {
        Duration::from_micros(self.rtt_us.load(Ordering::Relaxed))
    }
}

struct Hole {
    /// When the first request for it was (or will be) sent.
    first_request: Option<Instant>,
    last_request: Option<Instant>,
    requests: u16,
    opened: Instant,
}

/// The sequence numbers one stream has received and lacks.
#[derive(Default)]
struct StreamLog {
    highest: Option<u64>,
    holes: BTreeMap<u64, Hole>,
}

impl StreamLog {
    /// The extended sequence number of `sequence`: the one nearest the highest seen.
    fn extend(&self, sequence: u16) -> u64 {
        let Some(highest) = self.highest else {
            return u64::from(sequence) + (1 << 16);
        };
        let base = highest & !0xFFFF;
        [
            base.wrapping_sub(1 << 16) | u64::from(sequence),
            base | u64::from(sequence),
            (base + (1 << 16)) | u64::from(sequence),
        ]
        .into_iter()
        .min_by_key(|candidate| candidate.abs_diff(highest))
        .unwrap_or(base | u64::from(sequence))
    }
}

/// Decides which packets to ask for, and when (see the module docs).
pub struct NackScheduler {
    streams: HashMap<u32, StreamLog>,
    /// (when, first-request-to-arrival time) of recent repairs.
    repairs: VecDeque<(Instant, Duration)>,
    stats: Arc<NackStats>,
}

impl NackScheduler {
    /// A scheduler publishing its counters into `stats`.
    pub fn new(stats: Arc<NackStats>) -> Self {
        stats
            .rtt_us
            .store(INITIAL_RTT.as_micros() as u64, Ordering::Relaxed);
        Self {
            streams: HashMap::new(),
            repairs: VecDeque::new(),
            stats,
        }
    }

    /// Starts tracking `ssrc`.
    pub fn add_stream(&mut self, ssrc: u32) {
        self.streams.entry(ssrc).or_default();
    }

    /// Stops tracking `ssrc`.
    pub fn remove_stream(&mut self, ssrc: u32) {
        self.streams.remove(&ssrc);
    }

    /// The round trip estimate: the quickest recent repair.
    pub fn rtt(&self) -> Duration {
        self.repairs
            .iter()
            .map(|(_, took)| *took)
            .min()
            .unwrap_or(INITIAL_RTT)
    }

    /// Time between two requests for the same packet.
    pub fn retry_interval(&self) -> Duration {
        (self.rtt() / 2).clamp(MIN_RETRY, MAX_RETRY)
    }

    /// A packet of `ssrc` arrived at `now`; `retransmitted` when it answers a request.
    pub fn on_packet(&mut self, ssrc: u32, sequence: u16, retransmitted: bool, now: Instant) {
        let Some(log) = self.streams.get_mut(&ssrc) else {
            return;
        };
        let ext = log.extend(sequence);
        match log.highest {
            None => log.highest = Some(ext),
            Some(highest) if ext > highest => {
                if ext - highest > MAX_GAP {
                    self.stats
                        .abandoned
                        .fetch_add(log.holes.len() as u64, Ordering::Relaxed);
                    log.holes.clear();
                } else {
                    for missing in highest + 1..ext {
                        log.holes.insert(
                            missing,
                            Hole {
                                first_request: None,
                                last_request: None,
                                requests: 0,
                                opened: now,
                            },
                        );
                    }
                    self.stats
                        .holes
                        .fetch_add(ext - highest - 1, Ordering::Relaxed);
                }
                log.highest = Some(ext);
            }
            Some(_) => {
                if let Some(hole) = log.holes.remove(&ext) {
                    self.stats.repaired.fetch_add(1, Ordering::Relaxed);
                    if let Some(first) = hole.first_request.filter(|_| retransmitted) {
                        self.repairs
                            .push_back((now, now.saturating_duration_since(first)));
                        while self.repairs.len() > RTT_SAMPLES {
                            self.repairs.pop_front();
                        }
                        self.stats
                            .rtt_us
                            .store(self.rtt().as_micros() as u64, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// The packets to ask for now, per SSRC; marks them asked for.
    pub fn due(&mut self, now: Instant) -> Vec<(u32, Vec<u16>)> {
        let retry = self.retry_interval();
        let mut requests = Vec::new();
        let mut abandoned = 0;
        let mut requested = 0;
        for (&ssrc, log) in &mut self.streams {
            let before = log.holes.len();
            log.holes.retain(|_, hole| {
                now.saturating_duration_since(hole.opened) < MAX_HOLE_AGE
                    && hole.requests < MAX_REQUESTS
            });
            abandoned += (before - log.holes.len()) as u64;
            let mut due = Vec::new();
            for (&ext, hole) in &mut log.holes {
                let ready = hole
                    .last_request
                    .is_none_or(|last| now.saturating_duration_since(last) >= retry);
                if ready {
                    hole.first_request.get_or_insert(now);
                    hole.last_request = Some(now);
                    hole.requests += 1;
                    due.push(ext as u16);
                }
            }
            if !due.is_empty() {
                requested += due.len() as u64;
                requests.push((ssrc, due));
            }
        }
        self.stats.abandoned.fetch_add(abandoned, Ordering::Relaxed);
        self.stats.requested.fetch_add(requested, Ordering::Relaxed);
        requests
    }

    /// When [`NackScheduler::due`] next has something to ask for, if anything is missing.
    pub fn next_due(&self) -> Option<Instant> {
        let retry = self.retry_interval();
        self.streams
            .values()
            .flat_map(|log| log.holes.values())
            .map(|hole| match hole.last_request {
                None => hole.opened,
                Some(last) => last + retry,
            })
            .min()
    }
}

/// Where the generator sits: the slot of `webrtc`'s own NACK generator, which it replaces
/// (after the FEC decoder and the RTX unwrapper, so repaired packets count as arrived).
pub const NACK_GENERATOR_SLOT: usize = 7_000;

/// The interceptor that runs a [`NackScheduler`] on a connection's received video.
pub struct NackGenerator {
    scheduler: NackScheduler,
    sender_ssrc: u32,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl NackGenerator {
    /// A generator publishing its counters into `stats`.
    pub fn new(stats: Arc<NackStats>) -> Self {
        Self {
            scheduler: NackScheduler::new(stats),
            sender_ssrc: 0,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    fn send_due(&mut self, now: Instant) {
        for (media_ssrc, sequences) in self.scheduler.due(now) {
            let nack = TransportLayerNack {
                sender_ssrc: self.sender_ssrc,
                media_ssrc,
                nacks: nack_pairs_from_sequence_numbers(&sequences),
            };
            self.write_queue.push_back(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: rtc::interceptor::AttributedPacket::new(Packet::Rtcp(vec![Box::new(
                    nack,
                )])),
            });
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for NackGenerator {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet {
            if msg.message.has(&Attribute::RecoveredByFec) {
                self.scheduler
                    .stats
                    .fec_recovered
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.scheduler.on_packet(
                packet.header.ssrc,
                packet.header.sequence_number,
                msg.message.has(&Attribute::Retransmission),
                msg.now,
            );
            // Ask at once for a hole this packet revealed.
            if self.scheduler.next_due().is_some_and(|due| due <= msg.now) {
                self.send_due(msg.now);
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        if self.scheduler.next_due().is_some_and(|due| due <= now) {
            self.send_due(now);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        self.scheduler.next_due()
    }
}

impl Interceptor for NackGenerator {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if self.sender_ssrc == 0 {
            self.sender_ssrc = info.ssrc;
        }
    }

    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        let supports_nack = info
            .rtcp_feedback
            .iter()
            .any(|fb| fb.typ == "nack" && fb.parameter.is_empty());
        if supports_nack {
            self.scheduler.add_stream(info.ssrc);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.scheduler.remove_stream(info.ssrc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn scheduler() -> (NackScheduler, Arc<NackStats>) {
        let stats = Arc::new(NackStats::default());
        let mut s = NackScheduler::new(Arc::clone(&stats));
        s.add_stream(1);
        (s, stats)
    }

    #[test]
    fn a_hole_is_asked_for_at_once_then_every_half_round_trip() {
        let (mut s, _) = scheduler();
        let t = Instant::now();
        s.on_packet(1, 10, false, t);
        s.on_packet(1, 12, false, t);
        assert_eq!(s.due(t), vec![(1, vec![11])], "asked for when it opens");
        assert!(s.due(t + ms(10)).is_empty(), "not again before the retry");
        let retry = s.retry_interval();
        assert_eq!(retry, INITIAL_RTT / 2);
        assert_eq!(s.next_due(), Some(t + retry));
        assert_eq!(s.due(t + retry), vec![(1, vec![11])]);
        s.on_packet(1, 11, true, t + retry + ms(5));
        assert!(s.next_due().is_none(), "filled holes are forgotten");
    }

    #[test]
    fn the_quickest_repair_sets_the_round_trip() {
        let (mut s, stats) = scheduler();
        let t = Instant::now();
        s.on_packet(1, 1, false, t);
        s.on_packet(1, 3, false, t);
        s.due(t);
        s.on_packet(1, 2, true, t + ms(40));
        s.on_packet(1, 5, false, t + ms(50));
        s.due(t + ms(50));
        // This one needed a second try: it took longer, and does not raise the estimate.
        s.on_packet(1, 4, true, t + ms(150));
        // A hole filled by something other than a retransmission says nothing of the path.
        s.on_packet(1, 8, false, t + ms(150));
        s.due(t + ms(150));
        s.on_packet(1, 7, false, t + ms(152));
        assert_eq!(s.rtt(), ms(40));
        assert_eq!(stats.rtt(), ms(40));
        assert_eq!(s.retry_interval(), ms(20));
        assert_eq!(stats.repaired.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn old_holes_are_given_up() {
        let (mut s, stats) = scheduler();
        let t = Instant::now();
        s.on_packet(1, 1, false, t);
        s.on_packet(1, 3, false, t);
        s.due(t);
        assert!(s.due(t + MAX_HOLE_AGE).is_empty());
        assert!(s.next_due().is_none());
        assert_eq!(stats.abandoned.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn sequence_numbers_wrap_and_long_jumps_restart() {
        let (mut s, stats) = scheduler();
        let t = Instant::now();
        s.on_packet(1, 65_534, false, t);
        s.on_packet(1, 1, false, t);
        assert_eq!(s.due(t), vec![(1, vec![65_535, 0])]);
        s.on_packet(1, 30_000, false, t);
        assert!(
            s.due(t + ms(100)).is_empty(),
            "a jump is not thousands of holes"
        );
        assert_eq!(stats.abandoned.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn unknown_streams_are_ignored() {
        let (mut s, _) = scheduler();
        let t = Instant::now();
        s.on_packet(2, 1, false, t);
        s.on_packet(2, 5, false, t);
        assert!(s.due(t).is_empty());
    }
}
