#!/usr/bin/env bash
# Builds the SDK library as shipped (profile release-sdk) and prints its stripped size, and
# with --breakdown, the largest contributors by crate: from the symbol table of the same
# whole-program (LTO) build with symbols kept (CARGO_PROFILE_RELEASE_SDK_STRIP=false), so the
# attribution is of the code that ships; its stripped copy is within a few KB of the plain
# build. The next plain run rebuilds with stripping.
set -euo pipefail
cd "$(dirname "$0")/.."
sdk=target/release-sdk/libaula.so
if [ "${1:-}" != "--breakdown" ]; then
  cargo build --profile release-sdk -p aula-ffi --lib
  printf 'release-sdk libaula.so: %s bytes (%.2f MB)\n' "$(stat -c %s "$sdk")" \
    "$(echo "$(stat -c %s "$sdk") / 1000000" | bc -l)"
  exit 0
fi
CARGO_PROFILE_RELEASE_SDK_STRIP=false cargo build --profile release-sdk -p aula-ffi --lib
stripped=$(mktemp)
strip -o "$stripped" "$sdk"
printf 'release-sdk libaula.so with symbols: %s bytes; stripped copy: %s bytes (%.2f MB)\n' \
  "$(stat -c %s "$sdk")" "$(stat -c %s "$stripped")" \
  "$(echo "$(stat -c %s "$stripped") / 1000000" | bc -l)"
size -A "$stripped" | awk 'NR > 2 && $1 != "Total" && $2 > 100000 { printf "  section %-20s %6.2f MB\n", $1, $2 / 1e6 }'
rm -f "$stripped"
nm -C --size-sort -S "$sdk" | python3 -c '
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
for crate, size in sizes.most_common(25):
    print(f"  {size/1e6:6.2f} MB  {crate}")
'
