//! A barrier behind the packets a connection has queued for sending.
//!
//! A forwarder hands packets to the connection's driver through a queue; the driver looks each
//! one's sender up when it takes it from the queue. A sender removed while packets for it are
//! still queued makes the driver log `Failed to send RTP due to unknown sender id` for each of
//! them (a participant leaving while others stay removed several at once). So before a sender
//! goes, its forwarder stops and the queue is drained: a marker RTCP packet is queued behind
//! the forwarder's last packets, and this interceptor, which the driver passes everything
//! through in order, takes it off the way out and reports it. Once it has, nothing written
//! before it is left in the queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::goodbye::Goodbye;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use tokio::sync::watch;
use webrtc::media_stream::track_local::TrackLocal;

/// Where the barrier sits in the interceptor chain: any place works (every interceptor passes
/// messages on in order); next to the RTCP observer.
pub const SEND_BARRIER_SLOT: usize = 3_400;
/// The reason text that marks a barrier packet; the number after it is the barrier's.
const MARKER_REASON: &str = "aula-send-barrier:";
/// Longest wait for a barrier: only a stuck driver takes this long.
const BARRIER_TIMEOUT: Duration = Duration::from_millis(500);

/// The waiting side of a connection's send barrier. Cloneable.
#[derive(Clone)]
pub struct SendBarrier {
    next: Arc<AtomicU32>,
    passed: watch::Sender<u32>,
}

impl Default for SendBarrier {
    fn default() -> Self {
        Self {
            next: Arc::new(AtomicU32::new(0)),
            passed: watch::channel(0).0,
        }
    }
}

impl SendBarrier {
    /// The interceptor to register on the connection this barrier waits on.
    pub fn interceptor(&self) -> SendBarrierInterceptor {
        SendBarrierInterceptor {
            passed: self.passed.clone(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    /// Waits until the driver has taken every packet queued through `track` (and any other
    /// track of the same connection) before this call. The connection must have finished its
    /// DTLS handshake (before it, packets bypass the interceptors); otherwise, or when `track`
    /// is not bound to a sender, returns `false` at once or after a timeout.
    pub async fn drain(&self, track: &dyn TrackLocal) -> bool {
        let id = self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let marker = Goodbye {
            sources: Vec::new(),
            reason: Bytes::from(format!("{MARKER_REASON}{id}")),
        };
        let mut passed = self.passed.subscribe();
        if track.write_rtcp(vec![Box::new(marker)]).await.is_err() {
            return false;
        }
        tokio::time::timeout(BARRIER_TIMEOUT, passed.wait_for(|seen| *seen >= id))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }
}

/// The interceptor half of a [`SendBarrier`]: takes marker packets off the way out.
pub struct SendBarrierInterceptor {
    passed: watch::Sender<u32>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

/// The barrier number a marker packet carries.
fn marker_id(packet: &dyn rtc::rtcp::Packet) -> Option<u32> {
    let goodbye = packet.as_any().downcast_ref::<Goodbye>()?;
    std::str::from_utf8(&goodbye.reason)
        .ok()?
        .strip_prefix(MARKER_REASON)?
        .parse()
        .ok()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for SendBarrierInterceptor {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            let before = packets.len();
            let mut reached = None;
            packets.retain(|packet| match marker_id(packet.as_ref()) {
                Some(id) => {
                    reached = reached.max(Some(id));
                    false
                }
                None => true,
            });
            if let Some(id) = reached {
                self.passed.send_if_modified(|seen| {
                    let newer = id > *seen;
                    if newer {
                        *seen = id;
                    }
                    newer
                });
            }
            // A message that carried only markers has nothing left for the wire. (An empty RTCP
            // list means something else to the stack: an attribute carrier.)
            if before > 0 && packets.is_empty() {
                return Ok(());
            }
        }
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for SendBarrierInterceptor {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
