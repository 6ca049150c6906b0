#!/usr/bin/env bash
# Generates the Python module from a built libaula and places both in the package, ready for
# `pip install ./bindings/python`.
#   bindings/python/build.sh [path/to/libaula.so]   (default: target/debug/libaula.so)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lib="${1:-$root/target/debug/libaula.so}"
[ -f "$lib" ] || { echo "no $lib: build it with cargo build -p aula-ffi" >&2; exit 1; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
(cd "$root" && cargo run -q -p uniffi-bindgen -- generate --library "$lib" --language python --out-dir "$out")
pkg="$here/src/aula"
cp "$out/aula.py" "$pkg/_aula.py"
cp "$lib" "$pkg/"
echo "python package ready in $pkg"
