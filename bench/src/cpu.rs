//! CPU time used, read from Linux's /proc: this process, the calling thread, another process.

use std::time::Duration;

/// Linux reports /proc/PID/stat times in USER_HZ ticks, 100 a second on every architecture
/// Aula runs on.
const USER_HZ: f64 = 100.0;

/// User + system CPU time of process `pid` (`self` for this one), from /proc/PID/stat.
pub fn process_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15, so 11 and 12 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(Duration::from_secs_f64(ticks / USER_HZ))
}

/// CPU time of the calling thread (nanosecond resolution, from /proc/thread-self/schedstat).
pub fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// `cpu` as a percentage of one core over `wall`.
pub fn percent(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let (Some(process), Some(thread)) = (process_cpu("self"), thread_cpu()) else {
            return; // not Linux
        };
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let spent = thread_cpu().unwrap() - thread;
        // Busy for 200 ms of wall time: some of it on a CPU (less on a loaded machine), never
        // more than the wall time.
        assert!(spent >= Duration::from_millis(20), "{spent:?}");
        assert!(
            spent <= start.elapsed() + Duration::from_millis(20),
            "{spent:?}"
        );
        assert!(process_cpu("self").unwrap() >= process);
        assert!((percent(Duration::from_millis(500), Duration::from_secs(1)) - 50.0).abs() < 1e-9);
    }
}
