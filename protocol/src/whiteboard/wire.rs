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
use yrs::sync::protocol::{MSG_SYNC_STEP_1, MSG_SYNC_STEP_2, MSG_SYNC_UPDATE};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::{Decode, Decoder, DecoderV1};
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::{StateVector, Update};

use super::declared;

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
            yrs::sync::protocol::MSG_SYNC => {
                let step: u8 = dec.read_var().map_err(err)?;
                let payload = dec.read_buf().map_err(err)?;
                match step {
                    MSG_SYNC_STEP_1 => Frame::SyncStep1(decode_state_vector(payload)?),
                    MSG_SYNC_STEP_2 => Frame::SyncStep2(payload.to_vec()),
                    MSG_SYNC_UPDATE => Frame::Update(payload.to_vec()),
                    other => return Err(FrameError(format!("unknown sync message type {other}"))),
                }
            }
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
        let rest = dec.read_to_end().map_err(err)?;
        if !rest.is_empty() {
            return Err(FrameError(format!(
                "{} bytes after the message",
                rest.len()
            )));
        }
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

/// Decodes a state vector (v1), refusing one that declares more entries than it has bytes.
pub fn decode_state_vector(bytes: &[u8]) -> Result<StateVector, FrameError> {
    declared::check_state_vector(bytes).map_err(FrameError)?;
    StateVector::decode_v1(bytes).map_err(|e| FrameError(e.to_string()))
}

/// Decodes an update (v1), refusing one that declares more entries anywhere than it has bytes
/// (see [`super::declared`]). Every decode of an update from the network goes through here.
pub fn decode_update(bytes: &[u8]) -> Result<Update, FrameError> {
    declared::check_update(bytes).map_err(FrameError)?;
    Update::decode_v1(bytes).map_err(|e| FrameError(e.to_string()))
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
    fn trailing_bytes_are_an_error() {
        // Found by the `whiteboard_frame` fuzz target: an awareness frame with a byte more
        // decoded (`fuzz/corpus/whiteboard_frame/regression-trailing-byte`).
        assert!(Frame::decode(&[1, 2, 3, 0x3f]).is_ok());
        assert!(Frame::decode(&[1, 2, 3, 0x3f, 0]).is_err());
        for frame in [
            Frame::SyncStep1(StateVector::default()),
            Frame::Update(vec![0, 0]),
            Frame::Ack { seq: 1 },
        ] {
            let mut bytes = frame.encode();
            bytes.push(7);
            assert!(Frame::decode(&bytes).is_err(), "{frame:?}");
        }
    }

    #[test]
    fn counts_larger_than_the_bytes_are_refused_before_decoding() {
        // Found by the `whiteboard_update` fuzz target: an update of six bytes whose client
        // count made the decoder reserve 11 GB (`fuzz/corpus/whiteboard_update/regression-*`).
        let err = decode_update(&[0xc5, 0xc5, 0xc5, 0xc5, 0x3d]).expect_err("refused");
        assert!(err.0.contains("declares"), "{err}");
        // A state vector in sync step 1: a count of 2^35 in a frame of nine bytes.
        let frame = [0, 0, 6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(Frame::decode(&frame)
            .expect_err("refused")
            .0
            .contains("declares"));
        // Real ones still decode.
        let doc = yrs::Doc::with_client_id(3);
        let text = doc.get_or_insert_text("t");
        let update = {
            use yrs::{Text, Transact};
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "hello");
            txn.encode_update_v1()
        };
        assert!(decode_update(&update).is_ok());
        assert!(decode_state_vector(&encode_state_vector(&StateVector::default())).is_ok());
    }

    #[test]
    fn sync_update_matches_the_y_protocols_layout() {
        // y-protocols: writeVarUint(0) writeVarUint(2) writeVarUint8Array(update)
        assert_eq!(Frame::Update(vec![9, 8]).encode(), vec![0, 2, 2, 9, 8]);
    }
}
