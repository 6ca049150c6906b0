#!/usr/bin/env bash
# The attacks of the security review, reproduced against a release aula-server on loopback:
# server memory during a flood of sync requests, how long a slow reader survives presence spam,
# and /healthz and joins under half-open connections with `ulimit -n 1024`. Each prints one
# JSON line per run and the medians (see bench/src/attack.rs).
#
# Usage: scripts/attack.sh [SERVER_BINARY] [RUNS]
#   SERVER_BINARY  the aula-server to attack (default: this checkout's release build), e.g. an
#                  older build to compare with
#   RUNS           fresh servers per attack (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p aula-server -p aula-bench
server="${1:-target/release/aula-server}"
runs="${2:-3}"
bench=target/release/aula-bench
echo "# $(uptime)"
echo "# sync-flood: 400 four-byte sync step 1 (empty state vector) from an observer that does not read, 2 MB board"
"$bench" attack sync-flood --server-bin "$server" --runs "$runs"
echo "# presence-spam: 5000 frames of 16 KiB from an observer; a student reading one message per 10 ms"
"$bench" attack presence-spam --server-bin "$server" --runs "$runs" --frame-bytes 16384 --watch 30
echo "# presence-spam: the same with frames of 3.9 KiB (under the server's presence size cap)"
"$bench" attack presence-spam --server-bin "$server" --runs "$runs" --frame-bytes 3900 --watch 30
echo "# half-open: 1100 silent or half-sent HTTP connections, server under ulimit -n 1024"
"$bench" attack half-open --server-bin "$server" --runs "$runs" --nofile 1024 --connections 1100
