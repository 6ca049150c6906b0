//! Binary whiteboard frames from the server, as a client's replica handles them
//! (`aula_core::Whiteboard::on_frame`): sync, updates, presence, acks and refusals, then read
//! back and exported as SVG the way an app shows the board. The SVG may only hold the markup
//! the exporter writes: text from the board is escaped.
//!
//! Input: [`Records`], one frame each.

use crate::Records;
use aula_core::Whiteboard;

/// The elements `page_to_svg` writes.
const TAGS: [&str; 8] = [
    "svg", "rect", "path", "line", "polygon", "ellipse", "text", "/",
];

/// Runs one input.
pub fn run(data: &[u8]) {
    let board = Whiteboard::new("ann");
    let (out, _sent) = tokio::sync::mpsc::unbounded_channel();
    board.attach(out);
    for frame in Records::new(data) {
        board.on_frame(frame);
    }
    let _ = board.lasers();
    for page in board.pages().into_iter().take(4) {
        let _ = board.items(&page);
        let svg = board.export_svg(&page, 1280.0, 720.0);
        for (at, _) in svg.match_indices('<') {
            let rest = &svg[at + 1..];
            assert!(
                TAGS.iter().any(|tag| rest.starts_with(tag)),
                "unexpected markup in the SVG at {at}: {}",
                &rest[..rest.len().min(40)]
            );
        }
    }
}
