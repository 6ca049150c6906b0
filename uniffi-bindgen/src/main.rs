//! `uniffi-bindgen` pinned to the workspace's uniffi: generates the Kotlin, Swift and Python
//! bindings from the built `libaula` (`generate --library target/release/libaula.so
//! --language kotlin --out-dir DIR`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
