//! libFuzzer entry point of [`aula_fuzz::targets::rtx_unwrap`] (what it covers is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aula_fuzz::targets::rtx_unwrap::run(data));
