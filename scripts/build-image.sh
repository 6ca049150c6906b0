#!/usr/bin/env bash
# Builds the aula-server container image (server/Dockerfile) with Docker or Podman.
#
#   scripts/build-image.sh [options] [TAG]        (TAG defaults to aula-server:latest)
#
#   --engine docker|podman     default: Docker when an engine answers, else Podman
#   --binary image|host|FILE   image: compile in the image (the Dockerfile's default target);
#                              host: `cargo build --release -p aula-server` here (reusing this
#                              checkout's target dir, or $CARGO_TARGET_DIR) and copy it in;
#                              FILE: copy that binary in. Default: image with Docker, host with Podman
#   --base registry|local      registry: the Dockerfile's default base images, pulled as needed;
#                              local: Debian bookworm made here with debootstrap and imported,
#                              nothing pulled (and, for --binary image, a builder image with the
#                              host's Rust toolchain). Default: registry with Docker, local with Podman
#   --refresh-base             make the local base images again
#   --extra-ca-certs FILE|none PEM bundle the compile stage trusts (a TLS-intercepting proxy's CA);
#                              default: the host's /usr/local/share/ca-certificates/*.crt, if any
#
# A host-built binary must run on Debian bookworm's glibc: build it on bookworm (or older).
# Podman runs rootful with runc and cgroupfs; see docs/operations.md, "Containers".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/image-lib.sh

engine="${AULA_IMAGE_ENGINE:-}"
binary="${AULA_IMAGE_BINARY:-}"
base="${AULA_IMAGE_BASE:-}"
extra_ca="${AULA_IMAGE_EXTRA_CA_CERTS:-}"
refresh=""
tag="aula-server:latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --base) base="$2"; shift 2 ;;
    --refresh-base) refresh=refresh; shift ;;
    --extra-ca-certs) extra_ca="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) image_die "unknown option $1 (see --help)" ;;
    *) tag="$1"; shift ;;
  esac
done

image_pick_engine "$engine"
engine="$IMAGE_ENGINE"
if [ -z "$binary" ]; then
  if [ "$engine" = docker ]; then binary=image; else binary=host; fi
fi
if [ -z "$base" ]; then
  if [ "$engine" = docker ]; then base=registry; else base=local; fi
fi
case "$base" in registry | local) ;; *) image_die "unknown base $base (registry or local)" ;; esac

work=$(image_work_dir)
started=$(date +%s)
args=(-f server/Dockerfile -t "$tag")

# Locally made base images, as build arguments; nothing is pulled. debootstrap waits on the
# network and the disk, cargo on the CPU: the base is made while the host binary compiles.
runtime_base="localhost/aula-base/debian:bookworm-minbase"
base_maker=""
if [ "$base" = local ]; then
  image_local_runtime_base "$engine" "$runtime_base" "$refresh" &
  base_maker=$!
  args+=(--build-arg "RUNTIME_IMAGE=$runtime_base")
  if [ "$engine" = podman ]; then args+=(--pull=never); fi
fi
stop_base_maker() {
  if [ -n "$base_maker" ]; then
    pkill -TERM -P "$base_maker" 2>/dev/null || true
    kill "$base_maker" 2>/dev/null || true
  fi
}
trap stop_base_maker EXIT
wait_for_base() {
  if [ -n "$base_maker" ]; then
    wait "$base_maker" || image_die "the base image $runtime_base could not be made"
    base_maker=""
  fi
}

case "$binary" in
  image)
    mode="compiled in the image"
    wait_for_base
    if [ "$base" = local ]; then
      rust_version=$(rustc --version | awk '{print $2}')
      builder_base="localhost/aula-base/rust:$rust_version-bookworm"
      image_local_builder_base "$engine" "$runtime_base" "$builder_base" "$refresh"
      args+=(--build-arg "BUILDER_IMAGE=$builder_base")
    fi
    # The compile stage downloads crates: give it the proxy's CA certificates, if any.
    if [ -z "$extra_ca" ]; then
      shopt -s nullglob
      host_cas=(/usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt)
      shopt -u nullglob
      if [ ${#host_cas[@]} -gt 0 ]; then
        extra_ca="$work/extra-ca-certs.pem"
        cat "${host_cas[@]}" >"$extra_ca"
        echo "== the compile stage trusts this host's extra CA certificates: ${host_cas[*]}"
      fi
    fi
    if [ -n "$extra_ca" ] && [ "$extra_ca" != none ]; then
      [ -s "$extra_ca" ] || image_die "no CA certificates in $extra_ca"
      args+=(--secret "id=extra-ca-certs,src=$extra_ca")
    fi
    ;;
  *)
    mode="$binary"
    if [ "$binary" = host ]; then
      echo "== cargo build --release -p aula-server"
      cargo build --release --locked -p aula-server
      binary="${CARGO_TARGET_DIR:-target}/release/aula-server"
    fi
    [ -x "$binary" ] || image_die "no executable aula-server at $binary"
    [ "$mode" = host ] || mode="prebuilt ($binary)"
    # The build context holds the binary alone, stripped (the release profile keeps line tables).
    mkdir -p "$work/server-binary"
    rm -f "$work/server-binary/aula-server"
    if command -v strip >/dev/null 2>&1; then
      strip -o "$work/server-binary/aula-server" "$binary"
    else
      install -m 755 "$binary" "$work/server-binary/aula-server"
    fi
    args+=(--target prebuilt --build-context "server-binary=$work/server-binary")
    ;;
esac

wait_for_base
echo "== $engine build ${args[*]} ."
"$engine" build "${args[@]}" .
# The binary starts in the image (a host binary built against a newer glibc would not).
"$engine" run --rm --network none "$tag" --dev --print-config >/dev/null ||
  image_die "the image $tag was built but aula-server does not start in it"
echo "built $tag with $engine (binary: $mode; base images: $base) in $(($(date +%s) - started)) s"
