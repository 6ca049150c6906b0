#!/usr/bin/env bash
# Builds the SDK library as shipped (profile release-sdk) and prints its stripped size, and
# with --breakdown, the largest contributors by crate (from the symbol table of the plain
# release build, which keeps its symbols: `nm --size-sort`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile release-sdk -p aula-ffi --lib
sdk=target/release-sdk/libaula.so
printf 'release-sdk libaula.so: %s bytes (%.2f MB)\n' "$(stat -c %s "$sdk")" \
  "$(echo "$(stat -c %s "$sdk") / 1000000" | bc -l)"
if [ "${1:-}" = "--breakdown" ]; then
  cargo build --release -p aula-ffi --lib
  release=target/release/libaula.so
  stripped=$(mktemp)
  strip -o "$stripped" "$release"
  printf 'release libaula.so, stripped: %s bytes\n' "$(stat -c %s "$stripped")"
  rm -f "$stripped"
  nm -C --size-sort -S "$release" | python3 -c '
import re, sys, collections
sizes = collections.Counter()
for line in sys.stdin:
    parts = line.split(None, 3)
    if len(parts) < 4 or parts[2] not in "tTrRdD":
        continue
    size, name = int(parts[1], 16), parts[3].lstrip("<")
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    sizes[m.group(1) if m else "C and assembly (openh264, opus, ring)"] += size
total = sum(sizes.values())
print(f"code and data in symbols: {total/1e6:.2f} MB; largest by crate:")
for crate, size in sizes.most_common(15):
    print(f"  {size/1e6:6.2f} MB  {crate}")
'
fi
