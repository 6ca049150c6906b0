//! The checked-in C header matches the C ABI, and compiles as C11 and C++.

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The header cbindgen generates from the current sources.
fn generated_header() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("the C ABI parses")
        .write(&mut out);
    String::from_utf8(out).expect("UTF-8 header")
}

#[test]
fn the_checked_in_header_is_current() {
    let path = crate_dir().join("include/aula.h");
    let generated = generated_header();
    if std::env::var_os("AULA_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("header written");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "bindings/include/aula.h is stale: run scripts/generate-header.sh and commit the result"
    );
    for symbol in [
        "aula_room_connect",
        "aula_room_free",
        "aula_last_error_message",
        "aula_string_free",
        "AulaVideoFrameCallback",
        "aula_room_whiteboard",
        "aula_whiteboard_free",
        "aula_items_free",
        "AulaWhiteboardEventCallback",
    ] {
        assert!(
            generated.contains(symbol),
            "{symbol} missing from the header"
        );
    }
}

fn compiles(compiler: &str, args: &[&str], source: &Path) {
    let status = Command::new(compiler)
        .args(args)
        .arg(source)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(status.success(), "{compiler} {args:?} rejects the header");
}

#[test]
fn the_header_compiles_cleanly_as_c11_and_cpp() {
    let dir = tempdir();
    let include = crate_dir().join("include");
    let c_source = dir.join("check.c");
    std::fs::write(
        &c_source,
        "#include \"aula.h\"\nint main(void) { return aula_version() == 0; }\n",
    )
    .unwrap();
    let include_flag = format!("-I{}", include.display());
    compiles(
        "cc",
        &[
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
            &include_flag,
        ],
        &c_source,
    );
    let cpp_source = dir.join("check.cpp");
    std::fs::write(
        &cpp_source,
        "#include \"aula.h\"\nint main() { return aula_version() == nullptr; }\n",
    )
    .unwrap();
    compiles(
        "c++",
        &[
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            &include_flag,
        ],
        &cpp_source,
    );
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aula-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
