//! The link model: what happens to one packet on an impaired path. Plain logic over packets and
//! time with a seeded random generator, so every scenario is reproducible and unit-tested.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Impairments of one direction of a path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkSettings {
    /// Probability that a packet is lost at random, 0.0..=1.0.
    pub loss: f64,
    /// Bursty loss (Gilbert-Elliott) instead of independent loss, when set.
    pub burst: Option<BurstLoss>,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra random delay, uniform in 0..=jitter.
    pub jitter: Duration,
    /// Whether jitter may reorder packets (otherwise delivery keeps sending order).
    pub reorder: bool,
    /// Bandwidth cap in bit/s; packets queue behind it.
    pub cap_bps: Option<u64>,
    /// Bytes the cap's queue holds before it drops (drop-tail); default 64 KiB.
    pub queue_bytes: Option<usize>,
    /// Every packet is dropped while set (a network cut).
    pub down: bool,
}

/// Gilbert-Elliott bursty loss: a good state with loss `good_loss` and a bad state with loss
/// `bad_loss`, switching with the given per-packet probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct BurstLoss {
    /// Probability of moving from good to bad per packet.
    pub p_good_to_bad: f64,
    /// Probability of moving from bad to good per packet.
    pub p_bad_to_good: f64,
    /// Loss probability in the good state.
    pub good_loss: f64,
    /// Loss probability in the bad state.
    pub bad_loss: f64,
}

impl BurstLoss {
    /// A burst model with the given average loss and mean burst length (in packets), losing
    /// every packet in a burst and none outside.
    pub fn with_mean(loss: f64, mean_burst: f64) -> Self {
        let loss = loss.clamp(0.0, 0.99);
        let p_bad_to_good = 1.0 / mean_burst.max(1.0);
        // Stationary share of the bad state = loss: p_gb / (p_gb + p_bg) = loss.
        let p_good_to_bad = (loss * p_bad_to_good / (1.0 - loss)).min(1.0);
        Self {
            p_good_to_bad,
            p_bad_to_good,
            good_loss: 0.0,
            bad_loss: 1.0,
        }
    }
}

/// Default queue behind a bandwidth cap.
pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024;

/// One direction of an impaired path.
#[derive(Debug)]
pub struct Link {
    rng: SmallRng,
    in_bad_state: bool,
    /// When the cap's "wire" is free again.
    wire_free_at: Option<Instant>,
    /// Latest delivery time handed out, to keep order when reordering is off.
    last_delivery: Option<Instant>,
}

/// What happens to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered at this instant.
    Deliver(Instant),
    /// Lost (randomly, in a burst, to a full queue, or to a cut).
    Drop,
}

impl Link {
    /// A link whose randomness comes from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            in_bad_state: false,
            wire_free_at: None,
            last_delivery: None,
        }
    }

    /// The fate of a `len`-byte packet sent at `now` under `settings`.
    pub fn on_packet(&mut self, settings: &LinkSettings, now: Instant, len: usize) -> Fate {
        if settings.down || self.lost(settings) {
            return Fate::Drop;
        }
        let mut leaves_wire = now;
        if let Some(cap) = settings.cap_bps.filter(|c| *c > 0) {
            let start = self.wire_free_at.map_or(now, |free| free.max(now));
            let queued = start.saturating_duration_since(now);
            let queue_limit = settings.queue_bytes.unwrap_or(DEFAULT_QUEUE_BYTES);
            // Bytes already waiting ahead of this packet, at the cap's rate.
            let queued_bytes = (queued.as_secs_f64() * cap as f64 / 8.0) as usize;
            if queued_bytes + len > queue_limit {
                return Fate::Drop;
            }
            let serialization = Duration::from_secs_f64(len as f64 * 8.0 / cap as f64);
            leaves_wire = start + serialization;
            self.wire_free_at = Some(leaves_wire);
        }
        let jitter = if settings.jitter.is_zero() {
            Duration::ZERO
        } else {
            settings.jitter.mul_f64(self.rng.random::<f64>())
        };
        let mut at = leaves_wire + settings.delay + jitter;
        if !settings.reorder {
            if let Some(last) = self.last_delivery {
                at = at.max(last);
            }
        }
        self.last_delivery = Some(self.last_delivery.map_or(at, |last| last.max(at)));
        Fate::Deliver(at)
    }

    fn lost(&mut self, settings: &LinkSettings) -> bool {
        match &settings.burst {
            Some(burst) => {
                let switch = if self.in_bad_state {
                    burst.p_bad_to_good
                } else {
                    burst.p_good_to_bad
                };
                if self.rng.random::<f64>() < switch {
                    self.in_bad_state = !self.in_bad_state;
                }
                let loss = if self.in_bad_state {
                    burst.bad_loss
                } else {
                    burst.good_loss
                };
                self.rng.random::<f64>() < loss
            }
            None => settings.loss > 0.0 && self.rng.random::<f64>() < settings.loss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(link: &mut Link, settings: &LinkSettings, n: usize) -> usize {
        let now = Instant::now();
        (0..n)
            .filter(|_| matches!(link.on_packet(settings, now, 100), Fate::Deliver(_)))
            .count()
    }

    #[test]
    fn random_loss_matches_its_rate() {
        let settings = LinkSettings {
            loss: 0.3,
            ..LinkSettings::default()
        };
        let got = delivered(&mut Link::new(7), &settings, 20_000);
        assert!(
            (13_600..14_400).contains(&got),
            "{got} of 20000 delivered at 30% loss"
        );
    }

    #[test]
    fn burst_loss_has_its_average_rate_in_runs() {
        let settings = LinkSettings {
            burst: Some(BurstLoss::with_mean(0.2, 5.0)),
            ..LinkSettings::default()
        };
        let mut link = Link::new(3);
        let now = Instant::now();
        let fates: Vec<bool> = (0..50_000)
            .map(|_| link.on_packet(&settings, now, 100) == Fate::Drop)
            .collect();
        let lost = fates.iter().filter(|l| **l).count() as f64 / fates.len() as f64;
        assert!((0.17..0.23).contains(&lost), "average loss {lost}");
        let bursts = fates.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
        let mean_burst = fates.iter().filter(|l| **l).count() as f64 / bursts;
        assert!((4.0..6.0).contains(&mean_burst), "mean burst {mean_burst}");
    }

    #[test]
    fn a_cap_paces_packets_and_drops_when_its_queue_is_full() {
        let settings = LinkSettings {
            cap_bps: Some(800_000), // 100 bytes per ms
            queue_bytes: Some(1_000),
            ..LinkSettings::default()
        };
        let mut link = Link::new(1);
        let now = Instant::now();
        let first = link.on_packet(&settings, now, 1_000);
        assert_eq!(first, Fate::Deliver(now + Duration::from_millis(10)));
        // The queue holds ~1000 bytes ahead now: the next 1000-byte packet does not fit.
        assert_eq!(link.on_packet(&settings, now, 1_000), Fate::Drop);
        // Once the wire has drained, packets flow again.
        let later = now + Duration::from_millis(10);
        assert_eq!(
            link.on_packet(&settings, later, 500),
            Fate::Deliver(later + Duration::from_millis(5))
        );
    }

    #[test]
    fn delay_and_jitter_keep_order_unless_reordering_is_allowed() {
        let mut settings = LinkSettings {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(40),
            ..LinkSettings::default()
        };
        let mut link = Link::new(9);
        let now = Instant::now();
        let times: Vec<Instant> = (0..200)
            .map(
                |i| match link.on_packet(&settings, now + Duration::from_millis(i), 100) {
                    Fate::Deliver(at) => at,
                    Fate::Drop => unreachable!("no loss configured"),
                },
            )
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order");
        assert!(times[0] >= now + Duration::from_millis(50));
        settings.reorder = true;
        let mut link = Link::new(9);
        let times: Vec<Instant> = (0..200)
            .map(
                |i| match link.on_packet(&settings, now + Duration::from_millis(i), 100) {
                    Fate::Deliver(at) => at,
                    Fate::Drop => unreachable!("no loss configured"),
                },
            )
            .collect();
        assert!(times.windows(2).any(|w| w[0] > w[1]), "some reordering");
    }

    #[test]
    fn a_cut_drops_everything() {
        let settings = LinkSettings {
            down: true,
            ..LinkSettings::default()
        };
        assert_eq!(delivered(&mut Link::new(1), &settings, 100), 0);
    }
}
