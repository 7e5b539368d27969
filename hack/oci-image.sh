#!/usr/bin/env bash
# Turns a root filesystem and/or single files into a one-layer OCI image and writes it as a
# docker-archive that `ctr images import` accepts. No registry and no Docker engine are involved.
#
#   hack/oci-image.sh --ref REF --out TAR [--rootfs DIR] [--file SRC:DST]... [--entrypoint ARG]...
#                     [--cmd ARG]... [--user UID:GID] [--env K=V]... [--workdir DIR] [--label K=V]...
set -euo pipefail

ref="" out="" rootfs="" user="" workdir=""
files=() entrypoint=() cmd=() envs=() labels=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) ref="$2" ;;
    --out) out="$2" ;;
    --rootfs) rootfs="$2" ;;
    --file) files+=("$2") ;;
    --entrypoint) entrypoint+=("$2") ;;
    --cmd) cmd+=("$2") ;;
    --user) user="$2" ;;
    --env) envs+=("$2") ;;
    --workdir) workdir="$2" ;;
    --label) labels+=("$2") ;;
    *) echo "oci-image: unknown flag $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$ref" ] && [ -n "$out" ] || { echo "oci-image: --ref and --out are required" >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
umoci init --layout "$tmp/oci"
umoci new --image "$tmp/oci:image"
umoci unpack --image "$tmp/oci:image" "$tmp/bundle" >/dev/null
[ -z "$rootfs" ] || cp -a "$rootfs/." "$tmp/bundle/rootfs/"
for f in "${files[@]}"; do
  src="${f%%:*}" dst="${f#*:}"
  mkdir -p "$(dirname "$tmp/bundle/rootfs/$dst")"
  cp -a "$src" "$tmp/bundle/rootfs/$dst"
done
umoci repack --image "$tmp/oci:image" "$tmp/bundle"

args=(--image "$tmp/oci:image" --author datafleet --history.comment "built by hack/oci-image.sh")
for a in "${entrypoint[@]}"; do args+=(--config.entrypoint "$a"); done
for a in "${cmd[@]}"; do args+=(--config.cmd "$a"); done
for a in "${envs[@]}"; do args+=(--config.env "$a"); done
for a in "${labels[@]}"; do args+=(--config.label "$a"); done
[ -z "$user" ] || args+=(--config.user "$user")
[ -z "$workdir" ] || args+=(--config.workingdir "$workdir")
umoci config "${args[@]}"
umoci gc --layout "$tmp/oci"

mkdir -p "$(dirname "$out")"
rm -f "$out.tmp"
skopeo copy --quiet "oci:$tmp/oci:image" "docker-archive:$out.tmp:$ref"
mv "$out.tmp" "$out"
