//! Whiteboard edits through the server's authority, as a board task handles them
//! (`server/src/whiteboard/board.rs`): each update is checked on the scratch replica against
//! the sender's grants and the limits; an accepted one is applied to the authoritative
//! document, a refused one makes the scratch be rebuilt from it. A sync step 1 is answered with
//! the diff the sender lacks. After every accepted update the scratch and the authoritative
//! document must hold the same board.
//!
//! Input: [`Records`]. The first is the board the server holds (a full-state update, v1; a new
//! board with its first page when it does not apply). In each further record the first byte
//! says who sends it (bit 0: `whiteboard_write`, bit 1: `room_admin`, bit 2: the record is a
//! sync step 1 state vector rather than an update, bit 3: the sender is `s1` rather than `t1`,
//! the identities of a teacher and a student), the rest is the update (v1 encoding).

use crate::Records;
use aula_protocol::whiteboard::wire::decode_state_vector;
use aula_protocol::whiteboard::{
    decode_update, Board, Editor, Scratch, WhiteboardLimits, DEFAULT_PAGE,
};
use yrs::{Doc, ReadTxn, StateVector, Transact};

/// Small bounds, so inputs reach every limit.
fn limits() -> WhiteboardLimits {
    WhiteboardLimits {
        max_update_bytes: 64 * 1024,
        max_points_per_stroke: 64,
        max_items_per_page: 32,
        max_pages: 4,
        max_text_bytes: 256,
        max_id_bytes: 64,
        max_updates_per_second: 200,
        ..WhiteboardLimits::default()
    }
}

fn full_state(board: &Board) -> Vec<u8> {
    board
        .doc()
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
}

fn digest(board: &Board) -> String {
    board.digest(&board.doc().transact())
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let limits = limits();
    let mut records = Records::new(data);
    let Some(state) = records.next() else {
        return;
    };
    let board = Board::new(Doc::with_client_id(1));
    let loaded = decode_update(state)
        .ok()
        .is_some_and(|update| board.doc().transact_mut().apply_update(update).is_ok());
    if !loaded || board.pages(&board.doc().transact()).is_empty() {
        // A new board, as the server seeds it: one page.
        board.ensure_page(&mut board.doc().transact_mut(), DEFAULT_PAGE);
    }
    let Ok(mut scratch) = Scratch::rebuild(&full_state(&board)) else {
        // A stored board the scratch cannot hold (the server would not load it either).
        return;
    };
    for record in records {
        let Some((&flags, payload)) = record.split_first() else {
            continue;
        };
        if flags & 4 != 0 {
            if let Ok(sv) = decode_state_vector(payload) {
                let _ = board.doc().transact().encode_diff_v1(&sv);
            }
            continue;
        }
        let editor = Editor {
            identity: if flags & 8 != 0 { "s1" } else { "t1" }.into(),
            can_write: flags & 1 != 0,
            is_admin: flags & 2 != 0,
        };
        match scratch.check(payload, &editor, &limits) {
            Ok(_) => {
                let update = decode_update(payload).expect("a checked update decodes");
                board
                    .doc()
                    .transact_mut()
                    .apply_update(update)
                    .expect("a checked update applies");
                assert_eq!(
                    digest(&board),
                    digest(scratch.board()),
                    "the authoritative board and the scratch diverged"
                );
            }
            Err(_) => {
                scratch = Scratch::rebuild(&full_state(&board))
                    .expect("the authoritative state rebuilds");
            }
        }
    }
}
