#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, unit and end-to-end tests.
# Installs what a fresh Debian machine lacks (nasm, for the fast H.264 build) when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v nasm >/dev/null 2>&1 || need_packages+=(nasm)
command -v cc >/dev/null 2>&1 || need_packages+=(build-essential)
# The browser test drives Debian's Chromium through playwright-core (never a browser download).
[ -x /usr/bin/chromium ] || need_packages+=(chromium)
command -v node >/dev/null 2>&1 || need_packages+=(nodejs npm)
# The TURN test relays media through a real coturn on loopback.
command -v turnserver >/dev/null 2>&1 || need_packages+=(coturn)
# The SDK bindings tests: Python venv, Maven (with a JRE) for the Kotlin test.
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need_packages+=(python3-venv)
command -v mvn >/dev/null 2>&1 || need_packages+=(maven)
# The C ABI test runs its C program under valgrind (and compiles it with cc and c++).
command -v valgrind >/dev/null 2>&1 || need_packages+=(valgrind)
command -v c++ >/dev/null 2>&1 || need_packages+=(g++)
if [ ${#need_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${need_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}"
  else
    echo "warning: missing ${need_packages[*]}; install them (the build works without nasm, slower)" >&2
  fi
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "== npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -d tests/yjs-interop/node_modules/yjs ]; then
  echo "== npm ci (tests/yjs-interop)"
  (cd tests/yjs-interop && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The SDK's two feature sets, which the workspace build does not see: as shipped (no PNG export,
# no token signing: aula-protocol and aula-core without their defaults) and with PNG export.
cargo clippy -p aula-protocol -p aula-core -p aula-ffi --lib --no-default-features --locked \
  -- -D warnings
cargo clippy -p aula-core -p aula-ffi --all-targets --no-default-features --locked -- -D warnings
cargo clippy -p aula-ffi --all-targets --features png --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
scripts/test-bindings.sh
echo "== all checks passed"
