#!/usr/bin/env bash
# Builds AulaFFI.xcframework (static libaula.a for iOS devices and the simulator, arm64 and
# x86_64) and generates the Swift bindings into Sources/Aula, ready for `swift build` / Xcode.
#
# Needs macOS with Xcode and `rustup target add aarch64-apple-ios aarch64-apple-ios-sim
# x86_64-apple-ios`. UNTESTED on the machine that wrote it (Linux, no Xcode).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-15.0}"
cd "$root"
for target in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
    cargo build --release -p aula-ffi --target "$target"
done

work="$root/target/xcframework"
rm -rf "$work" "$here/AulaFFI.xcframework"
mkdir -p "$work/headers" "$work/sim" "$work/swift"

# Swift bindings, header and module map from the library's uniffi metadata.
cargo run -q -p uniffi-bindgen -- generate \
    --library "target/aarch64-apple-ios/release/libaula.a" \
    --language swift --no-format --out-dir "$work/swift"
cp "$work/swift/AulaFFI.h" "$work/headers/"
# An XCFramework's headers need the module map under this exact name.
cp "$work/swift/AulaFFI.modulemap" "$work/headers/module.modulemap"
mkdir -p "$here/Sources/Aula"
cp "$work/swift/Aula.swift" "$here/Sources/Aula/Aula.swift"

# One fat simulator library (arm64 + x86_64), one device library.
lipo -create \
    target/aarch64-apple-ios-sim/release/libaula.a \
    target/x86_64-apple-ios/release/libaula.a \
    -output "$work/sim/libaula.a"
xcodebuild -create-xcframework \
    -library target/aarch64-apple-ios/release/libaula.a -headers "$work/headers" \
    -library "$work/sim/libaula.a" -headers "$work/headers" \
    -output "$here/AulaFFI.xcframework"
echo "built $here/AulaFFI.xcframework and $here/Sources/Aula/Aula.swift"
