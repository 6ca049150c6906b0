//! When and how often a room rejoins after losing its session: the decisions, apart from the
//! rejoining itself, so they are tested with virtual time.

use std::time::{Duration, Instant};

use aula_protocol::signal::LeaveReason;
use aula_protocol::ErrorCode;

use super::DisconnectReason;

/// The first wait between failed rejoins.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between failed rejoins.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// What to do after a rejoin attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Try again after this long.
    After(Duration),
    /// Stop: the room is over for this client.
    GiveUp,
}

/// One outage's rejoin schedule: exponential backoff from [`FIRST_RETRY_DELAY`] to
/// [`MAX_RETRY_DELAY`], within a window that starts when the session was lost.
#[derive(Clone, Debug)]
pub struct ReconnectPolicy {
    deadline: Instant,
    delay: Duration,
}

impl ReconnectPolicy {
    /// Whether a session that ended for `reason` is worth rejoining (when the app allows it):
    /// a lost connection or a server going away, yes; leaving, a removal, a refusal at the
    /// lobby, the end of the class or a newer session of the same identity, no.
    pub fn is_recoverable(reason: DisconnectReason) -> bool {
        matches!(
            reason,
            DisconnectReason::ConnectionLost
                | DisconnectReason::ServerRequest(LeaveReason::ServerShutdown)
                | DisconnectReason::ServerRequest(LeaveReason::ConnectionLost)
        )
    }

    /// A schedule for an outage that began at `lost_at`, giving up after `window`.
    pub fn new(lost_at: Instant, window: Duration) -> Self {
        Self {
            deadline: lost_at + window,
            delay: FIRST_RETRY_DELAY,
        }
    }

    /// A rejoin attempt failed at `now`: the server refused it with `refused` (its error
    /// code), or it failed otherwise (`None`: unreachable, timed out). Refusals that retrying
    /// cannot change end the room: a bad or expired token, another room, a removal, a lock.
    pub fn after_failure(&mut self, refused: Option<ErrorCode>, now: Instant) -> Retry {
        if refused.is_some_and(|code| {
            matches!(
                code,
                ErrorCode::InvalidToken
                    | ErrorCode::TokenExpired
                    | ErrorCode::RoomMismatch
                    | ErrorCode::Removed
                    | ErrorCode::RoomLocked
            )
        }) {
            return Retry::GiveUp;
        }
        if now + self.delay > self.deadline {
            return Retry::GiveUp;
        }
        let wait = self.delay;
        self.delay = (self.delay * 2).min(MAX_RETRY_DELAY);
        Retry::After(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lost_connections_and_draining_servers_are_rejoined() {
        assert!(ReconnectPolicy::is_recoverable(
            DisconnectReason::ConnectionLost
        ));
        assert!(ReconnectPolicy::is_recoverable(
            DisconnectReason::ServerRequest(LeaveReason::ServerShutdown)
        ));
        for reason in [
            LeaveReason::ClientRequest,
            LeaveReason::DuplicateIdentity,
            LeaveReason::Removed,
            LeaveReason::Denied,
            LeaveReason::ClassEnded,
            LeaveReason::Unknown,
        ] {
            assert!(
                !ReconnectPolicy::is_recoverable(DisconnectReason::ServerRequest(reason)),
                "{reason:?}"
            );
        }
        assert!(!ReconnectPolicy::is_recoverable(
            DisconnectReason::ClientRequest
        ));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_stops_at_the_window() {
        let start = Instant::now();
        let mut policy = ReconnectPolicy::new(start, Duration::from_secs(10));
        let mut now = start;
        let mut waits = Vec::new();
        while let Retry::After(wait) = policy.after_failure(None, now) {
            waits.push(wait);
            now += wait;
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(&ms[..6], &[100, 200, 400, 800, 1600, 2000]);
        assert!(ms[6..].iter().all(|&w| w == 2000));
        let total: Duration = waits.iter().sum();
        assert!(total <= Duration::from_secs(10), "{total:?}");
        assert!(total > Duration::from_secs(8), "{total:?}");
    }

    #[test]
    fn refusals_that_retrying_cannot_change_end_it_at_once() {
        let start = Instant::now();
        for code in [
            ErrorCode::Removed,
            ErrorCode::RoomLocked,
            ErrorCode::TokenExpired,
            ErrorCode::InvalidToken,
        ] {
            let mut policy = ReconnectPolicy::new(start, Duration::from_secs(30));
            assert_eq!(policy.after_failure(Some(code), start), Retry::GiveUp);
        }
        // A full room or a draining server may change: retry.
        let mut policy = ReconnectPolicy::new(start, Duration::from_secs(30));
        assert!(matches!(
            policy.after_failure(Some(ErrorCode::ServerFull), start),
            Retry::After(_)
        ));
    }
}
