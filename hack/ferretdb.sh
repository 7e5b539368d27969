#!/usr/bin/env bash
# Builds FerretDB (a MongoDB wire-protocol server; no mongod can be installed on these machines) from
# its Go module into the cache outside the repository and prints the binary's path.
#   hack/ferretdb.sh [version]      default v1.24.0
# FerretDB's build reads its version from build/version/version.txt, which the module does not ship.
set -euo pipefail
version="${1:-v1.24.0}"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
bin="${CACHE}/bin/ferretdb-${version}"
[ "${CGO_ENABLED:-}" = 0 ] && bin="${bin}-static"
if [ ! -x "$bin" ]; then
  echo "building FerretDB $version into $bin (about two minutes, once)" >&2
  mod="$(GOFLAGS= go mod download -json "github.com/FerretDB/FerretDB@${version}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$mod" ] || { echo "ferretdb: go mod download github.com/FerretDB/FerretDB@${version} failed" >&2; exit 1; }
  src="$(mktemp -d)"
  trap 'chmod -R u+w "$src"; rm -rf "$src"' EXIT
  cp -r "$mod/." "$src"
  chmod -R u+w "$src"
  echo "$version" > "$src/build/version/version.txt"
  mkdir -p "$(dirname "$bin")"
  ( cd "$src" && GOFLAGS= go build -trimpath -o "$bin.tmp" ./cmd/ferretdb )
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
