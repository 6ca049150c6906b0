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
