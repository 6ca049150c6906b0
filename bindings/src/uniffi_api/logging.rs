//! Log level and log callback: a tracing layer forwarding the SDK's logs to the app.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Once, RwLock};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Nothing is logged.
    Off,
    /// Failures.
    Error,
    /// Suspicious conditions.
    Warn,
    /// Milestones (joins, publications).
    Info,
    /// Details.
    Debug,
    /// Everything.
    Trace,
}

/// Receives the SDK's log lines, on whichever thread logged them: return quickly.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    /// One log line: level, origin (module path) and message with its fields.
    fn on_log(&self, level: LogLevel, target: String, message: String);
}

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Warn as u8);
static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);
static INSTALL: Once = Once::new();

fn level_of(meta: &Metadata<'_>) -> LogLevel {
    match *meta.level() {
        tracing::Level::ERROR => LogLevel::Error,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::DEBUG => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

fn current_level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// The layer forwarding events at or above the set level to the sink.
struct ForwardLayer;

impl<S: Subscriber> Layer<S> for ForwardLayer {
    fn register_callsite(&self, _meta: &'static Metadata<'static>) -> Interest {
        // The level changes at run time: decide per event.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        (level_of(meta) as u8) <= current_level()
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(sink) = sink else {
            return;
        };
        // A dependency's `log` record arrives as an event of the `log` target with the record's
        // own target, module and place as fields: report it under its own target instead.
        let normalized = event.normalized_metadata();
        let mut visitor = MessageVisitor {
            text: String::new(),
            from_log: normalized.is_some(),
        };
        event.record(&mut visitor);
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        // A sink that throws loses that line; logging its failure would only call it again.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sink.on_log(level_of(meta), meta.target().to_owned(), visitor.text)
        }));
    }
}

/// Renders an event as `message key=value ...`.
struct MessageVisitor {
    text: String,
    /// The event is a `log` record: leave out the `log.*` fields carrying its metadata.
    from_log: bool,
}

impl MessageVisitor {
    fn skips(&self, field: &Field) -> bool {
        self.from_log && field.name().starts_with("log.")
    }
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.skips(field) {
            return;
        }
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.text);
            let _ = write!(self.text, "{value:?}{fields}");
        } else {
            let _ = write!(self.text, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.skips(field) {
            return;
        }
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.text);
            let _ = write!(self.text, "{value}{fields}");
        } else {
            let _ = write!(self.text, " {}={value}", field.name());
        }
    }
}

/// Installs the forwarding layer as the process's tracing subscriber, once. When the app
/// already installed its own subscriber, that one keeps receiving the logs instead.
fn install() {
    INSTALL.call_once(|| {
        if tracing_subscriber::registry()
            .with(ForwardLayer)
            .try_init()
            .is_err()
        {
            tracing::debug!("a tracing subscriber was already installed; logs stay there");
        }
    });
}

/// Sets the most detailed level forwarded to the log sink (default: warn).
#[uniffi::export]
pub fn set_log_level(level: LogLevel) {
    install();
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Sets (or with `None` removes) the function receiving the SDK's log lines.
#[uniffi::export]
pub fn set_log_sink(sink: Option<Arc<dyn LogSink>>) {
    install();
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Lines(Mutex<Vec<(LogLevel, String, String)>>);

    impl LogSink for Lines {
        fn on_log(&self, level: LogLevel, target: String, message: String) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((level, target, message));
        }
    }

    /// The one test of the process-wide logger (others would race on its level and sink).
    #[test]
    fn tracing_events_and_log_records_reach_the_sink_at_the_set_level() {
        let lines = Arc::new(Lines::default());
        set_log_sink(Some(lines.clone()));
        set_log_level(LogLevel::Info);
        tracing::info!(target: "aula_test", answer = 42, "from tracing");
        tracing::debug!(target: "aula_test", "tracing, too detailed");
        // What dependencies such as webrtc-rs do: they log through the `log` crate.
        log::warn!(target: "a_dependency", "from log");
        log::debug!(target: "a_dependency", "log, too detailed");
        set_log_sink(None);
        set_log_level(LogLevel::Warn);
        let lines = lines.0.lock().unwrap_or_else(|p| p.into_inner());
        assert!(
            lines.contains(&(
                LogLevel::Info,
                "aula_test".into(),
                "from tracing answer=42".into()
            )),
            "{lines:?}"
        );
        assert!(
            lines.contains(&(LogLevel::Warn, "a_dependency".into(), "from log".into())),
            "{lines:?}"
        );
        assert!(
            !lines.iter().any(|(_, _, m)| m.contains("too detailed")),
            "{lines:?}"
        );
    }
}
