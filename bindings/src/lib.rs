//! Aula SDK bindings: uniffi objects over `aula-core` for Kotlin, Swift and Python
//! ([`uniffi_api`]), and a plain C ABI with a generated header ([`c_api`]).
#![deny(missing_docs)]

uniffi::setup_scaffolding!("aula");

#[cfg(target_os = "android")]
pub mod android;
pub mod c_api;
pub mod uniffi_api;
