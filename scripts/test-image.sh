#!/usr/bin/env bash
# Smoke-tests the aula-server container image from the host, everything on 127.0.0.1:
#  1. builds the image (scripts/build-image.sh; --no-build tests an existing TAG instead);
#  2. runs it with its ports published on 127.0.0.1 and checks /healthz, /readyz and /metrics;
#  3. runs a call through it: `aula join` processes on the host, two publishing video and audio,
#     must decode the others' video (every frame's stamp intact) and audio;
#  4. stops it (SIGTERM) while a participant is in and checks the drain: a signaling client is
#     sent `leave` with reason server_shutdown, /readyz stops answering ready, the server logs
#     every participant leaving for server_shutdown and exits 0 within the 30 s grace period;
#  5. does the same call and stop through deploy/docker-compose.yml (podman-compose or
#     docker compose).
# The egress image has no Dockerfile yet (there is no egress crate): nothing is tested for it.
#
#   scripts/test-image.sh [--engine docker|podman] [--no-build] [TAG]
#
# AULA_CLI names the `aula` binary for the participants (default: `cargo build --release -p aula`).
# Installs what it needs on Debian when run as root (podman, runc, debootstrap, podman-compose,
# curl, nodejs); otherwise says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/image-lib.sh

engine="${AULA_IMAGE_ENGINE:-}"
build=1
tag="aula-server:image-test"
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) image_die "unknown option $1 (see --help)" ;;
    *) tag="$1"; shift ;;
  esac
done

started=$(date +%s)
image_require curl:curl node:nodejs
image_pick_engine "$engine"
engine="$IMAGE_ENGINE"
if [ "$engine" = podman ]; then
  image_require podman-compose:podman-compose
  compose=(podman-compose)
else
  docker compose version >/dev/null 2>&1 || image_die "docker compose is missing"
  compose=(docker compose)
fi
node_flags=()
if [ "$(node -p 'Number(process.versions.node.split(".")[0])')" -lt 22 ]; then
  node_flags=(--experimental-websocket --no-warnings)
fi
probe() { node "${node_flags[@]}" tests/image/probe.mjs "$@"; }

passed=0
failed=0
pass() {
  passed=$((passed + 1))
  echo "ok: $*"
}
fail() {
  failed=$((failed + 1))
  echo "FAILED: $*" >&2
  exit 1
}

work="$(image_work_dir)/test.$$"
mkdir -p "$work"
container="aula-image-test-$$"
project="aula-image-test-$$"
background=()
cleanup() {
  local status=$?
  for pid in "${background[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$engine" rm -f -v "$container" >/dev/null 2>&1 || true
  AULA_IMAGE="$tag" AULA_PUBLIC_IP=127.0.0.1 AULA_API_KEY=x AULA_API_SECRET=x \
    "${compose[@]}" -p "$project" -f deploy/docker-compose.yml down -v >/dev/null 2>&1 || true
  # (podman-compose 1.0 leaves the project's network behind.)
  "$engine" network rm "${project}_default" >/dev/null 2>&1 || true
  if [ "$status" = 0 ]; then rm -rf "$work"; else echo "logs and stats kept in $work" >&2; fi
  echo "image: $passed passed, $failed failed"
}
trap cleanup EXIT

if [ "$build" = 1 ]; then
  scripts/build-image.sh --engine "$engine" "$tag"
fi
"$engine" image inspect "$tag" >/dev/null 2>&1 || image_die "no image $tag (build it first)"

if [ -z "${AULA_CLI:-}" ]; then
  echo "== cargo build --release -p aula (the participants)"
  cargo build --release --locked -p aula
  AULA_CLI="${CARGO_TARGET_DIR:-target}/release/aula"
fi
[ -x "$AULA_CLI" ] || image_die "no aula binary at $AULA_CLI"

api_key="imagetest"
api_secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
token() { # room identity role
  "$AULA_CLI" token --api-key "$api_key" --api-secret "$api_secret" --room "$1" --identity "$2" \
    --role "$3" --ttl 10m
}

mapfile -t ports < <(probe free-ports 2)
http_port=${ports[0]}
rtc_port=${ports[1]}
base="http://127.0.0.1:$http_port"

# Waits up to $1 seconds for /healthz.
wait_healthy() {
  local deadline=$(($(date +%s) + $1))
  until [ "$(curl -s --max-time 1 "$base/healthz" || true)" = ok ]; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# Reads one metric's value (the first sample whose name and labels start with $1).
metric() {
  curl -s --max-time 2 "$base/metrics" |
    awk -v name="$1" '!found && index($0, name) == 1 { print $2; found = 1 }'
}

check_endpoints() {
  local body code
  body=$(curl -s --max-time 2 "$base/healthz")
  [ "$body" = ok ] || fail "/healthz answered '$body'"
  pass "/healthz answers ok"
  code=$(curl -s -o "$work/readyz" -w '%{http_code}' --max-time 2 "$base/readyz")
  [ "$code" = 200 ] && [ "$(cat "$work/readyz")" = ready ] ||
    fail "/readyz answered $code '$(cat "$work/readyz")'"
  pass "/readyz answers 200 ready"
  curl -s --max-time 2 "$base/metrics" >"$work/metrics"
  grep -q '^aula_rooms 0$' "$work/metrics" && grep -q '^# EOF$' "$work/metrics" ||
    fail "/metrics: $(head -c 300 "$work/metrics")"
  pass "/metrics serves OpenMetrics (aula_rooms 0)"
}

# A call: alice and bob publish video and audio through the server, carol watches. Each one's
# stats list the tracks of those still in when it left, so they leave in turn: carol after 6 s
# (she decoded alice and bob), bob after 8 s (he decoded alice), alice after 10 s.
run_call() { # room label
  local room="$1" label="$2" who role publish seconds pids=() i
  for who in alice:teacher:video,audio:10 bob:student:video,audio:8 carol:observer:none:6; do
    IFS=: read -r who role publish seconds <<<"$who"
    "$AULA_CLI" join --url "ws://127.0.0.1:$http_port" --token "$(token "$room" "$who" "$role")" \
      --publish "$publish" --resolution 640x360 --fps 15 --duration "$seconds" \
      --stats-json "$work/$label-$who.json" >"$work/$label-$who.log" 2>&1 &
    pids+=($!)
    background+=($!)
  done
  i=0
  for who in alice bob carol; do
    wait "${pids[$i]}" || fail "$label: $who's join failed: $(tail -n 3 "$work/$label-$who.log")"
    i=$((i + 1))
  done
  probe check-call "$work/$label-carol.json" 30 alice bob || fail "$label: carol's stats"
  probe check-call "$work/$label-bob.json" 30 alice || fail "$label: bob's stats"
  pass "$label: a call through the container, video and audio of both publishers decoded on the host"
}

# Exit code of a stopped container, its logs in $work/$2.log, and the drain seen in them.
check_drained() { # container label participants
  local id="$1" label="$2" want="$3" code left
  code=$("$engine" inspect -f '{{.State.ExitCode}}' "$id")
  "$engine" logs "$id" >"$work/$label.log" 2>&1
  [ "$code" = 0 ] || fail "$label: the server exited with $code: $(tail -n 5 "$work/$label.log")"
  pass "$label: the server exited 0"
  grep -q '"shutting down"' "$work/$label.log" || fail "$label: no 'shutting down' in the logs"
  left=$(grep '"participant left"' "$work/$label.log" | grep -c 'ServerShutdown' || true)
  [ "$left" -ge "$want" ] || fail "$label: $left participants left for server_shutdown, wanted $want"
  pass "$label: the server drained ($left participants left for server_shutdown)"
}

# Whether metric $1 is at least $2.
metric_at_least() {
  local value
  value=$(metric "$1")
  [ -n "$value" ] && awk -v v="$value" -v n="$2" 'BEGIN { exit !(v >= n) }'
}

# The drain: a participant publishing and a signaling client in a room, then the stop command
# (the remaining arguments; SIGTERM, then SIGKILL after 30 s). The client must be told
# server_shutdown, /readyz must stop answering ready, the stop must end within the 30 s grace
# period, and the server must exit 0 having drained.
drain() { # container label stop-command...
  local id="$1" label="$2" dana watcher stopper deadline stop_started stop_ms readiness="" code
  shift 2
  echo "== $label: drain on SIGTERM with a participant publishing and a signaling client in"
  "$AULA_CLI" join --url "ws://127.0.0.1:$http_port" --token "$(token drain dana teacher)" \
    --publish video,audio --resolution 640x360 --fps 15 --duration 60 \
    --stats-json "$work/$label-drain-dana.json" >"$work/$label-drain-dana.log" 2>&1 &
  dana=$!
  background+=("$dana")
  probe watch-leave "ws://127.0.0.1:$http_port" drain "$(token drain watcher observer)" 40 \
    >"$work/$label-drain-watcher.log" 2>&1 &
  watcher=$!
  background+=("$watcher")
  deadline=$(($(date +%s) + 30))
  until metric_at_least aula_participants 2 && metric_at_least aula_tracks 1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$label: the drain room did not fill within 30 s"
    sleep 0.2
  done
  sleep 1
  stop_started=$(date +%s%N)
  "$@" >"$work/$label-stop.log" 2>&1 &
  stopper=$!
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$base/readyz" || true)
    if [ "$code" != 200 ]; then
      if [ "$code" = 503 ]; then readiness="503 draining"; else readiness="refused (listener closed)"; fi
      break
    fi
    sleep 0.05
  done
  wait "$stopper" || fail "$label: $* failed: $(tail -n 5 "$work/$label-stop.log")"
  stop_ms=$((($(date +%s%N) - stop_started) / 1000000))
  [ -n "$readiness" ] || fail "$label: /readyz still answered 200 five seconds after SIGTERM"
  pass "$label: /readyz stopped answering ready after SIGTERM: $readiness"
  wait "$watcher" || fail "$label: the signaling client: $(cat "$work/$label-drain-watcher.log")"
  pass "$label: the signaling client was told: $(tail -n 1 "$work/$label-drain-watcher.log")"
  [ "$stop_ms" -lt 30000 ] || fail "$label: the stop took $stop_ms ms, the grace period is 30 s"
  pass "$label: stopped in $stop_ms ms (grace period 30 s)"
  check_drained "$id" "$label" 2
  kill -INT "$dana" 2>/dev/null || true
  wait "$dana" 2>/dev/null || true
}

echo "== $engine run $tag (HTTP on 127.0.0.1:$http_port, media on 127.0.0.1:$rtc_port udp+tcp)"
# As the Kubernetes manifest runs it: read-only root, no capabilities, no privilege escalation
# (the data directory is the image's volume).
"$engine" run -d --name "$container" \
  --read-only --cap-drop ALL --security-opt no-new-privileges \
  -p "127.0.0.1:$http_port:7880/tcp" \
  -p "127.0.0.1:$rtc_port:$rtc_port/udp" -p "127.0.0.1:$rtc_port:$rtc_port/tcp" \
  -e AULA_RTC_PORT="$rtc_port" -e AULA_PUBLIC_IP=127.0.0.1 \
  -e AULA_API_KEY="$api_key" -e AULA_API_SECRET="$api_secret" \
  "$tag" >/dev/null
wait_healthy 30 || fail "/healthz did not answer within 30 s: $("$engine" logs "$container" 2>&1 | tail -n 5)"
check_endpoints
run_call call run
joins=$(metric aula_joins_total)
video=$(metric 'aula_forwarded_packets_total{kind="video"}')
[ "${joins:-0}" = 3 ] && [ "${video:-0}" -gt 0 ] ||
  fail "/metrics after the call: joins ${joins:-none}, video packets forwarded ${video:-none}"
pass "/metrics counted the call (3 joins, $video video packets forwarded)"

drain "$container" run "$engine" stop -t 30 "$container"
"$engine" rm -f -v "$container" >/dev/null

echo "== compose: deploy/docker-compose.yml with ${compose[*]}"
export AULA_IMAGE="$tag" AULA_BIND_IP=127.0.0.1 AULA_HTTP_PORT="$http_port" \
  AULA_RTC_PORT="$rtc_port" AULA_PUBLIC_IP=127.0.0.1 AULA_API_KEY="$api_key" \
  AULA_API_SECRET="$api_secret"
"${compose[@]}" -p "$project" -f deploy/docker-compose.yml up -d --no-build \
  >"$work/compose-up.log" 2>&1 || fail "compose up: $(tail -n 5 "$work/compose-up.log")"
compose_id=$("$engine" ps -a -q --filter "label=com.docker.compose.project=$project" | head -n 1)
[ -n "$compose_id" ] || fail "compose started no container"
wait_healthy 30 || fail "compose: /healthz did not answer within 30 s"
check_endpoints
run_call compose compose
# podman-compose 1.0 ignores stop_grace_period (its stop waits 10 s, its down 1 s): say 30 s.
drain "$compose_id" compose "${compose[@]}" -p "$project" -f deploy/docker-compose.yml stop -t 30

echo "== egress image: not tested (there is no egress crate or Dockerfile in this repository yet)"
echo "== image tests passed in $(($(date +%s) - started)) s"
