#!/usr/bin/env bash
# Tests the uniffi SDK bindings against a real aula-server (called by scripts/test.sh after the
# cargo tests): generates Kotlin, Swift and Python bindings (any failure fails the run), runs
# the C and Rust tests of aula-ffi again with its `png` feature, the Python tests (pytest in a
# venv under target/) and the Kotlin tests on the JVM (Maven), against a library with PNG export.
# Needs python3 with venv, Maven and a JRE; scripts/test.sh installs them on Debian as root.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== bindings: generate Kotlin, Swift, Python"
scripts/generate-bindings.sh target/bindings

# `cargo test --workspace` already ran the C tests against the default build, where PNG export
# is unsupported; here the unit tests, the header check and the C program that exports the board
# run again with PNG export (feature png). The C call and class programs, which never touch PNG
# export, are not run a second time under valgrind (a minute of the suite's time).
echo "== bindings: C ABI and unit tests with PNG export (cargo test -p aula-ffi --features png)"
cargo test --locked -q -p aula-ffi --features png --lib --test c_header
cargo test --locked -q -p aula-ffi --features png --test c_abi -- \
  --exact a_c_program_draws_on_the_whiteboard_and_reads_it_back_from_the_other_side

# The library the Python and Kotlin tests load: PNG export on, which they exercise, and
# otherwise as shipped. Built on its own, after the generation and the tests above (which
# build other feature sets), so that its dependencies' features are its own and not those
# the server or the test harness would add (token signing, log formatting).
echo "== bindings: cargo build -p aula-ffi --features png; cargo build -p aula-server"
cargo build --locked -q -p aula-ffi --features png
cargo build --locked -q -p aula-server -p uniffi-bindgen

echo "== bindings: Python (pytest)"
venv=target/py-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import pytest, setuptools" 2>/dev/null ||
  "$venv/bin/pip" install -q --disable-pip-version-check pytest setuptools wheel
bindings/python/build.sh target/debug/libaula.so >/dev/null
"$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps \
  --force-reinstall ./bindings/python
"$venv/bin/python" -m pytest -q -p no:cacheprovider bindings/python/tests

echo "== bindings: Kotlin on the JVM (Maven)"
bindings/kotlin-tests/run.sh
echo "== bindings: passed"
