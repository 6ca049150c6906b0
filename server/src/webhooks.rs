//! Webhook delivery: room and participant events POSTed, signed, to the application's backend.
//!
//! Each configured endpoint has its own worker and bounded queue, so a slow or dead endpoint
//! delays only its own deliveries, in order. A delivery is retried with backoff; one that still
//! fails, or finds its queue full, is counted in `aula_webhook_deliveries_total` and logged.
//! The wire format and signature scheme live in [`aula_protocol::webhook`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aula_protocol::webhook::{self, WebhookEvent, WebhookEventKind};
use aula_protocol::{unix_now, RoomInfo};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Events waiting per endpoint before new ones are dropped.
const QUEUE_DEPTH: usize = 1024;
/// Attempts per delivery.
const ATTEMPTS: u32 = 4;
/// Wait before the first retry; doubled after each.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the webhook configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// An endpoint is not an absolute `http://` or `https://` URL.
    #[error("webhook endpoint {url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// The endpoint as configured.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}

/// Checks that every endpoint is an absolute http(s) URL.
pub fn validate_urls(urls: &[String]) -> Result<(), WebhookError> {
    for url in urls {
        let parsed =
            reqwest::Url::parse(url).map_err(|_| WebhookError::BadUrl { url: url.clone() })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(WebhookError::BadUrl { url: url.clone() });
        }
    }
    Ok(())
}

/// The signing identity of deliveries.
#[derive(Clone)]
pub struct SigningKey {
    /// The API key, sent in the key header.
    pub key: String,
    /// Its secret, which keys the MAC.
    pub secret: String,
}

/// Sends events to every configured endpoint. With none configured, events are discarded at
/// once.
pub struct Webhooks {
    endpoints: Vec<mpsc::Sender<Arc<WebhookEvent>>>,
    pending: Arc<AtomicUsize>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Webhooks {
    /// Webhooks that go nowhere.
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self {
            endpoints: Vec::new(),
            pending: Arc::default(),
            next_id: AtomicU64::new(0),
            metrics,
        }
    }

    /// Starts one delivery worker per endpoint on the current runtime.
    pub fn start(
        urls: &[String],
        signing: SigningKey,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WebhookError> {
        validate_urls(urls)?;
        let mut webhooks = Self::disabled(Arc::clone(&metrics));
        if urls.is_empty() {
            return Ok(webhooks);
        }
        // rustls needs a process-wide crypto provider; ring is the one the media stack uses.
        // Installing fails harmlessly when one is already set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("aula-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        for url in urls {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            let worker = Worker {
                url: url.clone(),
                client: client.clone(),
                signing: signing.clone(),
                pending: Arc::clone(&webhooks.pending),
                metrics: Arc::clone(&metrics),
            };
            tokio::spawn(worker.run(rx));
            webhooks.endpoints.push(tx);
        }
        Ok(webhooks)
    }

    /// Queues `kind` in `room` for every endpoint. Never blocks: a full queue drops the event
    /// (counted and logged).
    pub fn emit(&self, room: &RoomInfo, kind: WebhookEventKind) {
        if self.endpoints.is_empty() {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let event = Arc::new(WebhookEvent {
            id: format!("EV_{:x}_{id:08x}", unix_now()),
            created_at: unix_now(),
            room: room.clone(),
            kind,
        });
        for endpoint in &self.endpoints {
            self.pending.fetch_add(1, Ordering::SeqCst);
            if endpoint.try_send(Arc::clone(&event)).is_err() {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                self.metrics.webhook_delivery("dropped");
                tracing::warn!(
                    event = event.kind.name(),
                    "webhook queue full; event dropped"
                );
            }
        }
    }

    /// Waits until every queued event was delivered or given up on, or `limit` passed.
    pub async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Delivers one endpoint's events in order.
struct Worker {
    url: String,
    client: reqwest::Client,
    signing: SigningKey,
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Worker {
    async fn run(self, mut events: mpsc::Receiver<Arc<WebhookEvent>>) {
        while let Some(event) = events.recv().await {
            let result = match serde_json::to_vec(&*event) {
                Ok(body) => self.deliver(&event, body).await,
                Err(err) => Err(format!("cannot encode the event: {err}")),
            };
            match result {
                Ok(()) => self.metrics.webhook_delivery("delivered"),
                Err(reason) => {
                    self.metrics.webhook_delivery("failed");
                    tracing::warn!(
                        url = %self.url,
                        event = event.kind.name(),
                        id = %event.id,
                        reason,
                        "webhook not delivered"
                    );
                }
            }
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn deliver(&self, event: &WebhookEvent, body: Vec<u8>) -> Result<(), String> {
        let mut wait = FIRST_RETRY;
        let mut last_error = String::new();
        for attempt in 1..=ATTEMPTS {
            let signature = webhook::sign(&self.signing.secret, unix_now(), &body);
            let sent = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(webhook::KEY_HEADER, &self.signing.key)
                .header(webhook::SIGNATURE_HEADER, signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last_error = format!("HTTP {}", response.status()),
                Err(err) => last_error = err.to_string(),
            }
            tracing::debug!(url = %self.url, id = %event.id, attempt, error = %last_error, "webhook attempt failed");
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Err(last_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_are_accepted() {
        assert!(validate_urls(&["https://hooks.example.com/aula".into()]).is_ok());
        assert!(validate_urls(&["http://127.0.0.1:9000/".into()]).is_ok());
        for bad in ["ftp://example.com", "example.com/hook", "", "https://"] {
            assert!(
                validate_urls(&[bad.to_owned()]).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
