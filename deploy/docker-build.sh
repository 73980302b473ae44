#!/usr/bin/env bash
# Build kiln's container image without network access or base images:
# compile a static binary on the host, assemble a build context in a
# temporary directory and run `docker build` with the repository's
# Dockerfile.
#
# usage: deploy/docker-build.sh [TAG] [docker build options...]
#   TAG defaults to kiln:latest. Environment: GO (the go command, default
#   go), VERSION (stamped into `kiln version`), DOCKER_HOST as usual.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-kiln:latest}
shift || true
go=${GO:-go}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

ldflags="-s -w"
if [ -n "${VERSION:-}" ]; then
  ldflags="$ldflags -X main.version=$VERSION"
fi
# CGO off: the image has no libc. -trimpath keeps host paths out of it.
(cd "$repo" && CGO_ENABLED=0 "$go" build -trimpath -ldflags="$ldflags" -o "$ctx/kiln" ./cmd/kiln)

mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/data"
cp "$repo/deploy/docker/rootfs/etc/passwd" "$repo/deploy/docker/rootfs/etc/group" "$ctx/rootfs/etc/"
ca=/etc/ssl/certs/ca-certificates.crt
if [ -r "$ca" ]; then
  cp "$ca" "$ctx/rootfs/etc/ssl/certs/"
else
  echo "docker-build: warning: $ca not found (Debian: apt-get install ca-certificates);" \
    "the image cannot verify HTTPS upstream registries" >&2
fi

docker build -f "$repo/Dockerfile" -t "$tag" "$@" "$ctx"
