//! Send-side bandwidth estimation: how much a connection's path carries, from the receiver's
//! transport-wide congestion control feedback. The client runs it on its publisher connection
//! (the encoders follow it), the server on every subscriber connection (the SFU picks the
//! simulcast layer that fits).
//!
//! The receiver reports, in transport-wide congestion control feedback (TWCC), when each packet
//! arrived. `webrtc`'s congestion-control interceptor matches those reports to what was sent and
//! hands them to [`SendEstimator`]: a delay-based AIMD controller built for classrooms on bad
//! networks.
//!
//! - **Congestion is a growing queue.** The one-way delay of each packet, less the lowest seen
//!   in the last ten seconds, is the time it queued. Above [`QUEUE_LIMIT`] the path carries less
//!   than is sent: the rate drops to 85 % of what actually arrived, at most once per
//!   [`CUT_HOLD`] while the queue drains. (The `rtc` GCC port compares the per-group delay
//!   slope, a fraction of a millisecond on a capped link, against a 6–12 ms threshold, and on
//!   our capped links it never declared overuse; its loss half then cut the rate for every lost
//!   packet, congestion or not.)
//! - **Loss is congestion only when the queue grew too.** On Wi-Fi and mobile links most loss is
//!   random and cutting does not reduce it; retransmission and FEC repair it. Loss above 10 %
//!   lowers the rate only while packets also queue.
//! - **A fast start.** Until the first congestion the rate grows by a quarter every 200 ms (a
//!   720p rate within two seconds), then by 8 % a second (50 % while far below what the path
//!   carried at its last congestion, after a deep cut; 25 % once the path has been calm for
//!   three seconds, so a link that comes back is found quickly), never beyond twice what arrives plus
//!   1 Mbit/s (room for a camera to climb back to a larger picture).
//!
//! The estimate is published in [`BandwidthEstimate`], which senders read to size what they
//! send, and rides to the pacer, scaled by [`PACING_FACTOR`] so a keyframe leaves in a burst
//! instead of queueing behind its own rate ([`PacingRateTap`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, BandwidthEstimator, Interceptor, PacketReport, StreamInfo, TaggedPacket,
};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Estimate the publisher connection starts from, bit/s.
pub const INITIAL_BITRATE: f64 = 600_000.0;
/// Lowest estimate, bit/s: below this even a thumbnail stutters.
pub const MIN_BITRATE: f64 = 80_000.0;
/// Highest estimate, bit/s.
pub const MAX_BITRATE: f64 = 20_000_000.0;
/// The pacer drains at this multiple of the estimate (libwebrtc uses 2.5): the average rate is
/// the encoder's, the pacer only smooths bursts.
pub const PACING_FACTOR: f64 = 2.5;
/// Where the pacing tap sits: after the TWCC sender (2 000), before the pacer (3 000).
pub const PACING_RATE_TAP_SLOT: usize = 2_500;
/// Queueing delay that counts as congestion.
pub const QUEUE_LIMIT: Duration = Duration::from_millis(40);
/// Queueing delay under which lost packets are taken for random loss.
const QUEUE_QUIET: Duration = Duration::from_millis(15);
/// Shortest time between two congestion cuts: the queue needs a moment to drain.
pub const CUT_HOLD: Duration = Duration::from_millis(400);
/// Growth per step during the fast start.
const STARTUP_GROWTH: f64 = 1.25;
/// Time between fast-start steps.
const STARTUP_STEP: Duration = Duration::from_millis(200);
/// How far the steady-state estimate may run ahead of twice what arrives, bit/s.
const STEADY_HEADROOM: f64 = 1_000_000.0;
/// Growth per second while far below what the path carried at its last congestion.
const RECOVERY_GROWTH_PER_SECOND: f64 = 0.5;
/// Time without congestion after which the path is taken to have room again.
const CALM_AFTER: Duration = Duration::from_secs(3);
/// Growth per second once the path has been calm for [`CALM_AFTER`]: a link that came back
/// is found in seconds, at the price of a small queue now and then on one that did not.
const CALM_GROWTH_PER_SECOND: f64 = 0.25;
/// Growth per second after the fast start.
const STEADY_GROWTH_PER_SECOND: f64 = 0.08;
/// Window over which the lowest one-way delay is the path's base delay.
const BASE_DELAY_WINDOW: Duration = Duration::from_secs(10);
/// Window of the received-rate measurement.
const RATE_WINDOW: Duration = Duration::from_millis(500);

/// A connection's estimate, shared by the estimator with whoever sizes what is sent.
#[derive(Debug, Default)]
pub struct BandwidthEstimate {
    target_bps: AtomicU64,
    received_bps: AtomicU64,
    queue_us: AtomicU64,
    loss_permille: AtomicU64,
}

/// A snapshot of [`BandwidthEstimate`] for stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct SendEstimate {
    /// The estimate, kbit/s.
    pub target_kbps: f64,
    /// What the receiver reported receiving over the last half second, kbit/s.
    pub received_kbps: f64,
    /// Queueing delay of the latest reported packets, ms.
    pub queue_ms: f64,
    /// Recent loss the receiver reported, percent (before any repair).
    pub loss_percent: f64,
}

impl BandwidthEstimate {
    /// The current estimate in bit/s, once the first feedback arrived.
    pub fn target_bps(&self) -> Option<u64> {
        match self.target_bps.load(Ordering::Relaxed) {
            0 => None,
            bps => Some(bps),
        }
    }

    /// Recent loss on the path (0 to 1), before retransmission or FEC repaired any of it.
    pub fn loss_fraction(&self) -> f64 {
        self.loss_permille.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Sets the estimate by hand (for tests and for senders that know their path).
    pub fn set_target_bps(&self, bps: u64) {
        self.target_bps.store(bps, Ordering::Relaxed);
    }

    /// Sets the path's loss by hand (for tests and for senders that know their path).
    pub fn set_loss_fraction(&self, loss: f64) {
        self.loss_permille
            .store((loss.clamp(0.0, 1.0) * 1000.0) as u64, Ordering::Relaxed);
    }

    /// The estimate, for stats; `None` before the first feedback.
    pub fn snapshot(&self) -> Option<SendEstimate> {
        let target = self.target_bps()?;
        Some(SendEstimate {
            target_kbps: target as f64 / 1000.0,
            received_kbps: self.received_bps.load(Ordering::Relaxed) as f64 / 1000.0,
            queue_ms: self.queue_us.load(Ordering::Relaxed) as f64 / 1000.0,
            loss_percent: self.loss_permille.load(Ordering::Relaxed) as f64 / 10.0,
        })
    }
}

/// One-way delays, relative to the lowest of the last [`BASE_DELAY_WINDOW`].
#[derive(Default)]
struct QueueDelay {
    /// The first report's departure, so departures and the receiver's clock compare.
    origin: Option<Instant>,
    /// (when, lowest relative one-way delay in that second), newest last.
    minima: VecDeque<(Instant, f64)>,
}

impl QueueDelay {
    /// The queueing delay of a packet sent at `departure` and received at `arrival` on the
    /// receiver's clock, in seconds.
    fn update(&mut self, departure: Instant, arrival: Duration) -> f64 {
        let origin = *self.origin.get_or_insert(departure);
        // Offset by an unknown clock difference; only changes matter.
        let one_way = arrival.as_secs_f64() - departure.duration_since(origin).as_secs_f64();
        match self.minima.back_mut() {
            Some((at, lowest)) if departure.duration_since(*at) < Duration::from_secs(1) => {
                *lowest = lowest.min(one_way);
            }
            _ => self.minima.push_back((departure, one_way)),
        }
        while self
            .minima
            .front()
            .is_some_and(|(at, _)| departure.duration_since(*at) > BASE_DELAY_WINDOW)
        {
            self.minima.pop_front();
        }
        let base = self
            .minima
            .iter()
            .map(|(_, lowest)| *lowest)
            .fold(f64::INFINITY, f64::min);
        (one_way - base).max(0.0)
    }
}

/// The estimator (see the module docs).
pub struct SendEstimator {
    shared: Arc<BandwidthEstimate>,
    queue: QueueDelay,
    /// Bytes that arrived, by arrival time on the receiver's clock, for the received rate.
    arrivals: VecDeque<(Duration, usize)>,
    /// Fate of recent packets (true = lost), for the loss fraction.
    recent: VecDeque<bool>,
    /// Next fast-start step, until the first congestion.
    startup_step: Option<Instant>,
    /// When the last cut was made and the queueing delay then, seconds.
    last_cut: Option<(Instant, f64)>,
    /// What the path carried when it last congested, bit/s: far below it the rate climbs back
    /// fast, near it slowly.
    capacity: Option<f64>,
    last_update: Option<Instant>,
    target: f64,
}

impl SendEstimator {
    /// An estimator publishing into `shared`.
    pub fn new(shared: Arc<BandwidthEstimate>) -> Self {
        Self {
            shared,
            queue: QueueDelay::default(),
            arrivals: VecDeque::new(),
            recent: VecDeque::new(),
            startup_step: Some(Instant::now()),
            last_cut: None,
            capacity: None,
            last_update: None,
            target: INITIAL_BITRATE,
        }
    }

    fn loss_fraction(&self) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        self.recent.iter().filter(|lost| **lost).count() as f64 / self.recent.len() as f64
    }

    /// What arrived over the last [`RATE_WINDOW`] of the receiver's clock, bit/s (`None` until
    /// enough has arrived to tell).
    fn received_bps(&self) -> Option<f64> {
        let (first, _) = self.arrivals.front()?;
        let (last, _) = self.arrivals.back()?;
        let span = last.saturating_sub(*first);
        if span < RATE_WINDOW / 4 {
            return None;
        }
        // The first packet's bytes arrived before the span began.
        let bytes: usize = self.arrivals.iter().skip(1).map(|(_, size)| size).sum();
        Some(bytes as f64 * 8.0 / span.as_secs_f64())
    }

    /// Lowers the target to `to`, unless a cut was just made and the queue has not grown since
    /// (the queue a cut leaves takes a while to drain; cutting again for it would collapse the
    /// rate).
    fn cut(&mut self, now: Instant, to: f64, queue: f64) {
        let allowed = match self.last_cut {
            None => true,
            Some((at, queue_then)) => {
                let since = now.duration_since(at);
                since >= CUT_HOLD * 3 || (since >= CUT_HOLD && queue > queue_then * 1.2)
            }
        };
        if allowed {
            self.target = self.target.min(to);
            self.last_cut = Some((now, queue));
            self.startup_step = None;
        }
    }
}

impl BandwidthEstimator for SendEstimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        let mut queue = 0.0f64;
        for report in reports {
            self.recent.push_back(!report.arrived);
            if let Some(arrival) = report.arrival {
                self.arrivals.push_back((arrival, report.size));
                queue = queue.max(self.queue.update(report.departure, arrival));
            }
        }
        while self.recent.len() > 500 {
            self.recent.pop_front();
        }
        if let Some(&(newest, _)) = self.arrivals.back() {
            while self
                .arrivals
                .front()
                .is_some_and(|(at, _)| newest.saturating_sub(*at) > RATE_WINDOW)
            {
                self.arrivals.pop_front();
            }
        }
        let received = self.received_bps();
        let loss = self.loss_fraction();
        let elapsed = self
            .last_update
            .replace(now)
            .map_or(0.0, |at| now.duration_since(at).as_secs_f64());

        if queue > QUEUE_LIMIT.as_secs_f64() {
            // The path carries less than is sent: back to below what got through.
            let through = received.unwrap_or(self.target);
            self.capacity = Some(through);
            self.cut(now, through * 0.85, queue);
        } else if loss > 0.1 && queue > QUEUE_QUIET.as_secs_f64() {
            // Loss with a queue: a full buffer dropping packets.
            self.cut(now, self.target * (1.0 - 0.5 * loss), queue);
        } else if queue < QUEUE_QUIET.as_secs_f64() {
            // Room, or random loss that lowering the rate would not cure.
            // An app-limited sender (a still picture, a lower resolution) does not fill the
            // path; the estimate may run ahead of what it sends, but not without bound, or a
            // later burst would meet a path nobody measured. The fast start has no bound: it
            // ends at the first queue.
            let ceiling = received.map_or(f64::MAX, |r| 2.0 * r + STEADY_HEADROOM);
            match self.startup_step.as_mut() {
                Some(next) if now >= *next => {
                    self.target *= STARTUP_GROWTH;
                    *next = now + STARTUP_STEP;
                }
                Some(_) => {}
                None => {
                    let far_below = self
                        .capacity
                        .is_some_and(|capacity| self.target < capacity * 0.8);
                    let calm = self
                        .last_cut
                        .is_none_or(|(at, _)| now.duration_since(at) >= CALM_AFTER);
                    let rate = if far_below {
                        RECOVERY_GROWTH_PER_SECOND
                    } else if calm {
                        CALM_GROWTH_PER_SECOND
                    } else {
                        STEADY_GROWTH_PER_SECOND
                    };
                    let grown = self.target * (1.0 + rate * elapsed);
                    self.target = grown.min(ceiling.max(self.target));
                }
            }
        }
        self.target = self.target.clamp(MIN_BITRATE, MAX_BITRATE);

        let shared = &self.shared;
        shared
            .target_bps
            .store(self.target as u64, Ordering::Relaxed);
        shared
            .received_bps
            .store(received.unwrap_or(0.0) as u64, Ordering::Relaxed);
        shared
            .queue_us
            .store((queue * 1e6) as u64, Ordering::Relaxed);
        shared
            .loss_permille
            .store((loss * 1000.0) as u64, Ordering::Relaxed);
    }

    fn target_bitrate(&self) -> f64 {
        self.target
    }
}

/// Scales the estimate on its way to the pacer by [`PACING_FACTOR`]; changes nothing else.
#[derive(Default)]
pub struct PacingRateTap {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for PacingRateTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        for attribute in &mut msg.message.attributes {
            if let Attribute::TargetBitrateChanged { bits_per_second } = attribute {
                *bits_per_second *= PACING_FACTOR;
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
}

impl Interceptor for PacingRateTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// When a step up in rate that failed may be tried again: a simulcast layer a publisher had to
/// stop for want of uplink, or a layer the SFU had to take back from a subscriber. An estimate
/// on an app-limited path runs ahead of what the path carries, and such a step adds hundreds of
/// kbit/s at once; without a back-off it would overrun a capped link every few seconds. The
/// first failure blocks the step for [`PROBE_BACKOFF`], each failure soon after a retry twice as
/// long as the last (up to [`MAX_PROBE_BACKOFF`]); a step that holds for [`PROVEN_AFTER`]
/// resets it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbeBackoff {
    started: Option<Instant>,
    backoff: Option<Duration>,
    blocked_until: Option<Instant>,
}

/// The first back-off after a failed step up.
pub const PROBE_BACKOFF: Duration = Duration::from_secs(2);
/// The longest back-off.
pub const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(30);
/// A step up that holds this long proved the path carries it.
pub const PROVEN_AFTER: Duration = Duration::from_secs(10);

impl ProbeBackoff {
    /// The step up was taken at `now`.
    pub fn started(&mut self, now: Instant) {
        self.started = Some(now);
    }

    /// The step had to be taken back at `now`.
    pub fn stopped(&mut self, now: Instant) {
        let soon = self
            .started
            .is_some_and(|at| now.duration_since(at) < PROVEN_AFTER);
        let backoff = match self.backoff {
            Some(previous) if soon => (previous * 2).min(MAX_PROBE_BACKOFF),
            _ => PROBE_BACKOFF,
        };
        self.backoff = Some(backoff);
        self.blocked_until = Some(now + backoff);
        self.started = None;
    }

    /// Whether the step may be taken at `now`.
    pub fn may_start(&self, now: Instant) -> bool {
        self.blocked_until.is_none_or(|until| now >= until)
    }
}

/// An interceptor that passes everything through: it takes the slot of one that must not run.
///
/// In the pacer's slot on an SFU's subscriber connections: the SFU forwards packets as they
/// arrive (the publisher's pacer has already spread them), and pacing them again per subscriber
/// only adds delay whenever what is forwarded briefly exceeds the estimate — the estimate's job
/// there is to choose what to forward, not to hold packets back. In the NACK generator's slot
/// when loss recovery is switched off for a comparison.
#[derive(Default)]
pub struct PassThrough {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for PassThrough {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
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
}

impl Interceptor for PassThrough {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;

    /// A report of packet `id`, sent at `departure` and (if `arrived`) received `arrival`
    /// after the receiver's clock origin.
    fn report(id: u64, departure: Instant, arrival: Duration, arrived: bool) -> PacketReport {
        PacketReport {
            ssrc: 1,
            id,
            rtp_sequence_number: id as u16,
            is_twcc: true,
            twcc_sequence_number: id as u16,
            size: 1200,
            arrived,
            departure,
            arrival: arrived.then_some(arrival),
            ecn: Ecn::NotEct,
        }
    }

    /// A simulated path: 20 ms one way, and from `capped_from_s` on a bottleneck of `link_bps`
    /// with an unbounded queue.
    struct Path {
        origin: Instant,
        link_bps: f64,
        capped_from_s: f64,
        /// When the bottleneck is free again, seconds after `origin`.
        free_at: f64,
    }

    impl Path {
        fn new(origin: Instant) -> Self {
            Self {
                origin,
                link_bps: f64::INFINITY,
                capped_from_s: f64::INFINITY,
                free_at: 0.0,
            }
        }

        /// Arrival of a packet of `size` bytes sent at `sent_s`, seconds after `origin`.
        fn arrival(&mut self, sent_s: f64, size: usize) -> f64 {
            if sent_s < self.capped_from_s {
                return sent_s + 0.020;
            }
            let start = sent_s.max(self.free_at);
            self.free_at = start + size as f64 * 8.0 / self.link_bps;
            self.free_at + 0.020
        }
    }

    /// Sends 1200-byte packets at `pps` from `from_s` to `to_s` seconds over `path`, every
    /// `lose_every`-th lost, reporting in batches of ten. Returns the final target.
    fn run(
        estimator: &mut SendEstimator,
        path: &mut Path,
        (from_s, to_s): (f64, f64),
        pps: u32,
        lose_every: Option<u64>,
    ) -> f64 {
        let first = (from_s * f64::from(pps)) as u64;
        let last = (to_s * f64::from(pps)) as u64;
        let mut batch = Vec::new();
        for id in first..last {
            let sent_s = id as f64 / f64::from(pps);
            let arrived_s = path.arrival(sent_s, 1200);
            let arrived = lose_every.is_none_or(|n| id % n != 0);
            let departure = path.origin + Duration::from_secs_f64(sent_s);
            batch.push(report(
                id,
                departure,
                Duration::from_secs_f64(arrived_s),
                arrived,
            ));
            if batch.len() == 10 {
                let now = path.origin + Duration::from_secs_f64(arrived_s + 0.020);
                estimator.on_reports(now, &batch);
                batch.clear();
            }
        }
        estimator.target_bitrate()
    }

    #[test]
    fn a_layer_that_keeps_failing_waits_longer_to_restart() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut b = ProbeBackoff::default();
        assert!(b.may_start(t));
        b.started(t);
        b.stopped(t + s(1));
        assert!(!b.may_start(t + s(2)));
        assert!(b.may_start(t + s(3)), "two seconds after the first stop");
        b.started(t + s(3));
        b.stopped(t + s(4));
        assert!(!b.may_start(t + s(7)));
        assert!(b.may_start(t + s(8)), "four after a quick second failure");
        b.started(t + s(8));
        b.stopped(t + s(30));
        assert!(b.may_start(t + s(32)), "a long run resets the back-off");
    }

    #[test]
    fn the_fast_start_climbs_past_a_720p_rate_within_two_seconds() {
        let shared = Arc::new(BandwidthEstimate::default());
        let mut estimator = SendEstimator::new(Arc::clone(&shared));
        let target = run(
            &mut estimator,
            &mut Path::new(Instant::now()),
            (0.0, 2.0),
            300,
            None,
        );
        assert!(target > 2_500_000.0, "after 2 s on a clear path: {target}");
        assert_eq!(shared.target_bps(), Some(target as u64));
    }

    #[test]
    fn random_loss_without_queueing_does_not_cut_the_rate() {
        let mut estimator = SendEstimator::new(Arc::new(BandwidthEstimate::default()));
        // Every 4th packet lost (25 %), no queue.
        let target = run(
            &mut estimator,
            &mut Path::new(Instant::now()),
            (0.0, 4.0),
            300,
            Some(4),
        );
        assert!(
            target >= INITIAL_BITRATE,
            "random loss cut the rate to {target}"
        );
    }

    #[test]
    fn a_full_dropping_buffer_cuts_the_rate() {
        let mut estimator = SendEstimator::new(Arc::new(BandwidthEstimate::default()));
        let mut path = Path::new(Instant::now());
        run(&mut estimator, &mut path, (0.0, 1.0), 300, None);
        let before = estimator.target_bitrate();
        // A bottleneck under the sending rate, its buffer dropping every 5th packet. (The
        // simulated sender does not slow down, so one cut under what arrives is all to see.)
        path.link_bps = 2_400_000.0;
        path.capped_from_s = 1.0;
        let after = run(&mut estimator, &mut path, (1.0, 2.0), 300, Some(5));
        assert!(after < before, "{before} -> {after}");
        assert!(estimator.startup_step.is_none());
    }

    #[test]
    fn a_growing_queue_ends_the_start_and_lowers_the_rate() {
        let mut estimator = SendEstimator::new(Arc::new(BandwidthEstimate::default()));
        let mut path = Path::new(Instant::now());
        run(&mut estimator, &mut path, (0.0, 1.0), 300, None);
        // From 1 s on the path carries 1.5 Mbit/s of the 2.9 sent: the queue grows.
        path.link_bps = 1_500_000.0;
        path.capped_from_s = 1.0;
        let after = run(&mut estimator, &mut path, (1.0, 2.0), 300, None);
        assert!(
            estimator.startup_step.is_none(),
            "congestion ends the fast start"
        );
        assert!(
            after < 1_500_000.0 && after > 800_000.0,
            "the rate drops under what the path carries: {after}"
        );
    }
}
