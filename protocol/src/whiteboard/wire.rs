//! Binary whiteboard frames: the y-protocols encoding plus two Aula message types.
//!
//! Every frame starts with a message type (a varint):
//! - `0` sync, followed by a sub-type: `0` step 1 (a state vector), `1` step 2 (the update a peer
//!   lacks), `2` update — exactly as y-protocols/sync;
//! - `1` awareness — exactly as y-protocols/awareness (ephemeral: laser pointer, cursors);
//! - `100` ack (server to client): a varint `seq`, the count of edit frames (sync step 2 and
//!   update) the client has sent on this connection that are now durably stored and applied;
//! - `101` error (server to client): a varint `seq` of the refused edit frame (0 when the frame
//!   was not an edit), then two strings: a code and a human-readable message.
//!
//! Strings and byte buffers are length-prefixed with a varint, as in lib0.

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::StateVector;

/// Message type of an Aula acknowledgement.
pub const MSG_ACK: u8 = 100;
/// Message type of an Aula error.
pub const MSG_ERROR: u8 = 101;

/// One binary whiteboard frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// Sync step 1: "here is my state vector, send me what I lack".
    SyncStep1(StateVector),
    /// Sync step 2: the update answering a step 1.
    SyncStep2(Vec<u8>),
    /// An incremental update.
    Update(Vec<u8>),
    /// An awareness update (y-protocols encoding, passed through as bytes).
    Awareness(Vec<u8>),
    /// The server stored and applied the client's edit frames up to `seq`.
    Ack {
        /// Edit frames acknowledged so far on this connection.
        seq: u64,
    },
    /// The server refused an edit frame (or a malformed frame).
    Error {
        /// The refused edit frame's number, 0 when not an edit.
        seq: u64,
        /// Stable code: `permission_denied`, `locked`, `too_large`, `invalid_update`,
        /// `rate_limited`, `malformed`, `internal`.
        code: String,
        /// Explanation.
        message: String,
    },
}

/// A frame that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed whiteboard frame: {0}")]
pub struct FrameError(pub String);

impl Frame {
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut enc = EncoderV1::new();
        match self {
            Frame::SyncStep1(sv) => {
                Message::Sync(SyncMessage::SyncStep1(sv.clone())).encode(&mut enc)
            }
            Frame::SyncStep2(u) => {
                Message::Sync(SyncMessage::SyncStep2(u.clone())).encode(&mut enc)
            }
            Frame::Update(u) => Message::Sync(SyncMessage::Update(u.clone())).encode(&mut enc),
            Frame::Awareness(bytes) => {
                enc.write_var(yrs::sync::protocol::MSG_AWARENESS);
                enc.write_buf(bytes);
            }
            Frame::Ack { seq } => {
                enc.write_var(MSG_ACK);
                enc.write_var(*seq);
            }
            Frame::Error { seq, code, message } => {
                enc.write_var(MSG_ERROR);
                enc.write_var(*seq);
                enc.write_string(code);
                enc.write_string(message);
            }
        }
        enc.to_vec()
    }

    /// Decodes a frame. Unknown message types and trailing garbage are errors.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        let err = |e: yrs::encoding::read::Error| FrameError(e.to_string());
        let mut dec = DecoderV1::new(Cursor::new(bytes));
        let tag: u8 = dec.read_var().map_err(err)?;
        let frame = match tag {
            yrs::sync::protocol::MSG_SYNC => match SyncMessage::decode(&mut dec).map_err(err)? {
                SyncMessage::SyncStep1(sv) => Frame::SyncStep1(sv),
                SyncMessage::SyncStep2(u) => Frame::SyncStep2(u),
                SyncMessage::Update(u) => Frame::Update(u),
            },
            yrs::sync::protocol::MSG_AWARENESS => {
                Frame::Awareness(dec.read_buf().map_err(err)?.to_vec())
            }
            MSG_ACK => Frame::Ack {
                seq: dec.read_var().map_err(err)?,
            },
            MSG_ERROR => Frame::Error {
                seq: dec.read_var().map_err(err)?,
                code: dec.read_string().map_err(err)?.to_owned(),
                message: dec.read_string().map_err(err)?.to_owned(),
            },
            other => return Err(FrameError(format!("unknown message type {other}"))),
        };
        Ok(frame)
    }

    /// Whether the frame is an edit the server acknowledges (step 2 or update).
    pub fn is_edit(&self) -> bool {
        matches!(self, Frame::SyncStep2(_) | Frame::Update(_))
    }
}

/// Encodes a state vector (v1) — the payload of sync step 1.
pub fn encode_state_vector(sv: &StateVector) -> Vec<u8> {
    sv.encode_v1()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for frame in [
            Frame::SyncStep1(StateVector::default()),
            Frame::SyncStep2(vec![0, 0]),
            Frame::Update(vec![1, 2, 3]),
            Frame::Awareness(vec![1, 2]),
            Frame::Ack { seq: 300 },
            Frame::Error {
                seq: 7,
                code: "locked".into(),
                message: "page is locked".into(),
            },
        ] {
            assert_eq!(Frame::decode(&frame.encode()).expect("decodes"), frame);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &[][..],
            &[0],
            &[0, 9],
            &[0, 2, 200],
            &[50, 1],
            &[101, 1, 5, b'a'],
        ] {
            assert!(Frame::decode(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn sync_update_matches_the_y_protocols_layout() {
        // y-protocols: writeVarUint(0) writeVarUint(2) writeVarUint8Array(update)
        assert_eq!(Frame::Update(vec![9, 8]).encode(), vec![0, 2, 2, 9, 8]);
    }
}
