#!/usr/bin/env bash
# Installs a Go tool at a pinned version into the cache outside the repository and prints its path.
#   hack/go-tool.sh <module/cmd/path> <version>
set -euo pipefail
pkg="$1"; version="$2"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
bin="${CACHE}/bin/$(basename "$pkg")-${version}"
# A static build (for an image without libc) is cached apart from the host's build.
[ "${CGO_ENABLED:-}" = 0 ] && bin="${bin}-static"
if [ ! -x "$bin" ]; then
  echo "installing $pkg@$version into $bin" >&2
  tmp="$(mktemp -d)"
  GOBIN="$tmp" GOFLAGS= go install "$pkg@$version" >&2
  mkdir -p "$(dirname "$bin")"
  mv "$tmp/$(basename "$pkg")" "$bin"
  rmdir "$tmp"
fi
echo "$bin"
