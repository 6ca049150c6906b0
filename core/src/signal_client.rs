//! The client end of the signaling WebSocket: requests with replies, and a stream of events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aula_protocol::{ClientMessage, ErrorCode, ServerMessage, MAX_SIGNAL_MESSAGE_BYTES};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long a request waits for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Signaling failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The WebSocket could not be opened.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered a request with an error.
    #[error("server refused the request ({code}): {message}")]
    Refused {
        /// The error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// No reply in time.
    #[error("no reply from the server within {0:?}")]
    Timeout(Duration),
    /// The connection is closed.
    #[error("the signaling connection is closed")]
    Closed,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<ServerMessage>>>>;

/// A connected signaling channel.
pub struct SignalClient {
    outgoing: mpsc::UnboundedSender<String>,
    binary_out: mpsc::UnboundedSender<Vec<u8>>,
    binary_in: Mutex<Option<mpsc::UnboundedReceiver<Vec<u8>>>>,
    pending: Pending,
    next_id: AtomicU64,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl SignalClient {
    /// Opens the WebSocket at `url` (`ws://host:port`, with or without the `/rtc` path).
    /// Server messages that are not replies arrive on the returned receiver.
    pub async fn connect(
        url: &str,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ServerMessage>), SignalError> {
        let url = signal_url(url);
        let (socket, _) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        .map_err(|_| SignalError::Connect {
            url: url.clone(),
            reason: "timed out".into(),
        })?
        .map_err(|e| SignalError::Connect {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<String>();
        let (binary_out, mut binary_out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (binary_in_tx, binary_in) = mpsc::unbounded_channel::<Vec<u8>>();
        let (events_tx, events) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let writer = tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    text = outgoing_rx.recv() => match text {
                        Some(text) => Message::Text(text.into()),
                        None => break,
                    },
                    Some(bytes) = binary_out_rx.recv() => Message::Binary(bytes.into()),
                };
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader_pending = Arc::clone(&pending);
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let text = match message {
                    Message::Text(text) => text,
                    Message::Binary(bytes) => {
                        // Whiteboard frames; nobody listening is fine.
                        let _ = binary_in_tx.send(bytes.to_vec());
                        continue;
                    }
                    _ => continue,
                };
                if text.len() > MAX_SIGNAL_MESSAGE_BYTES {
                    tracing::warn!(len = text.len(), "oversized signaling message ignored");
                    continue;
                }
                let msg = match serde_json::from_str::<ServerMessage>(text.as_str()) {
                    Ok(msg) => msg,
                    Err(err) => {
                        // Newer servers may send message types this client does not know.
                        tracing::debug!(error = %err, "unknown signaling message ignored");
                        continue;
                    }
                };
                let waiter = msg.request_id().and_then(|id| {
                    reader_pending
                        .lock()
                        .ok()
                        .and_then(|mut pending| pending.remove(&id))
                });
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(msg);
                    }
                    None => {
                        if events_tx.send(msg).is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropping the waiters wakes every pending request with `Closed`.
            if let Ok(mut pending) = reader_pending.lock() {
                pending.clear();
            }
        });
        Ok((
            Self {
                outgoing,
                binary_out,
                binary_in: Mutex::new(Some(binary_in)),
                pending,
                next_id: AtomicU64::new(1),
                tasks: [writer, reader],
            },
            events,
        ))
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `msg` (built with an id from [`next_id`](Self::next_id)) and waits for its reply.
    /// An error reply becomes [`SignalError::Refused`].
    pub async fn request(&self, msg: ClientMessage) -> Result<ServerMessage, SignalError> {
        let id = msg.request_id().ok_or(SignalError::Closed)?;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| SignalError::Closed)?
            .insert(id, tx);
        self.send(&msg)?;
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, rx).await;
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&id);
        }
        match reply {
            Err(_) => Err(SignalError::Timeout(REQUEST_TIMEOUT)),
            Ok(Err(_)) => Err(SignalError::Closed),
            Ok(Ok(ServerMessage::Error { code, message, .. })) => {
                Err(SignalError::Refused { code, message })
            }
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    /// Sends a message that has no reply.
    pub fn send(&self, msg: &ClientMessage) -> Result<(), SignalError> {
        let text = serde_json::to_string(msg).map_err(|_| SignalError::Closed)?;
        self.outgoing.send(text).map_err(|_| SignalError::Closed)
    }

    /// A sender of binary (whiteboard) frames on this connection.
    pub fn binary_sender(&self) -> mpsc::UnboundedSender<Vec<u8>> {
        self.binary_out.clone()
    }

    /// The binary (whiteboard) frames the server sends; `None` after the first call.
    pub fn take_binary_receiver(&self) -> Option<mpsc::UnboundedReceiver<Vec<u8>>> {
        self.binary_in.lock().ok().and_then(|mut rx| rx.take())
    }

    /// Sends raw text, bypassing the typed messages (for tests of the server's input handling).
    pub fn send_raw(&self, text: String) -> Result<(), SignalError> {
        self.outgoing.send(text).map_err(|_| SignalError::Closed)
    }
}

impl Drop for SignalClient {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// `ws://host:port` → `ws://host:port/rtc`; a URL that already has a path is kept.
pub fn signal_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let after_scheme = trimmed
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(trimmed);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/rtc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_url_appends_the_rtc_path_once() {
        assert_eq!(signal_url("ws://127.0.0.1:7880"), "ws://127.0.0.1:7880/rtc");
        assert_eq!(
            signal_url("ws://127.0.0.1:7880/"),
            "ws://127.0.0.1:7880/rtc"
        );
        assert_eq!(signal_url("wss://a.example/rtc"), "wss://a.example/rtc");
    }
}
