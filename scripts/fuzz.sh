#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ (cargo-fuzz, libFuzzer, AddressSanitizer) and runs each for
# SECONDS, one after another, starting from its seed corpus in fuzz/corpus/<target>. Prints one
# line per target: executions, executions per second, crashes, timeouts, out-of-memory kills,
# and the inputs the run found new coverage with. Exits non-zero when any target crashed, timed
# out or ran out of memory; the input that did it is in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#
# Environment:
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a timeout (default 10)
#   FUZZ_RSS_MB    memory one run may use before it counts as out of memory (default 2048)
#   FUZZ_WORK      where new inputs go (default: a temporary directory, removed at the end);
#                  the committed corpus is only read
#   FUZZ_TOOLCHAIN the nightly toolchain to build with (default: nightly; installed with
#                  rustup when missing). AddressSanitizer and libFuzzer's coverage
#                  instrumentation are unstable compiler flags; without nightly, the committed
#                  corpus still runs on stable: cargo test -p aula-fuzz
#   FUZZ_PROFILE   release (default: optimised, with debug assertions) or dev (no
#                  optimisation: builds faster, runs slower)
#
# Installs cargo-fuzz (from crates.io) when it is missing. For long runs, be kind to the
# machine: `nice -n 10 scripts/fuzz.sh 3600`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [TARGET...]" >&2
  exit 2
fi
seconds=$1
shift

timeout_s=${FUZZ_TIMEOUT:-10}
rss_mb=${FUZZ_RSS_MB:-2048}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== cargo install cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

toolchain=${FUZZ_TOOLCHAIN:-nightly}
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "== rustup toolchain install $toolchain"
  if ! rustup toolchain install "$toolchain" --profile minimal; then
    echo "fuzzing needs a nightly toolchain; the corpus alone runs on stable:" >&2
    echo "  cargo test -p aula-fuzz" >&2
    exit 2
  fi
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

profile=${FUZZ_PROFILE:-release}
case "$profile" in
  release) build_flag=-O ;;
  dev) build_flag=--dev ;;
  *) echo "FUZZ_PROFILE must be release or dev" >&2; exit 2 ;;
esac
# cargo-fuzz has no --locked: refuse here a lockfile the build would have to change.
cargo "+$toolchain" fetch --locked --manifest-path fuzz/Cargo.toml
echo "== cargo +$toolchain fuzz build $build_flag (${#targets[@]} targets)"
cargo "+$toolchain" fuzz build "$build_flag"

triple=$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')
if [ "$profile" = dev ]; then
  bin_dir=fuzz/target/$triple/debug
else
  bin_dir=fuzz/target/$triple/release
fi
work=${FUZZ_WORK:-}
if [ -z "$work" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

# An allocation no machine could serve fails as it would in production (a `try_reserve`
# returns an error) instead of stopping the run; one a machine might serve, above the memory
# limit, still counts as out of memory.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1"

failed=0
printf '%-24s %14s %10s %8s %9s %6s %10s\n' target executions exec/s crashes timeouts ooms new-inputs
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  artifacts=fuzz/artifacts/$target
  mkdir -p "$work/$target" "$artifacts" "$corpus"
  log=$work/$target.log
  set +e
  # New inputs go to the first corpus directory (the work one); the committed one is read.
  "$bin_dir/$target" "$work/$target" "$corpus" \
    -max_total_time="$seconds" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  status=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  if [ -z "$execs" ]; then
    # A crash ends the run before the final stats: the last status line tells how far it got.
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  fi
  crashes=0 timeouts=0 ooms=0
  if [ $status -ne 0 ]; then
    if grep -q 'ERROR: libFuzzer: timeout' "$log"; then
      timeouts=1
    elif grep -qE 'ERROR: libFuzzer: out-of-memory|ERROR: libFuzzer: malloc' "$log"; then
      ooms=1
    else
      crashes=1
    fi
    failed=1
  fi
  printf '%-24s %14s %10s %8s %9s %6s %10s\n' "$target" "${execs:-0}" "${rate:-0}" \
    "$crashes" "$timeouts" "$ooms" "${added:-0}"
  if [ $status -ne 0 ]; then
    echo "-- $target failed (exit $status); its log ends:" >&2
    tail -n 40 "$log" >&2
  fi
done
exit $failed
