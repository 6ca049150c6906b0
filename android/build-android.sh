#!/usr/bin/env bash
# Builds the Aula Android library (AAR): libaula.so for arm64-v8a, armeabi-v7a and x86_64 with
# cargo ndk, the uniffi Kotlin bindings, then the AAR with Gradle.
#
# Needs: the Android SDK and NDK (ANDROID_HOME, ANDROID_NDK_HOME), `cargo install cargo-ndk`,
# `rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android`, and
# Gradle (or a wrapper: `gradle wrapper` once). UNTESTED on the machine that wrote it: it has no
# NDK or Android SDK. Output: android/aula/build/outputs/aar/aula-release.aar
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to the NDK directory}"
api="${AULA_ANDROID_API:-24}"
generated="$here/aula/build/generated"
rm -rf "$generated/jniLibs" "$generated/uniffi"
mkdir -p "$generated/jniLibs" "$generated/uniffi"

cd "$root"
# openh264 and opus are built from C/C++ sources by their -sys crates with the NDK's clang.
cargo ndk --platform "$api" -t arm64-v8a -t armeabi-v7a -t x86_64 \
    -o "$generated/jniLibs" build --release -p aula-ffi

# The bindings come from the library's metadata; any one ABI gives the same Kotlin.
cargo run -q -p uniffi-bindgen -- generate \
    --library "$generated/jniLibs/arm64-v8a/libaula.so" \
    --language kotlin --no-format --out-dir "$generated/uniffi/kotlin"

# Strip the debug info cargo ndk keeps (the AAR's size is the app's size).
strip_tool="$(find "$ANDROID_NDK_HOME/toolchains/llvm/prebuilt" -name llvm-strip | head -n1)"
if [ -n "$strip_tool" ]; then
    find "$generated/jniLibs" -name libaula.so -exec "$strip_tool" --strip-unneeded {} \;
fi

cd "$here"
if [ -x ./gradlew ]; then ./gradlew -q :aula:assembleRelease; else gradle -q :aula:assembleRelease; fi
ls -l "$here/aula/build/outputs/aar/"
