//! Enforcing [`Limits`](crate::config::Limits): per-connection message rates and per-IP
//! connection counts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token bucket: `rate` messages per second on average, bursts of up to `burst`.
#[derive(Clone, Debug)]
pub struct MessageRate {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl MessageRate {
    /// A full bucket at `now`.
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Whether a message arriving at `now` is within the rate; takes a token if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts open signaling connections per IP address.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max_per_ip: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection; dropping it frees its slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionLimiter {
    /// A limiter admitting `max_per_ip` connections per address.
    pub fn new(max_per_ip: usize) -> Self {
        Self {
            max_per_ip,
            open: Arc::default(),
        }
    }

    /// A permit for a new connection from `ip`, or `None` when that address has too many.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnectionPermit> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(ConnectionPermit {
            ip,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Messages a connection may send before `join`, on average per second: a client sends one
/// `join` (perhaps after a ping); anything faster is a flood.
pub const PRE_JOIN_MESSAGES_PER_SECOND: u32 = 2;
/// Messages a connection may send at once before `join`.
pub const PRE_JOIN_BURST: u32 = 8;
/// Messages over the pre-join rate after which the connection is closed.
pub const PRE_JOIN_MAX_DROPPED: u32 = 64;

/// What to do with a message that arrives before `join`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreJoinVerdict {
    /// Within the rate: handle it.
    Handle,
    /// Over the rate for the first time in a row: drop it and say so (`rate_limited`).
    RefuseOnce,
    /// Over the rate again: drop it without a reply, so a flood earns no replies.
    Drop,
    /// The connection keeps flooding: close it.
    Close,
}

/// The pre-join rate limit of one connection: a small token bucket; of a run of messages over
/// it, only the first gets a reply, and too many close the connection.
#[derive(Debug)]
pub struct PreJoinGate {
    rate: MessageRate,
    dropped: u32,
    refusing: bool,
}

impl PreJoinGate {
    /// A gate for a connection opened at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            rate: MessageRate::new(PRE_JOIN_MESSAGES_PER_SECOND, PRE_JOIN_BURST, now),
            dropped: 0,
            refusing: false,
        }
    }

    /// Judges a message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> PreJoinVerdict {
        if self.rate.allow(now) {
            self.refusing = false;
            return PreJoinVerdict::Handle;
        }
        self.dropped += 1;
        if self.dropped > PRE_JOIN_MAX_DROPPED {
            PreJoinVerdict::Close
        } else if std::mem::replace(&mut self.refusing, true) {
            PreJoinVerdict::Drop
        } else {
            PreJoinVerdict::RefuseOnce
        }
    }
}

/// What the session does with a message that arrived before `join`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreJoinStep {
    /// Handle it.
    Handle,
    /// Skip it (already answered, or answered by silence).
    Skip,
    /// Close the connection.
    Close,
}

impl PreJoinGate {
    /// Judges a message arriving at `now` and sends the one `rate_limited` reply of a run to
    /// `outbox`.
    pub fn admit(&mut self, now: Instant, outbox: &crate::outbox::Outbox) -> PreJoinStep {
        match self.check(now) {
            PreJoinVerdict::Handle => PreJoinStep::Handle,
            PreJoinVerdict::RefuseOnce => {
                outbox.send(aula_protocol::ServerMessage::error(
                    None,
                    aula_protocol::ErrorCode::RateLimited,
                    "too many messages before join; they are dropped without replies",
                ));
                PreJoinStep::Skip
            }
            PreJoinVerdict::Drop => PreJoinStep::Skip,
            PreJoinVerdict::Close => {
                tracing::info!("connection closed: it flooded messages before joining");
                PreJoinStep::Close
            }
        }
    }
}

/// The burst a connection may send at once: two seconds' worth.
pub fn burst_for(per_second: u32) -> u32 {
    per_second.saturating_mul(2)
}

/// How long after the last message a bucket is full again (for docs and tests).
pub fn refill_time(per_second: u32, burst: u32) -> Duration {
    Duration::from_secs_f64(f64::from(burst) / f64::from(per_second.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_pass_then_the_rate_holds() {
        let start = Instant::now();
        let mut rate = MessageRate::new(10, 20, start);
        assert!((0..20).all(|_| rate.allow(start)), "a full burst passes");
        assert!(!rate.allow(start), "the 21st at once does not");
        assert!(
            rate.allow(start + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!rate.allow(start + Duration::from_millis(150)));
        let later = start + refill_time(10, 20) + Duration::from_secs(1);
        assert!(
            (0..20).all(|_| rate.allow(later)),
            "the bucket refills, capped at the burst"
        );
        assert!(!rate.allow(later));
    }

    #[test]
    fn a_pre_join_flood_gets_one_reply_then_silence_then_the_door() {
        let start = Instant::now();
        let mut gate = PreJoinGate::new(start);
        let verdicts: Vec<PreJoinVerdict> = (0..5_000).map(|_| gate.check(start)).collect();
        let count = |v: PreJoinVerdict| verdicts.iter().filter(|&&x| x == v).count();
        assert_eq!(count(PreJoinVerdict::Handle), PRE_JOIN_BURST as usize);
        assert_eq!(
            count(PreJoinVerdict::RefuseOnce),
            1,
            "one reply for the run"
        );
        assert_eq!(
            verdicts[PRE_JOIN_BURST as usize],
            PreJoinVerdict::RefuseOnce
        );
        let closed_at = verdicts
            .iter()
            .position(|&v| v == PreJoinVerdict::Close)
            .expect("a flood closes the connection");
        assert_eq!(closed_at, (PRE_JOIN_BURST + PRE_JOIN_MAX_DROPPED) as usize);
    }

    #[test]
    fn a_slow_client_before_join_is_never_refused() {
        let start = Instant::now();
        let mut gate = PreJoinGate::new(start);
        for i in 0..100u64 {
            let now = start + Duration::from_millis(500 * i);
            assert_eq!(gate.check(now), PreJoinVerdict::Handle, "message {i}");
        }
    }

    #[test]
    fn a_new_run_over_the_rate_is_reported_again() {
        let start = Instant::now();
        let mut gate = PreJoinGate::new(start);
        for _ in 0..PRE_JOIN_BURST {
            assert_eq!(gate.check(start), PreJoinVerdict::Handle);
        }
        assert_eq!(gate.check(start), PreJoinVerdict::RefuseOnce);
        assert_eq!(gate.check(start), PreJoinVerdict::Drop);
        let later = start + Duration::from_secs(1);
        assert_eq!(gate.check(later), PreJoinVerdict::Handle);
        assert_eq!(gate.check(later), PreJoinVerdict::Handle);
        assert_eq!(gate.check(later), PreJoinVerdict::RefuseOnce);
    }

    #[test]
    fn connections_per_ip_are_capped_and_freed_on_drop() {
        let limiter = ConnectionLimiter::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limiter.admit(a).unwrap();
        let _second = limiter.admit(a).unwrap();
        assert!(limiter.admit(a).is_none());
        assert!(
            limiter.admit(b).is_some(),
            "other addresses are independent"
        );
        drop(first);
        assert!(limiter.admit(a).is_some());
    }
}
