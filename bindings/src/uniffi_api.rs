//! The uniffi API (in progress).
