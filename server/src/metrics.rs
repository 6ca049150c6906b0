//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.

use std::sync::atomic::{AtomicU64, Ordering};

use aula_transport::fec::FecStats;
use aula_transport::nack::NackStats;

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

/// Labels of counters by a free-form reason or class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why (or of which class), in snake_case.
    pub reason: String,
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
    /// Subscribers' downlink estimates, bit/s, sampled every allocation round (250 ms).
    pub downlink_estimate: Histogram,
    /// Simulcast layer changes for subscribers, by direction (`up`, `down`).
    pub layer_switches: Family<DirectionLabel, Counter>,
    /// Packets found missing on publishers' uplinks.
    pub uplink_holes: Counter,
    /// Of those, packets repaired (retransmitted, rebuilt from FEC or late).
    pub uplink_repaired: Counter,
    /// Of those, packets rebuilt from FEC.
    pub uplink_fec_recovered: Counter,
    /// Of those, packets given up on.
    pub uplink_abandoned: Counter,
    /// FEC repair packets sent to subscribers.
    pub fec_repair_packets: Counter,
    /// Tasks alive on the async runtime that renders the metrics (the server's own, in the
    /// `aula-server` binary), read when the metrics are rendered.
    pub runtime_alive_tasks: Gauge,
    /// Worker threads of that runtime, read when the metrics are rendered.
    pub runtime_workers: Gauge,
    /// Sessions closed because their signaling queue overflowed (the client did not read).
    pub slow_client_disconnects: Counter,
    /// Whiteboard frames not queued for a slow reader, by class (`presence`, `document`).
    pub whiteboard_shed: Family<ReasonLabel, Counter>,
    /// Slow whiteboard readers brought up to date after their queue drained.
    pub whiteboard_resyncs: Counter,
    /// Whiteboard frames refused, by error code.
    pub whiteboard_refusals: Family<CodeLabel, Counter>,
    /// Arriving tracks refused because their media kind contradicts the announced source.
    pub track_kind_mismatches: Counter,
    /// HTTP connections accepted and not (yet) upgraded to a WebSocket.
    pub http_pending_connections: Gauge,
    /// HTTP connections the server closed before an upgrade, by reason (`evicted`, `timeout`).
    pub http_closed: Family<ReasonLabel, Counter>,
    transport: std::sync::Mutex<TransportTally>,
}

/// The loss-recovery and FEC counters of the server's connections, folded into the metrics
/// when they are rendered: live connections' counters plus what closed ones had counted.
#[derive(Default)]
struct TransportTally {
    uplinks: Vec<std::sync::Weak<NackStats>>,
    downlinks: Vec<std::sync::Weak<FecStats>>,
    closed: [u64; 5],
}

impl TransportTally {
    /// Holes, repaired, FEC-recovered, abandoned (uplinks) and repair packets sent (downlinks).
    fn totals(&self) -> [u64; 5] {
        let mut totals = self.closed;
        for stats in self.uplinks.iter().filter_map(std::sync::Weak::upgrade) {
            let add = uplink_counts(&stats);
            for (total, add) in totals.iter_mut().zip(add) {
                *total += add;
            }
        }
        for stats in self.downlinks.iter().filter_map(std::sync::Weak::upgrade) {
            totals[4] += stats.repair_packets.load(Ordering::Relaxed);
        }
        totals
    }
}

fn uplink_counts(stats: &NackStats) -> [u64; 5] {
    [
        stats.holes.load(Ordering::Relaxed),
        stats.repaired.load(Ordering::Relaxed),
        stats.fec_recovered.load(Ordering::Relaxed),
        stats.abandoned.load(Ordering::Relaxed),
        0,
    ]
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
            // 100 kbit/s to about 25 Mbit/s.
            downlink_estimate: Histogram::new(exponential_buckets(100_000.0, 1.5, 14)),
            layer_switches: Family::default(),
            uplink_holes: Counter::default(),
            uplink_repaired: Counter::default(),
            uplink_fec_recovered: Counter::default(),
            uplink_abandoned: Counter::default(),
            fec_repair_packets: Counter::default(),
            runtime_alive_tasks: Gauge::default(),
            runtime_workers: Gauge::default(),
            slow_client_disconnects: Counter::default(),
            whiteboard_shed: Family::default(),
            whiteboard_resyncs: Counter::default(),
            whiteboard_refusals: Family::default(),
            track_kind_mismatches: Counter::default(),
            http_pending_connections: Gauge::default(),
            http_closed: Family::default(),
            transport: std::sync::Mutex::default(),
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
        registry.register(
            "downlink_estimate_bps",
            "Subscribers' downlink bandwidth estimates, sampled every 250 ms",
            metrics.downlink_estimate.clone(),
        );
        registry.register(
            "layer_switches",
            "Simulcast layer changes chosen for subscribers, by direction",
            metrics.layer_switches.clone(),
        );
        registry.register(
            "uplink_lost_packets",
            "Packets found missing on publishers' uplinks",
            metrics.uplink_holes.clone(),
        );
        registry.register(
            "uplink_repaired_packets",
            "Packets missing on publishers' uplinks that were repaired (retransmission, FEC or late)",
            metrics.uplink_repaired.clone(),
        );
        registry.register(
            "uplink_fec_recovered_packets",
            "Packets on publishers' uplinks rebuilt from FEC",
            metrics.uplink_fec_recovered.clone(),
        );
        registry.register(
            "uplink_abandoned_packets",
            "Packets missing on publishers' uplinks that were given up on",
            metrics.uplink_abandoned.clone(),
        );
        registry.register(
            "fec_repair_packets",
            "FEC repair packets sent to subscribers",
            metrics.fec_repair_packets.clone(),
        );
        registry.register(
            "runtime_alive_tasks",
            "Tasks alive on the server's async runtime (a count that keeps growing while the number of sessions does not is a leak)",
            metrics.runtime_alive_tasks.clone(),
        );
        registry.register(
            "runtime_workers",
            "Worker threads of the server's async runtime",
            metrics.runtime_workers.clone(),
        );
        registry.register(
            "slow_client_disconnects",
            "Sessions closed because the client did not read its signaling messages",
            metrics.slow_client_disconnects.clone(),
        );
        registry.register(
            "whiteboard_shed_frames",
            "Whiteboard frames not queued for a slow reader, by class (presence first, then document updates, which a resync replaces)",
            metrics.whiteboard_shed.clone(),
        );
        registry.register(
            "whiteboard_resyncs",
            "Slow whiteboard readers sent what they missed once their queue drained",
            metrics.whiteboard_resyncs.clone(),
        );
        registry.register(
            "whiteboard_refusals",
            "Whiteboard frames refused, by error code",
            metrics.whiteboard_refusals.clone(),
        );
        registry.register(
            "track_kind_mismatches",
            "Arriving tracks refused because their media kind contradicts the announced source",
            metrics.track_kind_mismatches.clone(),
        );
        registry.register(
            "http_pending_connections",
            "HTTP connections accepted and not upgraded to a WebSocket",
            metrics.http_pending_connections.clone(),
        );
        registry.register(
            "http_closed_connections",
            "HTTP connections closed by the server before an upgrade, by reason",
            metrics.http_closed.clone(),
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

    /// Counts whiteboard frames not queued for a slow reader.
    pub fn whiteboard_shed(&self, class: &str) {
        self.whiteboard_shed
            .get_or_create(&ReasonLabel {
                reason: class.to_owned(),
            })
            .inc();
    }

    /// Counts a refused whiteboard frame.
    pub fn whiteboard_refusal(&self, code: &str) {
        self.whiteboard_refusals
            .get_or_create(&CodeLabel {
                code: code.to_owned(),
            })
            .inc();
    }

    /// Counts an HTTP connection closed before an upgrade.
    pub fn http_closed(&self, reason: &str) {
        self.http_closed
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a webhook delivery outcome.
    pub fn webhook_delivery(&self, result: &str) {
        self.webhook_deliveries
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts what a publisher connection's loss recovery does.
    pub fn watch_uplink(&self, stats: &std::sync::Arc<NackStats>) {
        self.tally().uplinks.push(std::sync::Arc::downgrade(stats));
    }

    /// Counts the FEC a subscriber connection sends.
    pub fn watch_downlink(&self, stats: &std::sync::Arc<FecStats>) {
        self.tally()
            .downlinks
            .push(std::sync::Arc::downgrade(stats));
    }

    /// A connection closed: keeps what it counted, and stops watching it.
    pub fn connection_closed(
        &self,
        uplink: Option<&std::sync::Arc<NackStats>>,
        downlink: Option<&std::sync::Arc<FecStats>>,
    ) {
        let mut tally = self.tally();
        if let Some(stats) = uplink {
            for (closed, add) in tally.closed.iter_mut().zip(uplink_counts(stats)) {
                *closed += add;
            }
            let gone = std::sync::Arc::as_ptr(stats);
            tally
                .uplinks
                .retain(|w| w.strong_count() > 0 && w.as_ptr() != gone);
        }
        if let Some(stats) = downlink {
            tally.closed[4] += stats.repair_packets.load(Ordering::Relaxed);
            let gone = std::sync::Arc::as_ptr(stats);
            tally
                .downlinks
                .retain(|w| w.strong_count() > 0 && w.as_ptr() != gone);
        }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, TransportTally> {
        self.transport
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the calling async runtime's task and worker counts into their gauges (left as
    /// they were outside a runtime).
    fn sample_runtime(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let runtime = runtime.metrics();
        self.runtime_alive_tasks
            .set(i64::try_from(runtime.num_alive_tasks()).unwrap_or(i64::MAX));
        self.runtime_workers
            .set(i64::try_from(runtime.num_workers()).unwrap_or(i64::MAX));
    }

    /// The text exposition of every metric. Called on the server's runtime, it also reads that
    /// runtime's task and worker counts.
    pub fn render(&self) -> String {
        self.sample_runtime();
        let totals = self.tally().totals();
        let counters = [
            &self.uplink_holes,
            &self.uplink_repaired,
            &self.uplink_fec_recovered,
            &self.uplink_abandoned,
            &self.fec_repair_packets,
        ];
        for (counter, total) in counters.into_iter().zip(totals) {
            // Totals only grow (closed connections' counts are kept).
            counter.inc_by(total.saturating_sub(counter.get()));
        }
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

    #[test]
    fn counts_the_runtime_tasks_alive_when_rendered() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let metrics = Metrics::default();
        let alive = |text: &str| -> i64 {
            text.lines()
                .find_map(|l| l.strip_prefix("aula_runtime_alive_tasks "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no task gauge in {text}"))
        };
        runtime.block_on(async {
            let before = alive(&metrics.render());
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let parked: Vec<_> = (0..10)
                .map(|_| {
                    let mut stopped = stopped.clone();
                    tokio::spawn(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                })
                .collect();
            let text = metrics.render();
            assert_eq!(alive(&text), before + 10, "{text}");
            assert!(text.contains("aula_runtime_workers 2"), "{text}");
            stop.send(true).unwrap();
            for task in parked {
                task.await.unwrap();
            }
            assert_eq!(alive(&metrics.render()), before);
        });
    }
}
