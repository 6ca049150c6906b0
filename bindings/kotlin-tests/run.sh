#!/usr/bin/env bash
# Generates the Kotlin bindings from a built libaula and runs the JVM tests with Maven.
#   bindings/kotlin-tests/run.sh [extra mvn args]
# Needs target/debug/libaula.so and target/debug/aula-server
# (cargo build -p aula-ffi -p aula-server), a JDK 17+ and Maven.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lib="${AULA_LIB:-$root/target/debug/libaula.so}"
# Maven runs the tests from this directory: the library path must not be relative.
lib="$(realpath "$lib")"
generated="$root/target/kotlin-tests/generated"
rm -rf "$generated"
(cd "$root" && cargo run -q -p uniffi-bindgen -- generate --library "$lib" --language kotlin \
    --no-format --out-dir "$generated")
mvn -q -B -f "$here/pom.xml" "$@" test \
    -Daula.generated="$generated" \
    -Daula.libdir="$(dirname "$lib")" \
    -Daula.server="${AULA_SERVER_BIN:-$root/target/debug/aula-server}"
