//! How the tests of this one binary share its process. Every test holds [`shared`] (or
//! [`shared_blocking`]) for its whole run, so they run side by side as the harness schedules
//! them. A test that measures time on the media path (frame rates, freezes, queueing delay,
//! real-time audio) or that changes the process environment holds [`exclusive`] instead: it
//! waits for the running tests to finish, and no other test starts until it is done. (The lock
//! is fair: a waiting exclusive test is not overtaken by tests that ask after it.)

use std::ffi::OsString;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static PROCESS: RwLock<()> = RwLock::const_new(());

/// Held by a test that shares the process with others.
#[must_use = "the test shares the process only while it holds this"]
pub struct Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>);

/// Held by a test that runs alone in the process.
#[must_use = "the test runs alone only while it holds this"]
pub struct Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>);

/// Waits until no exclusive test runs, then shares the process.
pub async fn shared() -> Shared {
    Shared(PROCESS.read().await)
}

/// [`shared`], for a test that is not async.
pub fn shared_blocking() -> Shared {
    Shared(PROCESS.blocking_read())
}

/// Waits until every other test is done, then runs alone.
pub async fn exclusive() -> Exclusive {
    Exclusive(PROCESS.write().await)
}

/// [`exclusive`], for a test that is not async.
pub fn exclusive_blocking() -> Exclusive {
    Exclusive(PROCESS.blocking_write())
}

impl Exclusive {
    /// Sets (`Some`) or removes (`None`) environment variables until the returned value is
    /// dropped, which restores them. Only a test that runs alone may change the environment:
    /// other tests read it (their child processes inherit it, and C libraries read it without
    /// the lock the standard library takes), and the value borrows this lock so that it is
    /// restored before the lock is released.
    pub fn set_env(&self, changes: &[(&'static str, Option<&str>)]) -> EnvOverride<'_> {
        let saved = changes
            .iter()
            .map(|&(name, value)| {
                let before = std::env::var_os(name);
                match value {
                    Some(value) => std::env::set_var(name, value),
                    None => std::env::remove_var(name),
                }
                (name, before)
            })
            .collect();
        EnvOverride { saved, _lock: self }
    }
}

/// Environment variables changed by [`Exclusive::set_env`]; restored when dropped.
pub struct EnvOverride<'a> {
    saved: Vec<(&'static str, Option<OsString>)>,
    _lock: &'a Exclusive,
}

impl Drop for EnvOverride<'_> {
    fn drop(&mut self) {
        for (name, before) in self.saved.drain(..).rev() {
            match before {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
    }
}
