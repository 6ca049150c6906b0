//! Aula SDK bindings (work in progress): uniffi objects over `aula-core` and a C ABI.
#![deny(missing_docs)]
