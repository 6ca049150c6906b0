//! The wall clock used for capture stamps.
//!
//! Stamps carry capture time as microseconds since the Unix epoch, so a receiver on the same
//! machine (or on machines with synchronized clocks) reads end-to-end latency straight off a
//! decoded frame. Stamps keep the low 48 bits, which wrap every 8.9 years.

/// Bits of capture time a stamp carries.
pub const STAMP_TIME_BITS: u32 = 48;

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Microseconds from a stamped capture time (low 48 bits) to `now_us`, or `None` if the stamp
/// is from the future (clocks out of step).
pub fn micros_since_stamp(stamp_us: u64, now_us: u64) -> Option<u64> {
    let mask = (1u64 << STAMP_TIME_BITS) - 1;
    let elapsed = (now_us & mask).wrapping_sub(stamp_us & mask) & mask;
    // More than a day "ago" in 48-bit arithmetic means the stamp was ahead of our clock.
    (elapsed < 86_400_000_000).then_some(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_survives_the_48_bit_wrap() {
        let wrap = 1u64 << STAMP_TIME_BITS;
        assert_eq!(micros_since_stamp(wrap - 10, wrap + 5), Some(15));
        assert_eq!(micros_since_stamp(1_000, 1_500), Some(500));
        assert_eq!(micros_since_stamp(2_000, 1_000), None);
    }
}
