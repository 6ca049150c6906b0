//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
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

/// Labels of per-outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// The outcome (`delivered`, `failed`, `dropped`).
    pub result: String,
}

/// Labels of per-direction counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `from_subscribers` or `to_publishers`.
    pub direction: String,
}

/// Labels of per-message-type metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabel {
    /// The signaling message's `type` (`publisher_offer`, ...).
    pub message: String,
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
    /// Webhook deliveries, by outcome.
    pub webhook_deliveries: Family<ResultLabel, Counter>,
    /// Packets asked for again by NACK, by direction.
    pub nacked: Family<DirectionLabel, Counter>,
    /// Loss fraction in subscribers' receiver reports (0 to 1), one sample per report block.
    pub subscriber_reported_loss: Histogram,
    /// Time from receiving a signaling request to having answered it, by message type.
    pub signaling_latency: Family<MessageLabel, Histogram>,
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
            webhook_deliveries: Family::default(),
            nacked: Family::default(),
            subscriber_reported_loss: Histogram::new([
                0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0,
            ]),
            signaling_latency: Family::new_with_constructor(|| {
                // 100 µs to about 3 s.
                Histogram::new(exponential_buckets(0.0001, 2.0, 16))
            }),
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
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries, by outcome (delivered, failed after retries, dropped on a full queue)",
            metrics.webhook_deliveries.clone(),
        );
        registry.register(
            "nacked_packets",
            "Packets asked for again by NACK: by subscribers from the server, by the server from publishers",
            metrics.nacked.clone(),
        );
        registry.register(
            "subscriber_reported_loss",
            "Loss fraction subscribers report in RTCP receiver reports",
            metrics.subscriber_reported_loss.clone(),
        );
        registry.register(
            "signaling_latency_seconds",
            "Time from receiving a signaling request to having answered it, by message type",
            metrics.signaling_latency.clone(),
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

    /// The NACK counter for `direction` (`from_subscribers` or `to_publishers`).
    pub fn nacked_packets(&self, direction: &str) -> Counter {
        self.nacked
            .get_or_create(&DirectionLabel {
                direction: direction.to_owned(),
            })
            .clone()
    }

    /// Records how long a signaling request of type `message` took to handle.
    pub fn signaling_handled(&self, message: &str, took: std::time::Duration) {
        self.signaling_latency
            .get_or_create(&MessageLabel {
                message: message.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a webhook delivery outcome.
    pub fn webhook_delivery(&self, result: &str) {
        self.webhook_deliveries
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
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
