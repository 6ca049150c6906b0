//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of per-error-code counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The protocol error code (`invalid_token`, ...).
    pub code: String,
}

/// Labels of per-media-kind counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `audio` or `video`.
    pub kind: String,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Open rooms.
    pub rooms: Gauge,
    /// Participants in all rooms.
    pub participants: Gauge,
    /// Tracks being published.
    pub tracks: Gauge,
    /// Joins accepted.
    pub joins: Counter,
    /// Error replies sent, by code (refused joins included).
    pub errors: Family<CodeLabel, Counter>,
    /// RTP packets forwarded to subscribers, by kind.
    pub forwarded_packets: Family<KindLabel, Counter>,
    /// RTP payload bytes forwarded to subscribers, by kind.
    pub forwarded_bytes: Family<KindLabel, Counter<u64, AtomicU64>>,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("aula");
        let metrics = Self {
            rooms: Gauge::default(),
            participants: Gauge::default(),
            tracks: Gauge::default(),
            joins: Counter::default(),
            errors: Family::default(),
            forwarded_packets: Family::default(),
            forwarded_bytes: Family::default(),
            keyframe_requests: Counter::default(),
            // Replaced below, once every metric is registered in `registry`.
            registry: Registry::default(),
        };
        registry.register("rooms", "Open rooms", metrics.rooms.clone());
        registry.register(
            "participants",
            "Participants in all rooms",
            metrics.participants.clone(),
        );
        registry.register("tracks", "Tracks being published", metrics.tracks.clone());
        registry.register("joins", "Joins accepted", metrics.joins.clone());
        registry.register(
            "signal_errors",
            "Error replies sent, by protocol error code",
            metrics.errors.clone(),
        );
        registry.register(
            "forwarded_packets",
            "RTP packets forwarded to subscribers",
            metrics.forwarded_packets.clone(),
        );
        registry.register(
            "forwarded_bytes",
            "RTP payload bytes forwarded to subscribers",
            metrics.forwarded_bytes.clone(),
        );
        registry.register(
            "keyframe_requests",
            "Keyframe requests (PLI) sent to publishers",
            metrics.keyframe_requests.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// Counts an error reply.
    pub fn error(&self, code: aula_protocol::ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.as_str().to_owned(),
            })
            .inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics_with_the_prefix() {
        let metrics = Metrics::default();
        metrics.rooms.set(2);
        metrics.error(aula_protocol::ErrorCode::InvalidToken);
        let text = metrics.render();
        assert!(text.contains("aula_rooms 2"), "{text}");
        assert!(
            text.contains(r#"aula_signal_errors_total{code="invalid_token"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
