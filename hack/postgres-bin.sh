#!/usr/bin/env bash
# Prints a directory with PostgreSQL MAJOR's server binaries that run on this host, for the agent's
# tests (POSTGRES_BIN_DIR). The host has Debian bookworm's PostgreSQL 15 only; other majors come
# from the project's own image (hack/images.sh postgres-MAJOR, Debian trixie), whose binaries need
# trixie's C library: they are extracted once and patched (patchelf) to load the image's dynamic
# loader and libraries instead of the host's. Kept under /var/tmp/datafleet-postgres-bin (the tests
# run postgres as the postgres user, who cannot enter root's home, where $DATAFLEET_CACHE usually
# is), keyed by the image; extracting again takes seconds.
#   hack/postgres-bin.sh MAJOR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
major="${1:?usage: hack/postgres-bin.sh MAJOR}"

"$ROOT/hack/host-packages.sh" patchelf
"$ROOT/hack/images.sh" "postgres-${major}" >/dev/null
image="$(ls -t "${CACHE}/images/postgres-${major}"-*.tar 2>/dev/null | head -n1)"
[ -s "$image" ] || { echo "postgres-bin: hack/images.sh built no postgres-${major} image" >&2; exit 1; }
top="${POSTGRES_BIN_ROOT:-/var/tmp/datafleet-postgres-bin}"
dir="${top}/$(basename "$image" .tar)"
bin="${dir}/root/usr/lib/postgresql/${major}/bin"

if [ ! -f "${dir}/done" ]; then
  rm -rf "${top}/postgres-${major}-"* # an older image's
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  tar -C "$work" -xf "$image"
  mkdir -p "${dir}/root"
  for layer in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))[0]["Layers"]))' "$work/manifest.json"); do
    tar -C "${dir}/root" -xf "$work/$layer" --exclude='dev/*'
  done
  lib="${dir}/root/usr/lib/x86_64-linux-gnu"
  rpath="${lib}:${dir}/root/lib/x86_64-linux-gnu:${dir}/root/usr/lib/postgresql/${major}/lib"
  # DT_RPATH (--force-rpath), unlike RUNPATH, also applies to the libraries' own dependencies.
  for f in "$bin"/* "${dir}/root/usr/lib/postgresql/${major}/lib/"*.so; do
    [ "$(head -c4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    patchelf --force-rpath --set-rpath "$rpath" "$f"
    [ "${f%.so}" = "$f" ] && patchelf --set-interpreter "${lib}/ld-linux-x86-64.so.2" "$f"
  done
  chmod 755 "$top" "$dir" "${dir}/root"
  "${bin}/postgres" --version >&2
  touch "${dir}/done"
fi
echo "$bin"
