#!/usr/bin/env bash
# Builds the aula-server container image where a Docker engine is available.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-aula-server:latest}"
if ! docker info >/dev/null 2>&1; then
  echo "no Docker engine reachable; the image cannot be built on this machine" >&2
  exit 1
fi
docker build -f server/Dockerfile -t "$tag" .
echo "built $tag"
