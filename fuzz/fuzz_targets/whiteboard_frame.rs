//! libFuzzer entry point of [`aula_fuzz::targets::whiteboard_frame`] (what it covers is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aula_fuzz::targets::whiteboard_frame::run(data));
