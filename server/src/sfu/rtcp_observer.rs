//! An interceptor that counts the RTCP feedback crossing a server connection: NACKs from
//! subscribers, NACKs sent to publishers, and the loss subscribers report. It changes nothing.

use std::collections::VecDeque;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::metrics::Metrics;

/// Where the observer sits: wire-ward of the NACK responder (4 000), so it sees inbound NACKs
/// before they are answered, and of the NACK generator (7 000), so it sees the NACKs it emits.
pub const RTCP_OBSERVER_SLOT: usize = 3_500;

/// The counters one connection feeds.
pub struct RtcpObserver {
    nacked_by_remote: Counter,
    nacked_to_remote: Counter,
    reported_loss: Histogram,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl RtcpObserver {
    /// An observer feeding `metrics`: packets the remote asks us to resend count as
    /// `from_subscribers`, packets we ask the remote for as `to_publishers` (a server connection
    /// either receives media or sends it, so the direction names the remote's role).
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            nacked_by_remote: metrics.nacked_packets("from_subscribers"),
            nacked_to_remote: metrics.nacked_packets("to_publishers"),
            reported_loss: metrics.subscriber_reported_loss.clone(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }
}

/// Sequence numbers a NACK asks for.
fn nacked_packets(nack: &TransportLayerNack) -> u64 {
    nack.nacks
        .iter()
        .map(|pair| 1 + u64::from(pair.lost_packets.count_ones()))
        .sum()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpObserver {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for packet in packets {
                let any = packet.as_any();
                if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                    self.nacked_by_remote.inc_by(nacked_packets(nack));
                } else if let Some(report) = any.downcast_ref::<ReceiverReport>() {
                    for block in &report.reports {
                        self.reported_loss
                            .observe(f64::from(block.fraction_lost) / 256.0);
                    }
                }
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for packet in packets {
                if let Some(nack) = packet.as_any().downcast_ref::<TransportLayerNack>() {
                    self.nacked_to_remote.inc_by(nacked_packets(nack));
                }
            }
        }
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for RtcpObserver {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
