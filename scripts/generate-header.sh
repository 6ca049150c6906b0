#!/usr/bin/env bash
# Regenerates bindings/include/aula.h from the C ABI in bindings/src/c_api (cbindgen, through
# the header test so the version and configuration are the ones CI checks against).
set -euo pipefail
cd "$(dirname "$0")/.."
AULA_BLESS=1 cargo test -p aula-ffi --test c_header the_checked_in_header_is_current -- --exact
echo "bindings/include/aula.h regenerated"
