#!/usr/bin/env bash
# Generates the Kotlin, Swift and Python bindings of the Aula SDK from a built libaula, with
# the workspace's pinned uniffi-bindgen.
#   scripts/generate-bindings.sh [--release] [OUT_DIR]    (default OUT_DIR: target/bindings)
# Builds aula-ffi first (debug unless --release). Fails if any language fails to generate.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
profile=debug
if [ "${1:-}" = "--release" ]; then
    profile=release
    shift
fi
out="${1:-$root/target/bindings}"
cd "$root"
if [ "$profile" = release ]; then
    cargo build -q -p aula-ffi --release
else
    cargo build -q -p aula-ffi
fi
case "$(uname -s)" in
    Darwin) lib="target/$profile/libaula.dylib" ;;
    *) lib="target/$profile/libaula.so" ;;
esac
for language in kotlin swift python; do
    rm -rf "${out:?}/$language"
    cargo run -q -p uniffi-bindgen -- generate --library "$lib" --language "$language" \
        --no-format --out-dir "$out/$language"
    count=$(find "$out/$language" -type f | wc -l)
    if [ "$count" -eq 0 ]; then
        echo "no $language bindings generated" >&2
        exit 1
    fi
    echo "$language: $(find "$out/$language" -type f | sed "s|$out/||" | tr '\n' ' ')"
done
