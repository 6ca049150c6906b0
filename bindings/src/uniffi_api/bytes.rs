//! [`Bytes`]: byte buffers (video frames, access units, PNG images) that cross the uniffi
//! boundary with `memcpy` instead of uniffi's byte-at-a-time sequence code.
//!
//! uniffi passes a `Vec<u8>` as a `RustBuffer` holding a big-endian `i32` length and the
//! bytes, and the foreign side reads and writes it in bulk (`ByteBuffer.put`, `memmove`).
//! The Rust side, though, lifts and lowers it as a generic sequence: one bounds check and one
//! push per byte, about 60 % of the time of a 720p push from Python. `Bytes` keeps the same
//! wire format and the same type metadata, so the generated bindings are unchanged
//! (`ByteArray`, `bytes`, `Data`), but reads the length and then takes the bytes where the
//! foreign side wrote them (an argument is used in place, without a copy), and writes them
//! with one `extend_from_slice`.
#![allow(unsafe_code)]

use std::fmt;
use std::ops::Deref;

use uniffi::{MetadataBuffer, RustBuffer};

/// Length prefix of a byte sequence on the wire.
const PREFIX: usize = 4;

/// A byte buffer as the bindings pass it: the foreign side sees its own bytes type.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes {
    /// The buffer; the bytes start at `start` (after the length prefix, when lifted).
    storage: Vec<u8>,
    start: usize,
}

impl Bytes {
    /// The bytes as a vector (moves them down over the length prefix when there is one).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.storage.drain(..self.start);
        self.storage
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(storage: Vec<u8>) -> Self {
        Bytes { storage, start: 0 }
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.storage[self.start..]
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

/// Reads the length prefix at the front of `buf`, checking the bytes are there.
fn read_len(buf: &[u8]) -> uniffi::Result<usize> {
    let Some((prefix, rest)) = buf.split_first_chunk::<PREFIX>() else {
        uniffi::deps::anyhow::bail!("byte buffer without its length");
    };
    let len = usize::try_from(i32::from_be_bytes(*prefix))?;
    if rest.len() < len {
        uniffi::deps::anyhow::bail!("byte buffer of {len} bytes holds only {}", rest.len());
    }
    Ok(len)
}

// SAFETY: the wire format is exactly that of uniffi's `Vec<u8>` (a RustBuffer, or a run in a
// larger one, of a big-endian i32 length followed by that many bytes), and TYPE_ID_META is
// `Vec<u8>`'s, so the generated foreign code, which handles `Vec<u8>`, reads and writes it
// correctly. Only the Rust side's way of copying differs.
unsafe impl<UT> uniffi::FfiConverter<UT> for Bytes {
    type FfiType = RustBuffer;

    fn lower(obj: Bytes) -> RustBuffer {
        let mut buf = Vec::with_capacity(PREFIX + obj.len());
        <Self as uniffi::FfiConverter<UT>>::write(obj, &mut buf);
        RustBuffer::from_vec(buf)
    }

    fn try_lift(buf: RustBuffer) -> uniffi::Result<Bytes> {
        let storage = buf.destroy_into_vec();
        let len = read_len(&storage)?;
        if storage.len() != PREFIX + len {
            uniffi::deps::anyhow::bail!("junk after a byte buffer");
        }
        Ok(Bytes {
            storage,
            start: PREFIX,
        })
    }

    fn write(obj: Bytes, buf: &mut Vec<u8>) {
        // Frames, access units and PNG pages (at most 8192 x 8192 RGBA, 256 MiB before
        // compression) stay far below 2 GiB.
        let len = i32::try_from(obj.len()).expect("byte buffers stay under 2 GiB");
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&obj);
    }

    fn try_read(buf: &mut &[u8]) -> uniffi::Result<Bytes> {
        let len = read_len(buf)?;
        let bytes = buf[PREFIX..PREFIX + len].to_vec();
        *buf = &buf[PREFIX + len..];
        Ok(Bytes::from(bytes))
    }

    const TYPE_ID_META: MetadataBuffer = <Vec<u8> as uniffi::TypeId<UT>>::TYPE_ID_META;
}

uniffi::derive_ffi_traits!(blanket Bytes);

#[cfg(test)]
mod tests {
    use super::*;
    use uniffi::{FfiConverter, Lift, Lower};

    type Tag = crate::UniFfiTag;

    #[test]
    fn the_wire_format_is_uniffis_vec_u8() {
        let data: Vec<u8> = (0..=255).cycle().take(1000).collect();
        // What uniffi's own Vec<u8> lowers to, Bytes lifts (in place) and lowers identically.
        let theirs = <Vec<u8> as Lower<Tag>>::lower(data.clone()).destroy_into_vec();
        let lifted =
            <Bytes as FfiConverter<Tag>>::try_lift(RustBuffer::from_vec(theirs.clone())).unwrap();
        assert_eq!(&*lifted, data.as_slice());
        assert_eq!(lifted.clone().into_vec(), data);
        let ours = <Bytes as FfiConverter<Tag>>::lower(lifted).destroy_into_vec();
        assert_eq!(ours, theirs);
        // Inside a larger buffer (a record field), followed by something else.
        let mut record = Vec::new();
        <Bytes as FfiConverter<Tag>>::write(Bytes::from(data.clone()), &mut record);
        record.push(7);
        let mut rest = record.as_slice();
        let read = <Bytes as FfiConverter<Tag>>::try_read(&mut rest).unwrap();
        assert_eq!(&*read, data.as_slice());
        assert_eq!(rest, &[7]);
        let mut same = record.as_slice();
        assert_eq!(<Vec<u8> as Lift<Tag>>::try_read(&mut same).unwrap(), data);
    }

    #[test]
    fn short_or_padded_buffers_are_errors() {
        let lift = |v: Vec<u8>| <Bytes as FfiConverter<Tag>>::try_lift(RustBuffer::from_vec(v));
        assert!(lift(vec![0, 0]).is_err());
        assert!(lift(vec![0, 0, 0, 3, 1, 2]).is_err());
        assert!(lift(vec![0, 0, 0, 1, 1, 2]).is_err());
        assert!(
            lift(vec![0xff, 0xff, 0xff, 0xff]).is_err(),
            "negative length"
        );
        assert_eq!(&*lift(vec![0, 0, 0, 0]).unwrap(), &[] as &[u8]);
    }
}
