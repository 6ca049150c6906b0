//! Counts that updates, state vectors and awareness updates declare, checked against the bytes
//! that are there before yrs decodes them.
//!
//! yrs reserves room for the number of entries a collection declares before it reads any of
//! them (hash maps for an update's clients, a state vector, an awareness update or an `Any`
//! map; vectors for blocks and `Any` arrays), and a hash map's reservation writes to memory in
//! proportion. Six bytes declaring a billion clients made the decoder allocate 11 GB and touch
//! hundreds of megabytes; five bytes inside a block did the same for its `Any` content (found by
//! the `whiteboard_update` and `whiteboard_client` fuzz targets). Each entry takes at least one
//! byte, so a count above the bytes left is malformed whatever follows.
//!
//! These walks read what yrs's v1 decoder reads, with yrs's own primitives, as far as the last
//! count that reserves memory; they refuse only a count larger than the rest of the input and
//! `Any` content nested deeper than [`MAX_DEPTH`] (which yrs decodes recursively, and which
//! overflowed the stack), and leave every other judgement (a truncated input, an unknown
//! content type) to the decoder.

use yrs::encoding::read::{Cursor, Read};

/// Why the input was refused.
pub(crate) type Refused = String;

/// Stops a walk: `Ok(Done)` hands the input to the decoder, `Err` refuses it.
struct Done;

type Step<T> = Result<Result<T, Done>, Refused>;

/// Reads with `read`, or ends the walk (the decoder will report the error).
macro_rules! read {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(_) => return Ok(Err(Done)),
        }
    };
}

/// Proceeds with the value of a step, or ends the walk.
macro_rules! step {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(Done) => return Ok(Err(Done)),
        }
    };
}

fn fits(cursor: &Cursor<'_>, count: u64, what: &str) -> Result<(), Refused> {
    let left = (cursor.buf.len() - cursor.next) as u64;
    if count > left {
        return Err(format!("{what} declares {count} entries in {left} bytes"));
    }
    Ok(())
}

/// Client ids are 53-bit numbers (what a JavaScript number holds exactly); yrs asserts it of
/// every id it decodes.
const MAX_CLIENT_ID: u64 = (1 << 53) - 1;

/// Reads a client id, refusing one wider than 53 bits.
fn client_id(c: &mut Cursor<'_>) -> Step<u64> {
    let id: u64 = read!(c.read_var());
    if id > MAX_CLIENT_ID {
        return Err(format!("client id {id} is wider than 53 bits"));
    }
    Ok(Ok(id))
}

/// Checks an update (v1): its clients, each client's blocks, `Any` contents.
pub(crate) fn check_update(bytes: &[u8]) -> Result<(), Refused> {
    update(&mut Cursor::new(bytes)).map(|_| ())
}

/// Checks a state vector (v1).
pub(crate) fn check_state_vector(bytes: &[u8]) -> Result<(), Refused> {
    state_vector(&mut Cursor::new(bytes)).map(|_| ())
}

/// A state vector: a count, then per entry a client id and its clock.
fn state_vector(c: &mut Cursor<'_>) -> Step<()> {
    let count: u32 = read!(c.read_var());
    fits(c, u64::from(count), "state vector")?;
    for _ in 0..count {
        step!(client_id(c));
        let _clock: u32 = read!(c.read_var());
    }
    Ok(Ok(()))
}

/// Checks an awareness update.
pub(crate) fn check_awareness(bytes: &[u8]) -> Result<(), Refused> {
    awareness(&mut Cursor::new(bytes)).map(|_| ())
}

/// An awareness update: a count, then per entry a client id, a clock and a JSON string.
fn awareness(c: &mut Cursor<'_>) -> Step<()> {
    let count: usize = read!(c.read_var());
    fits(c, count as u64, "awareness update")?;
    for _ in 0..count {
        step!(client_id(c));
        let _clock: u32 = read!(c.read_var());
        let _json: &str = read!(c.read_string());
    }
    Ok(Ok(()))
}

fn update(c: &mut Cursor<'_>) -> Step<()> {
    let clients: u32 = read!(c.read_var());
    fits(c, u64::from(clients), "update")?;
    for _ in 0..clients {
        let blocks: u32 = read!(c.read_var());
        step!(client_id(c));
        let _clock: u32 = read!(c.read_var());
        fits(c, u64::from(blocks), "client")?;
        for _ in 0..blocks {
            step!(block(c));
        }
    }
    // The delete set reserves nothing ahead, but names clients.
    let deleted: u32 = read!(c.read_var());
    for _ in 0..deleted {
        step!(client_id(c));
        let ranges: u32 = read!(c.read_var());
        for _ in 0..ranges {
            let _clock: u32 = read!(c.read_var());
            let _len: u32 = read!(c.read_var());
        }
    }
    Ok(Ok(()))
}

/// Block kinds and flags of the v1 encoding (yrs's `block` module).
const GC: u8 = 0;
const SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
const CONTENT_DELETED: u8 = 1;
const CONTENT_JSON: u8 = 2;
const CONTENT_BINARY: u8 = 3;
const CONTENT_STRING: u8 = 4;
const CONTENT_EMBED: u8 = 5;
const CONTENT_FORMAT: u8 = 6;
const CONTENT_TYPE: u8 = 7;
const CONTENT_ANY: u8 = 8;
const CONTENT_DOC: u8 = 9;

fn block(c: &mut Cursor<'_>) -> Step<()> {
    let info = read!(c.read_u8());
    if info == GC || info == SKIP {
        let _len: u32 = read!(c.read_var());
        return Ok(Ok(()));
    }
    for flag in [HAS_ORIGIN, HAS_RIGHT_ORIGIN] {
        if info & flag != 0 {
            step!(client_id(c));
            let _clock: u32 = read!(c.read_var());
        }
    }
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        let named_parent: u32 = read!(c.read_var());
        if named_parent == 1 {
            read!(c.read_string());
        } else {
            let _client: u64 = read!(c.read_var());
            let _clock: u32 = read!(c.read_var());
        }
        if info & HAS_PARENT_SUB != 0 {
            read!(c.read_string());
        }
    }
    match info & 0b1111 {
        CONTENT_DELETED => {
            let _len: u32 = read!(c.read_var());
        }
        CONTENT_JSON => {
            let values: u32 = read!(c.read_var());
            fits(c, u64::from(values), "JSON content")?;
            for _ in 0..values {
                read!(c.read_string());
            }
        }
        CONTENT_BINARY => {
            read!(c.read_buf());
        }
        CONTENT_STRING | CONTENT_EMBED => {
            read!(c.read_string());
        }
        CONTENT_FORMAT => {
            read!(c.read_string());
            read!(c.read_string());
        }
        CONTENT_TYPE => {
            let type_ref = read!(c.read_u8());
            match type_ref {
                // An XML element's name; the other plain types carry nothing more.
                3 => {
                    read!(c.read_string());
                }
                0..=6 | 9 | 15 => {}
                // Weak links and anything newer: the decoder's business.
                _ => return Ok(Err(Done)),
            }
        }
        CONTENT_ANY => {
            let values: u32 = read!(c.read_var());
            fits(c, u64::from(values), "any content")?;
            for _ in 0..values {
                step!(any(c, 0));
            }
        }
        CONTENT_DOC => {
            read!(c.read_string());
            step!(any(c, 0));
        }
        // Unknown kinds: the decoder's business.
        _ => return Ok(Err(Done)),
    }
    Ok(Ok(()))
}

/// Deepest nesting of `Any` content accepted. yrs decodes it recursively, a stack frame a
/// level: 128 Ki levels (what a 256 KiB update holds) overflowed a 2 MiB runtime worker's stack
/// and aborted the process. No board nests data anywhere near this deep.
const MAX_DEPTH: usize = 64;

fn any(c: &mut Cursor<'_>, depth: usize) -> Step<()> {
    if depth > MAX_DEPTH {
        return Err(format!("content nested deeper than {MAX_DEPTH} levels"));
    }
    match read!(c.read_u8()) {
        // undefined, null, false, true
        127 | 126 | 121 | 120 => {}
        125 => {
            let _int: i64 = read!(c.read_var());
        }
        124 => {
            read!(c.read_f32());
        }
        123 => {
            read!(c.read_f64());
        }
        122 => {
            read!(c.read_i64());
        }
        119 => {
            read!(c.read_string());
        }
        118 => {
            let entries: usize = read!(c.read_var());
            fits(c, entries as u64, "any map")?;
            for _ in 0..entries {
                read!(c.read_string());
                step!(any(c, depth + 1));
            }
        }
        117 => {
            let items: usize = read!(c.read_var());
            fits(c, items as u64, "any array")?;
            for _ in 0..items {
                step!(any(c, depth + 1));
            }
        }
        116 => {
            read!(c.read_buf());
        }
        _ => return Ok(Err(Done)),
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whiteboard::model::{Board, NewItem, Point};
    use crate::whiteboard::DEFAULT_PAGE;
    use yrs::{Any, Array, Doc, Map, ReadTxn, Text, Transact};

    /// Updates of every kind a board and a Yjs client make.
    fn real_updates() -> Vec<Vec<u8>> {
        let board = Board::new(Doc::with_client_id(7));
        let mut updates = Vec::new();
        let mut edit = |f: &dyn Fn(&Board, &mut yrs::TransactionMut<'_>)| {
            let mut txn = board.doc().transact_mut();
            f(&board, &mut txn);
            updates.push(txn.encode_update_v1());
        };
        edit(&|b, t| b.ensure_page(t, DEFAULT_PAGE));
        let points: Vec<Point> = (0..40)
            .map(|i| Point {
                x: i as f32,
                y: 1.5,
                pressure: 0.5,
            })
            .collect();
        edit(&|b, t| {
            b.add_item(
                t,
                DEFAULT_PAGE,
                "s",
                "ann",
                &NewItem::stroke("#000", 2.0, points.clone()),
            );
        });
        edit(&|b, t| {
            b.add_item(
                t,
                DEFAULT_PAGE,
                "x",
                "ann",
                &NewItem::text("#000", 12.0, 1.0, 2.0, "hé"),
            );
        });
        edit(&|b, t| {
            b.erase(t, DEFAULT_PAGE, "s");
        });
        edit(&|b, t| b.set_page_locked(t, DEFAULT_PAGE, true));
        let doc = Doc::with_client_id(9);
        let map = doc.get_or_insert_map("m");
        let array = doc.get_or_insert_array("a");
        let text = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        map.insert(
            &mut txn,
            "nested",
            Any::from(std::collections::HashMap::from([
                (
                    "k".to_owned(),
                    Any::from(vec![Any::from(1.5), Any::Null, Any::from("s")]),
                ),
                ("b".to_owned(), Any::from(vec![1u8, 2, 3])),
                ("int".to_owned(), Any::from(1i64 << 60)),
            ])),
        );
        array.insert_range(&mut txn, 0, [1, 2, 3]);
        text.insert(&mut txn, 0, "hello");
        map.insert(&mut txn, "sub", yrs::MapPrelim::default());
        updates.push(txn.encode_update_v1());
        drop(txn);
        updates.push(
            doc.transact()
                .encode_state_as_update_v1(&yrs::StateVector::default()),
        );
        updates.push(
            board
                .doc()
                .transact()
                .encode_state_as_update_v1(&yrs::StateVector::default()),
        );
        updates
    }

    #[test]
    fn real_updates_pass() {
        for update in real_updates() {
            assert_eq!(check_update(&update), Ok(()), "{update:?}");
            yrs::Update::decode_v1(&update).expect("yrs decodes it");
        }
    }

    use yrs::updates::decoder::Decode;

    #[test]
    fn counts_beyond_the_input_are_refused_at_any_depth() {
        // Found by the fuzz targets: a billion clients in six bytes
        // (`fuzz/corpus/whiteboard_update/regression-client-count-bomb`).
        assert!(check_update(&[0xc5, 0xc5, 0xc5, 0xc5, 0x3d]).is_err());
        // One client declaring 2^29 blocks (`regression-block-count-bomb`).
        assert!(check_update(&[1, 0xff, 0xff, 0xff, 0xff, 0x31, 0, 0x3a]).is_err());
        // A block of `Any` content holding a map that declares 2^28 entries: client 1 at clock
        // 0, one block with a named parent "m", key "k", content kind 8, one value.
        let bomb = [
            1, 1, 1, 0, 0x28, 1, 1, b'm', 1, b'k', 1, 118, 0x80, 0x80, 0x80, 0x80, 0x01,
        ];
        let err = check_update(&bomb).expect_err("refused");
        assert!(err.contains("any map"), "{err}");
        // Legacy JSON content declaring 2^32 - 1 strings.
        let json = [1, 1, 1, 0, 0x02, 1, 1, b'm', 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(check_update(&json).expect_err("refused").contains("JSON"));
        assert!(check_state_vector(&[0x80, 0x80, 0x80, 0x80, 0x08]).is_err());
        assert!(check_awareness(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]).is_err());
    }

    #[test]
    fn client_ids_wider_than_53_bits_are_refused() {
        // One awareness entry: client 2^53, clock 1, "{}" (found by `whiteboard_client`).
        let mut bytes = vec![1];
        let mut id = 1u64 << 53;
        while id >= 0x80 {
            bytes.push((id as u8 & 0x7f) | 0x80);
            id >>= 7;
        }
        bytes.push(id as u8);
        bytes.extend_from_slice(&[1, 2, b'{', b'}']);
        assert!(check_awareness(&bytes).is_err());
        assert!(super::super::awareness::decode(&bytes).is_err());
        let widest_allowed = {
            let mut b = bytes.clone();
            b[8] = 0x0f; // 2^53 - 1 ends in ...0x0f after seven 0xff bytes
            b[1..8].fill(0xff);
            b
        };
        assert!(check_awareness(&widest_allowed).is_ok());
        // A state vector naming the same client: 1 entry, the id, clock 0.
        let state_vector: Vec<u8> = bytes[..9].iter().copied().chain([0]).collect();
        assert!(check_state_vector(&state_vector).is_err());
        // An update with no blocks whose delete set names it: 0 clients, 1 deleted client, the
        // id, no ranges.
        let update: Vec<u8> = [0, 1]
            .into_iter()
            .chain(bytes[1..9].iter().copied())
            .chain([0])
            .collect();
        assert!(check_update(&update).is_err());
    }

    #[test]
    fn deeply_nested_content_does_not_overflow_the_stack() {
        // `Any` arrays nested as deep as an update of the largest size the server takes
        // (256 KiB) can nest them, decoded on a thread with a runtime worker's 2 MiB stack.
        let mut bytes = vec![1, 1, 1, 0, 0x28, 1, 1, b'm', 1, b'k', 1];
        let depth = 128 * 1024 - 16;
        for _ in 0..depth {
            bytes.extend_from_slice(&[117, 1]);
        }
        bytes.extend_from_slice(&[127, 0]);
        let decoded = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || super::super::wire::decode_update(&bytes).is_ok())
            .expect("a thread")
            .join()
            .expect("no panic");
        assert!(!decoded, "nesting {depth} deep is refused");
    }

    #[test]
    fn what_the_walk_does_not_follow_is_left_to_the_decoder() {
        // Empty, a truncated count, a truncated block, an unknown content kind.
        for bytes in [
            &[][..],
            &[0x80],
            &[1, 1, 1, 0, 0x22],
            &[1, 1, 1, 0, 0x0c, 1, 1, b'm'],
        ] {
            assert_eq!(check_update(bytes), Ok(()), "{bytes:?}");
        }
    }
}
