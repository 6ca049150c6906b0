//! The end-to-end tests: a real server and real clients on loopback, one module per area, all in
//! this one test binary. (Each test binary links the server, the client core, WebRTC and the
//! codecs: one binary instead of one per area saves most of the link time and disk a test
//! run costs.) Tests share the process through `support::serial`: every test holds
//! `support::shared()`, and the ones that measure time on the media path or change the
//! environment hold `support::exclusive()`.

mod support;

mod adaptation;
mod aiortc;
mod app_media;
mod audio_devices;
mod bandwidth;
mod browser;
mod call;
mod classroom;
mod hardening;
mod ice_tcp;
mod limits;
mod mute;
mod network;
mod no_devices;
mod openapi;
mod protocol_doc;
mod reconnect;
mod screen_share;
mod teardown;
mod track_kinds;
mod turn;
mod webhooks;
mod whiteboard;
mod whiteboard_abuse;
mod whiteboard_yjs;

/// `autotests = false` (tests/Cargo.toml) means a file in tests/tests/ is compiled only when a
/// `mod` line above names it: a new file that is not named here would silently never run.
#[test]
fn every_file_here_is_a_module_of_this_binary() {
    let _suite = support::shared_blocking();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let declared = include_str!("main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/tests is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let is_module = if path.is_dir() {
            path.join("mod.rs").exists()
        } else {
            path.extension().is_some_and(|e| e == "rs") && stem != "main"
        };
        if is_module && !declared.contains(&format!("\nmod {stem};\n")) {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "add `mod NAME;` to tests/tests/main.rs for {missing:?}"
    );
}
