#!/usr/bin/env bash
# Installs the Debian packages given as arguments unless they are installed already.
#   hack/host-packages.sh PACKAGE...
set -euo pipefail
missing=()
# "dpkg -s" succeeds for removed packages whose config files remain; ask for the installed state.
for p in "$@"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "host-packages: apt-get not found: install ${missing[*]} by hand" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "host-packages: installing ${missing[*]} needs root (sudo apt-get install ${missing[*]})" >&2; exit 1; }
echo "host-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${missing[@]}" >&2; }
