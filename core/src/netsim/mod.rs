//! Network impairment for tests, benchmarks and `aula join`: loss (random or bursty), delay,
//! jitter, reordering, a bandwidth cap with a queue, and cuts, applied per direction, fixed or
//! changing over time ([`Schedule`]), to a
//! client's media path on its own sockets — no root, no `tc`, works on loopback.

mod model;
mod schedule;
mod socket;

pub use model::{BurstLoss, Fate, Link, LinkSettings, DEFAULT_QUEUE_BYTES};
pub use schedule::{Schedule, ScheduleStep};
pub use socket::{ImpairedRuntime, ImpairedSocket, NetworkImpairment};
