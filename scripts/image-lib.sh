# shellcheck shell=bash
# Shared by scripts/build-image.sh and scripts/test-image.sh (sourced, not run): the container
# engine, its packages on Debian, Podman's configuration, and base images made locally with
# debootstrap for machines that cannot pull them.

# Where the image scripts keep their files: the build context of a host-built binary, Podman's
# configuration, the CA bundle for the builder.
image_work_dir() {
  local dir="${CARGO_TARGET_DIR:-target}/image"
  mkdir -p "$dir"
  (cd "$dir" && pwd)
}

image_die() {
  echo "error: $*" >&2
  exit 1
}

# Installs the Debian packages named when any of the commands named is missing (as root), or
# fails saying what to install. Arguments: "command:package" pairs.
image_require() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    image_die "missing ${missing[*]}: install them (apt-get install ${missing[*]}), or run this as root on Debian to have them installed"
  fi
}

# Sets IMAGE_ENGINE: $1 if given ("docker" or "podman"), else Docker when an engine answers,
# else Podman (installed on Debian when missing and run as root, and configured).
image_pick_engine() {
  local wanted="${1:-}"
  case "$wanted" in
    docker)
      docker info >/dev/null 2>&1 || image_die "no Docker engine reachable (docker info fails); use --engine podman"
      ;;
    podman) ;;
    "")
      if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        wanted=docker
      else
        wanted=podman
      fi
      ;;
    *) image_die "unknown engine $wanted (docker or podman)" ;;
  esac
  if [ "$wanted" = podman ]; then
    # Podman runs containers with runc; buildah's code builds inside podman build.
    image_require podman:podman runc:runc
    image_configure_podman
  fi
  # shellcheck disable=SC2034 # read by the scripts that source this file
  IMAGE_ENGINE="$wanted"
}

# Podman rootful, with runc and cgroupfs, and explicit open-file and process limits: Podman's
# default limits (nofile 1048576) exceed what a restricted machine lets a process set, and runc
# then refuses to start the container. The limits are the caller's own hard limits, capped
# (nproc at 4096: the server runs a few dozen threads). A CONTAINERS_CONF set by the caller wins.
image_configure_podman() {
  if [ -n "${CONTAINERS_CONF:-}" ]; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || image_die "the image scripts run Podman rootful: run them as root"
  local nofile nproc conf
  nofile=$(ulimit -Hn)
  if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ]; then nproc=4096; fi
  nofile="${AULA_PODMAN_NOFILE:-$nofile}"
  nproc="${AULA_PODMAN_NPROC:-$nproc}"
  conf="$(image_work_dir)/containers.conf"
  cat >"$conf" <<EOF
# Written by scripts/image-lib.sh; see docs/operations.md, "Containers".
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  export CONTAINERS_CONF="$conf"
}

# The Debian mirror this machine's apt uses (the first bookworm source that is not the security
# archive), or $AULA_DEBIAN_MIRROR.
image_debian_mirror() {
  if [ -n "${AULA_DEBIAN_MIRROR:-}" ]; then
    echo "$AULA_DEBIAN_MIRROR"
    return 0
  fi
  local uri
  uri=$(
    {
      # deb822 sources: the URIs of stanzas whose Suites include bookworm.
      for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             { uris = ""; suites = ""
               for (i = 1; i <= NF; i++) {
                 if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
                 if ($i ~ /^Suites:/) { suites = $i }
               }
               if (suites ~ /[ \t]bookworm([ \t]|$)/) { split(uris, u, /[ \t]+/); print u[1] } }' "$file"
      done
      # One-line sources: "deb [options] URI bookworm components".
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -E 's/\[[^]]*\]//' |
        awk '$1 == "deb" && $3 == "bookworm" { print $2 }'
    } | grep -v -- '-security' | head -n 1
  )
  echo "${uri:-http://deb.debian.org/debian}"
}

# The locally made runtime base: Debian bookworm (debootstrap --variant=minbase) with
# ca-certificates, imported as $2 into engine $1. Made once; $3 = "refresh" makes it again.
image_local_runtime_base() {
  local engine="$1" tag="$2" refresh="${3:-}"
  if [ "$refresh" != refresh ] && "$engine" image inspect "$tag" >/dev/null 2>&1; then
    echo "== base image $tag: present"
    return 0
  fi
  [ "$(id -u)" = 0 ] || image_die "debootstrap needs root to make the base image $tag"
  image_require debootstrap:debootstrap
  local mirror rootfs started
  mirror=$(image_debian_mirror)
  rootfs=$(mktemp -d /var/tmp/aula-rootfs.XXXXXX)
  started=$(date +%s)
  echo "== base image $tag: debootstrap --variant=minbase bookworm from $mirror"
  if ! debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" \
    >"$rootfs.log" 2>&1; then
    tail -n 20 "$rootfs.log" >&2
    rm -rf "$rootfs"
    image_die "debootstrap failed (log: $rootfs.log)"
  fi
  # No package caches or lists in the image; apt-get update brings the lists back when needed.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  if ! tar --numeric-owner -C "$rootfs" -c . |
    "$engine" import --change 'CMD ["/bin/bash"]' - "$tag" >"$rootfs.log" 2>&1; then
    cat "$rootfs.log" >&2
    rm -rf "$rootfs"
    image_die "$engine import failed"
  fi
  rm -rf "$rootfs" "$rootfs.log"
  echo "== base image $tag: made in $(($(date +%s) - started)) s"
}

# The locally made builder base: the runtime base with a C toolchain and nasm from Debian, and
# the host's own Rust toolchain (`rustc --print sysroot`) copied in, since none can be downloaded
# inside the build. Imported as $3 into engine $1 on top of runtime base $2.
image_local_builder_base() {
  local engine="$1" runtime_tag="$2" tag="$3" refresh="${4:-}"
  if [ "$refresh" != refresh ] && "$engine" image inspect "$tag" >/dev/null 2>&1; then
    echo "== base image $tag: present"
    return 0
  fi
  image_require rustc:rustc
  local sysroot file pull=()
  sysroot=$(rustc --print sysroot)
  file="$(image_work_dir)/Containerfile.builder"
  cat >"$file" <<EOF
FROM $runtime_tag
RUN apt-get update && apt-get install -y --no-install-recommends build-essential nasm pkg-config \\
 && rm -rf /var/lib/apt/lists/*
COPY --from=toolchain bin /usr/local/rust/bin
COPY --from=toolchain lib /usr/local/rust/lib
COPY --from=toolchain libexec /usr/local/rust/libexec
ENV CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
  [ "$engine" = podman ] && pull=(--pull=never)
  echo "== base image $tag: $runtime_tag + build-essential, nasm + the host's Rust ($sysroot)"
  "$engine" build "${pull[@]}" -f "$file" --build-context "toolchain=$sysroot" -t "$tag" \
    "$(dirname "$file")"
}
