#!/usr/bin/env bash
# Installs Azurite (Azure Blob Storage's emulator, an npm package) at the versions hack/azurite/
# pins into the cache outside the repository and prints the path of its blob server. Node.js and
# npm are the machine's own.
#   hack/azurite.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)/azurite"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
command -v npm >/dev/null || { echo "azurite: npm is not installed: install Debian's nodejs and npm packages (Node.js 20 or later)" >&2; exit 1; }
lock="$(sha256sum "$here/package-lock.json" | cut -c1-12)"
dir="${CACHE}/azurite-${lock}"
bin="${dir}/node_modules/.bin/azurite-blob"
if [ ! -x "$bin" ]; then
  echo "installing Azurite into $dir (about a minute, once)" >&2
  tmp="$(mktemp -d "${CACHE}/azurite-tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  cp "$here/package.json" "$here/package-lock.json" "$tmp/"
  ( cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2 )
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
fi
echo "$bin"
