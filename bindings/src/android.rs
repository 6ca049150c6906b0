//! Android glue: `JNI_OnLoad` records the process's `JavaVM` when the library is loaded with
//! `System.loadLibrary("aula")` (the AAR's `org.aula.android.AulaAndroid.load()` does that
//! before JNA binds the uniffi functions), so native code that needs the JVM (Android audio
//! backends, `ndk-context` users) can reach it with `jni::JavaVM::singleton()`.
//!
//! Compiled only for `target_os = "android"`; untested on this machine (no NDK here).
#![allow(unsafe_code)]

use std::ffi::c_void;

use jni::sys::{jint, JavaVM as RawJavaVm, JNI_ERR, JNI_VERSION_1_6};

/// Called by the JVM when it loads `libaula.so` through `System.loadLibrary`.
#[no_mangle]
pub extern "system" fn JNI_OnLoad(vm: *mut RawJavaVm, _reserved: *mut c_void) -> jint {
    if vm.is_null() {
        return JNI_ERR;
    }
    // SAFETY: the JVM passes JNI_OnLoad a valid, non-null JavaVM pointer that stays valid for
    // the life of the process; `from_raw` only stores it in jni's process-wide singleton.
    let _vm = unsafe { jni::JavaVM::from_raw(vm) };
    JNI_VERSION_1_6
}
