#!/usr/bin/env bash
# Side-by-side capacity benchmark: aula-server against livekit-server on this machine, with the
# same class shape (rooms, publishers, simulcast layers, subscribers, resolution, frame rate,
# duration). Each server runs pinned to one core, its load generator to another; the script
# reads the server process's CPU time and memory from /proc and prints one Markdown table of
# medians over the runs. See bench/compare/README.md.
#
# livekit-server is built from the Go module proxy into .cache/ (never committed); aula-server
# and `aula load-test` from this checkout (release). Everything binds 127.0.0.1 on free ports.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/compare/livekit.sh [options]
  --rooms N                  rooms (default 4)
  --participants-per-room N  participants in each room (default 5)
  --publishers-per-room N    publishers in each room (default 1)
  --resolution WxH           publishers' picture (default 640x360)
  --fps N                    frame rate (default 15)
  --duration S               seconds measured per run (default 30)
  --join-rate N              participants joining per second (default 10)
  --runs N                   runs per server configuration (default 3)
  --server-cpu N             CPU the server is pinned to (default 0)
  --load-cpu N               CPU the load generators are pinned to (default 1)
  --max-load X               refuse to measure when the 1-minute load is above X (default 1.5)
  --allow-busy               measure anyway (a smoke run; the figures do not count)
  --configs LIST             comma-separated subset of aula,livekit-remb,livekit-twcc (default all)
  --out DIR                  where runs and the table go (default .cache/compare/<UTC time>)
EOF
}

ROOMS=4 PER_ROOM=5 PUBLISHERS=1 RESOLUTION=640x360 FPS=15 DURATION=30 JOIN_RATE=10 RUNS=3
SERVER_CPU=0 LOAD_CPU=1 MAX_LOAD=1.5 ALLOW_BUSY=0 OUT="" CONFIG_LIST=aula,livekit-remb,livekit-twcc
LIVEKIT_VERSION=v1.13.5
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rooms) ROOMS=$2; shift 2 ;;
        --participants-per-room) PER_ROOM=$2; shift 2 ;;
        --publishers-per-room) PUBLISHERS=$2; shift 2 ;;
        --resolution) RESOLUTION=$2; shift 2 ;;
        --fps) FPS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --join-rate) JOIN_RATE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --server-cpu) SERVER_CPU=$2; shift 2 ;;
        --load-cpu) LOAD_CPU=$2; shift 2 ;;
        --max-load) MAX_LOAD=$2; shift 2 ;;
        --allow-busy) ALLOW_BUSY=1; shift ;;
        --configs) CONFIG_LIST=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
for n in "$ROOMS" "$PER_ROOM" "$FPS" "$RUNS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "counts must be positive integers" >&2; exit 2; }
done
[[ $PUBLISHERS =~ ^[0-9]+$ && $PUBLISHERS -le $PER_ROOM ]] ||
    { echo "--publishers-per-room must be 0..--participants-per-room" >&2; exit 2; }
awk -v d="$DURATION" 'BEGIN { exit !(d >= 3) }' || { echo "--duration must be at least 3 s" >&2; exit 2; }
IFS=, read -r -a CONFIGS <<<"$CONFIG_LIST"
for config in "${CONFIGS[@]}"; do
    case $config in aula|livekit-remb|livekit-twcc) ;; *) echo "unknown configuration $config" >&2; exit 2 ;; esac
done
has_config() { [[ ,$CONFIG_LIST, == *,$1,* ]]; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=$ROOT/.cache
OUT=${OUT:-$CACHE/compare/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT" "$CACHE/bin"
for tool in go cargo taskset ffmpeg curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

load1() { cut -d' ' -f1 /proc/loadavg; }
CLK_TCK=$(getconf CLK_TCK)

# --- build ---------------------------------------------------------------------------------
export GOCACHE=$CACHE/go-build GOFLAGS=-mod=mod
LIVEKIT_BIN=$CACHE/bin/livekit-server-$LIVEKIT_VERSION
if [[ ! -x $LIVEKIT_BIN ]] && { has_config livekit-remb || has_config livekit-twcc; }; then
    echo "building livekit-server $LIVEKIT_VERSION from the module proxy ($(go env GOPROXY))" >&2
    GOBIN=$CACHE/bin/livekit-$LIVEKIT_VERSION go install \
        "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION"
    mv "$CACHE/bin/livekit-$LIVEKIT_VERSION/server" "$LIVEKIT_BIN"
fi
echo "building the LiveKit load generator" >&2
(cd "$ROOT/bench/compare" && go build -o "$CACHE/bin/loadgen" ./loadgen)
if has_config aula; then
    echo "building aula and aula-server (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet -p aula -p aula-server)
fi
AULA_BIN=${AULA_BIN:-$ROOT/target/release/aula}
AULA_SERVER_BIN=${AULA_SERVER_BIN:-$ROOT/target/release/aula-server}

# --- processes -----------------------------------------------------------------------------
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # free_port tcp|udp
    python3 - "$1" <<'EOF'
import socket, sys
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}

cpu_ticks() { # utime + stime of a process, in clock ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

wait_http() { # wait_http URL PID
    for _ in $(seq 1 150); do
        curl -sf -o /dev/null "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# aula-server's forwarded packets and payload bytes, all kinds, from its /metrics.
aula_forwarded() { # aula_forwarded URL -> "packets bytes"
    curl -sf "$1" | awk '
        /^aula_forwarded_packets_total[{ ]/ { p += $NF }
        /^aula_forwarded_bytes_total[{ ]/ { b += $NF }
        END { printf "%d %d\n", p, b }'
}

API_KEY=benchkey
API_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(24))')

write_livekit_yaml() { # write_livekit_yaml FILE HTTP_PORT UDP_PORT STUN_PORT twcc|remb
    local cc
    if [[ $5 == twcc ]]; then
        # Estimate each subscriber's downlink from transport-wide congestion control feedback.
        cc=$'    enabled: true\n    use_send_side_bwe: true'
    else
        # LiveKit's default: the subscriber's estimate comes from REMB.
        cc=$'    enabled: true'
    fi
    cat >"$1" <<EOF
port: $2
bind_addresses: ["127.0.0.1"]
keys:
  $API_KEY: $API_SECRET
logging:
  level: warn
rtc:
  udp_port: $3
  tcp_port: 0
  node_ip: 127.0.0.1
  use_external_ip: false
  use_ice_lite: true
  enable_loopback_candidate: true
  ips:
    includes: ["127.0.0.1/32"]
  # No STUN server leaves this machine: clients are pointed at a closed loopback port.
  stun_servers: ["127.0.0.1:$4"]
  congestion_control:
$cc
EOF
}

# run_one NAME RUN: starts the server, loads it, records one line of figures in $OUT/runs.tsv.
run_one() {
    local name=$1 run=$2 http udp url server_pid load_pid log="$OUT/$1-$2"
    http=$(free_port tcp)
    udp=$(free_port udp)
    case $name in
        aula)
            taskset -c "$SERVER_CPU" "$AULA_SERVER_BIN" --listen "127.0.0.1:$http" --rtc-port "$udp" \
                --public-ip 127.0.0.1 --ice-tcp false --api-key "$API_KEY" --api-secret "$API_SECRET" \
                >"$log.server.log" 2>&1 &
            server_pid=$!
            url=ws://127.0.0.1:$http
            ;;
        livekit-*)
            write_livekit_yaml "$log.livekit.yaml" "$http" "$udp" "$(free_port udp)" "${name#livekit-}"
            taskset -c "$SERVER_CPU" "$LIVEKIT_BIN" --config "$log.livekit.yaml" >"$log.server.log" 2>&1 &
            server_pid=$!
            url=ws://127.0.0.1:$http
            ;;
    esac
    PIDS+=("$server_pid")
    wait_http "http://127.0.0.1:$http/" "$server_pid" ||
        { echo "$name did not start; see $log.server.log" >&2; return 1; }
    sleep 1
    local rss_idle
    rss_idle=$(rss_kib "$server_pid")

    local shape=(--url "$url" --api-key "$API_KEY" --api-secret "$API_SECRET" --rooms "$ROOMS"
        --participants-per-room "$PER_ROOM" --publishers-per-room "$PUBLISHERS"
        --resolution "$RESOLUTION" --fps "$FPS" --join-rate "$JOIN_RATE" --duration "$DURATION"
        --room-prefix "$name-$run" --stats-json "$log.json")
    if [[ $name == aula ]]; then
        taskset -c "$LOAD_CPU" "$AULA_BIN" load-test "${shape[@]}" >"$log.load.log" 2>&1 &
    else
        taskset -c "$LOAD_CPU" "$CACHE/bin/loadgen" "${shape[@]}" --media-dir "$CACHE/loadgen-media" \
            >"$log.load.log" 2>&1 &
    fi
    load_pid=$!
    PIDS+=("$load_pid")
    # Both load generators print this line once everyone has joined, then settle for 2 s and
    # measure for --duration s. The server is sampled inside that window.
    until grep -q "participants joined; measuring for" "$log.load.log"; do
        kill -0 "$load_pid" 2>/dev/null || { echo "$name load generator ended early; see $log.load.log" >&2; break; }
        sleep 0.1
    done
    sleep 2.5
    local t0 c0 l0 f0=(0 0) t1 c1 l1 f1=(0 0) rss_loaded
    t0=$(date +%s.%N)
    c0=$(cpu_ticks "$server_pid")
    l0=$(cpu_ticks "$load_pid" 2>/dev/null || echo 0)
    [[ $name == aula ]] && read -r -a f0 <<<"$(aula_forwarded "http://127.0.0.1:$http/metrics")"
    sleep "$(awk -v d="$DURATION" 'BEGIN { print d - 1 }')"
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$server_pid")
    l1=$(cpu_ticks "$load_pid" 2>/dev/null || echo 0)
    [[ $name == aula ]] && read -r -a f1 <<<"$(aula_forwarded "http://127.0.0.1:$http/metrics")"
    rss_loaded=$(rss_kib "$server_pid")
    wait "$load_pid" || true # a run with starved receivers exits non-zero; it is still a figure
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true

    python3 - "$name" "$run" "$log.json" "$t0" "$t1" "$c0" "$c1" "$CLK_TCK" "${f0[@]}" "${f1[@]}" \
        "$rss_idle" "$rss_loaded" "$(load1)" "$l0" "$l1" >>"$OUT/runs.tsv" <<'EOF'
import json, sys
(name, run, report, t0, t1, c0, c1, tck, p0, b0, p1, b1, rss_idle, rss_loaded, load, l0, l1) = sys.argv[1:]
r = json.load(open(report))
window = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(tck) / window  # cores busy
if name == "aula":  # what the server says it forwarded, over the sampled window
    pps = (int(p1) - int(p0)) / window
    mbps = (int(b1) - int(b0)) * 8 / window / 1e6
else:  # what the receivers counted, over the load generator's window
    pps = r["forwarded_packets"] / r["duration_s"]
    mbps = r["forwarded_mbps"]
joined = max(r["joined"], 1)
row = [name, run, f"{cpu:.4f}", f"{pps:.1f}", f"{mbps:.3f}",
       f"{cpu * 1000 / pps * 1000:.3f}" if pps else "nan",   # CPU ms per 1000 packets
       f"{cpu * 100 / mbps:.3f}" if mbps else "nan",           # % of a core per Mbit/s
       f"{(int(rss_loaded) - int(rss_idle)) / joined:.1f}",     # KiB per participant
       rss_idle, rss_loaded, str(r["joined"]), str(r["participants"]),
       str(r["starved_receivers"]), load,
       f"{(int(l1) - int(l0)) / int(tck) / window:.4f}"]  # load generator cores busy
print("\t".join(row))
EOF
    tail -n 1 "$OUT/runs.tsv" >&2
}

# --- measure -------------------------------------------------------------------------------
LOAD_BEFORE=$(cat /proc/loadavg)
if awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; then
    if [[ $ALLOW_BUSY == 1 ]]; then
        echo "warning: load $(load1) is above $MAX_LOAD; a smoke run, the figures do not count" >&2
    else
        echo "load $(load1) is above $MAX_LOAD: other work would skew the figures (--allow-busy for a smoke run)" >&2
        exit 3
    fi
fi
printf 'config\trun\tcpu_cores\tfwd_pps\tfwd_mbps\tcpu_ms_per_1k_packets\tcpu_pct_per_mbps\tkib_per_participant\trss_idle_kib\trss_loaded_kib\tjoined\tparticipants\tstarved\tload1\tloadgen_cores\n' >"$OUT/runs.tsv"
# Configurations take turns within each run, so a drift in the machine's load hits them alike.
for run in $(seq 1 "$RUNS"); do
    for config in "${CONFIGS[@]}"; do
        echo "run $run/$RUNS: $config" >&2
        run_one "$config" "$run"
    done
done
LOAD_AFTER=$(cat /proc/loadavg)

python3 - "$OUT/runs.tsv" "$ROOMS" "$PER_ROOM" "$PUBLISHERS" "$RESOLUTION" "$FPS" "$DURATION" "$RUNS" \
    "$LIVEKIT_VERSION" "$(git -C "$ROOT" rev-parse --short HEAD)" "$LOAD_BEFORE" "$LOAD_AFTER" \
    "$(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$ALLOW_BUSY" \
    >"$OUT/table.md" <<'EOF'
import csv, statistics, sys, datetime
(path, rooms, per_room, pubs, res, fps, dur, runs, lk, commit, before, after, cpu, busy) = sys.argv[1:]
rows = list(csv.DictReader(open(path), delimiter="\t"))
def med(config, key):
    vals = [float(r[key]) for r in rows if r["config"] == config]
    return statistics.median(vals) if vals else float("nan")
names = {"aula": "aula-server", "livekit-remb": f"livekit-server {lk} (default: REMB)",
         "livekit-twcc": f"livekit-server {lk} (send-side BWE from TWCC)"}
print(f"{rooms} rooms x {per_room} participants ({pubs} simulcast publisher(s) per room, {res} at {fps} fps), "
      f"{dur} s measured, medians of {runs} runs; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
      f"commit {commit}, {cpu}; load before: {before.split()[:3]}, after: {after.split()[:3]}"
      + ("; SMOKE RUN on a busy machine, figures do not count" if busy == "1" else ""))
print()
print("| Server | CPU ms / 1 000 fwd packets | CPU % of a core / fwd Mbit/s | fwd packets/s | fwd Mbit/s "
      "| server cores busy | memory KiB / participant | starved receivers | load generator cores busy |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
present = [c for c in ["aula", "livekit-remb", "livekit-twcc"] if any(r["config"] == c for r in rows)]
for c in present:
    print(f"| {names[c]} | {med(c, 'cpu_ms_per_1k_packets'):.2f} | {med(c, 'cpu_pct_per_mbps'):.2f} "
          f"| {med(c, 'fwd_pps'):.0f} | {med(c, 'fwd_mbps'):.2f} | {med(c, 'cpu_cores'):.3f} "
          f"| {med(c, 'kib_per_participant'):.0f} | {med(c, 'starved'):.0f} | {med(c, 'loadgen_cores'):.2f} |")
print()
for c in [c for c in present if c != "aula" and "aula" in present]:
    ratio = lambda k: med("aula", k) / med(c, k)
    print(f"- Aula / {names[c]}: CPU per packet {ratio('cpu_ms_per_1k_packets'):.2f} x, "
          f"CPU per Mbit/s {ratio('cpu_pct_per_mbps'):.2f} x, memory per participant {ratio('kib_per_participant'):.2f} x")
EOF
cat "$OUT/table.md"
echo "runs and logs: $OUT" >&2
