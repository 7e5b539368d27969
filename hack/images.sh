#!/usr/bin/env bash
# Builds every image the project runs, without a registry: Debian images from debootstrap + apt-get in a
# chroot, Go images from a static binary alone. Each image is cached as a docker-archive under
# $DATAFLEET_CACHE/images, keyed by its inputs, and rebuilt only when they change. When the local
# cluster is up (test/cluster/cluster.sh), images are imported into its containerd.
#
#   hack/images.sh [image...]     default: all images
# Prints NAME=REF lines (also written to $DATAFLEET_CACHE/images/refs.env).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
OUT="${CACHE}/images"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
# The cluster's containerds, one per node (test/cluster/cluster.sh runs up to three).
CONTAINERD_SOCKS=(/run/datafleet-cluster/containerd/containerd.sock /run/datafleet-cluster/containerd-{2,3}/containerd.sock)
REGISTRY="datafleet.local"

# name | kind | ref (":KEY" is replaced by the content key) | recipe
#   kind debian: recipe is "SUITE USER_NAME UID PACKAGES..."; go: recipe is the main package,
#   built as version `git describe` (framework/agent.Version); release: the main package built
#   from the commit in hack/previous-release, as that version;
#   alias: recipe names an image above, which gets ref as a second name in the cluster.
IMAGES=(
  "operator|go|${REGISTRY}/datafleet-operator:KEY|./cmd/manager"
  # The previous release's operator, which the e2e's operator upgrade starts from.
  "operator-previous|release|${REGISTRY}/datafleet-operator-previous:PREVIOUS|./cmd/manager"
  "testapp|go|${REGISTRY}/datafleet-testapp:KEY|./test/e2e/testapp"
  "postgres-15|debian|${REGISTRY}/postgres:15|bookworm postgres 999 postgresql-15"
  # The same image under another tag: a "patch release" for the e2e's image-change rolling update.
  "postgres-15-rebuild|alias|${REGISTRY}/postgres:15-rebuild|postgres-15"
  "postgres-17|debian|${REGISTRY}/postgres:17|trixie postgres 999 postgresql-17"
  "rabbitmq-3.10|debian|${REGISTRY}/rabbitmq:3.10|bookworm rabbitmq 999 rabbitmq-server"
  "rabbitmq-4.0|debian|${REGISTRY}/rabbitmq:4.0|trixie rabbitmq 999 rabbitmq-server"
  # MongoDB's wire protocol for the local cluster: no mongod can be installed here (docs/engines/mongodb.md).
  "ferretdb-1.24|ferretdb|${REGISTRY}/ferretdb:1.24.0|v1.24.0"
  "minio|minio|${REGISTRY}/minio:${MINIO_VERSION}|"
  # The e2e's Prometheus, which scrapes the agents and the operator (test/e2e/observability_test.go).
  "prometheus|prometheus|${REGISTRY}/prometheus:${PROMETHEUS_VERSION}|"
)

log() { echo "images: $*" >&2; }

need_tools() { "$ROOT/hack/host-packages.sh" debootstrap umoci skopeo; }

# An image's key covers everything it is built from: the code that builds it (the function bodies, not
# the whole script, so that editing one kind of image does not rebuild the others), the recipe, and for
# Go images the binary.
key_of() {
  local kind="$1"; shift
  { cat "$ROOT/hack/oci-image.sh"
    case "$kind" in debian) declare -f base_rootfs build_debian ;; *) declare -f build_binary_image ;; esac
    printf '%s\n' "$@"; } | sha256sum | cut -c1-12
}

# A minbase Debian root filesystem per suite, cached as a tarball.
base_rootfs() {
  local suite="$1" tar="${OUT}/rootfs-$1.tar"
  if [ ! -s "$tar" ]; then
    log "debootstrap $suite (once)"
    local dir; dir="$(mktemp -d)"
    debootstrap --variant=minbase "$suite" "$dir" "$MIRROR" >"${OUT}/rootfs-$suite.log" 2>&1 || {
      tail -n 30 "${OUT}/rootfs-$suite.log" >&2; log "debootstrap $suite failed"; rm -rf "$dir"; return 1; }
    tar -C "$dir" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$dir"
  fi
  echo "$tar"
}

build_debian() {
  local name="$1" ref="$2" out="$3" suite="$4" user="$5" uid="$6"; shift 6
  local dir; dir="$(mktemp -d)"
  tar -C "$dir" -xf "$(base_rootfs "$suite")"
  # The engine's user gets a fixed uid so that manifests can name it (runAsUser) before the package
  # scripts would pick one.
  chroot "$dir" groupadd --system --gid "$uid" "$user"
  chroot "$dir" useradd --system --uid "$uid" --gid "$uid" --home-dir "/var/lib/$user" --shell /bin/sh "$user"
  # Debian's postgresql-common creates a "main" cluster on install; the operator initialises its own.
  mkdir -p "$dir/etc/postgresql-common"
  echo "create_main_cluster = false" > "$dir/etc/postgresql-common/createcluster.conf"
  printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"; chmod +x "$dir/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  echo "deb $MIRROR $suite main" > "$dir/etc/apt/sources.list"
  mount -t proc proc "$dir/proc"
  local rc=0 buildlog="${OUT}/${name}.build.log"
  { chroot "$dir" apt-get update -q && \
    DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -q --no-install-recommends "$@"; } >"$buildlog" 2>&1 || rc=$?
  umount "$dir/proc"
  [ $rc -eq 0 ] || { rm -rf "$dir"; tail -n 30 "$buildlog" >&2; log "apt-get install $* failed for $name (log: $buildlog)"; return $rc; }
  # Only what the engine needs at run time: no package lists, caches, docs or man pages.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old "$dir"/usr/share/doc/* \
    "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/log/* "$dir/usr/sbin/policy-rc.d" "$dir/etc/resolv.conf"
  local path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  local bin; bin="$(ls -d "$dir"/usr/lib/postgresql/*/bin 2>/dev/null | head -n1 || true)"
  [ -z "$bin" ] || path="${bin#"$dir"}:$path"
  "$ROOT/hack/oci-image.sh" --ref "$ref" --out "$out" --rootfs "$dir" --user "$uid:$uid" \
    --env "PATH=$path" --env "LANG=C.UTF-8" --workdir "/var/lib/$user" --label "org.opencontainers.image.title=$name"
  rm -rf "$dir"
}

# A Go binary alone, as an unprivileged user, with a writable /tmp.
build_binary_image() {
  local name="$1" ref="$2" out="$3" bin="$4"; shift 4
  local dir; dir="$(mktemp -d)"
  mkdir -p "$dir/rootfs/tmp" "$dir/rootfs/etc" "$dir/rootfs/data"
  chmod 1777 "$dir/rootfs/tmp"
  chown 65532:65532 "$dir/rootfs/data"
  echo "nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin" > "$dir/rootfs/etc/passwd"
  echo "nonroot:x:65532:" > "$dir/rootfs/etc/group"
  cp "$bin" "$dir/rootfs/$(basename "$bin")"
  "$ROOT/hack/oci-image.sh" --ref "$ref" --out "$out" --rootfs "$dir/rootfs" --user 65532:65532 \
    --entrypoint "/$(basename "$bin")" "$@" --label "org.opencontainers.image.title=$name"
  rm -rf "$dir"
}

# go_binary builds pkg in the source tree src as version.
go_binary() {
  local src="$1" pkg="$2" version="$3" out="$4"
  mkdir -p "$(dirname "$out")"
  ( cd "$src" && CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/datafleet-dev/datafleet/framework/agent.Version=$version" -o "$out" "$pkg" )
}

# version is what this checkout's builds call themselves.
version() { git -C "$ROOT" describe --always --dirty --abbrev=12 2>/dev/null || echo dev; }

previous_release() { grep -v '^#' "$ROOT/hack/previous-release"; }

# release_binary builds pkg as the previous release's commit had it, from this repository's history.
release_binary() {
  local pkg="$1" out="$2" commit src
  commit="$(previous_release)"
  src="$(mktemp -d)"
  git -C "$ROOT" archive "$commit" | tar -x -C "$src" || {
    log "the previous release $commit is not in this clone's history (hack/previous-release): clone the whole repository"; return 1; }
  go_binary "$src" "$pkg" "${commit:0:12}" "$out"
  rm -rf "$src"
}

import_image() {
  local sock
  for sock in "${CONTAINERD_SOCKS[@]}"; do import_into "$sock" "$@"; done
}

# import_into SOCKET REF TAR KEY PRUNE
import_into() {
  local sock="$1" ref="$2" tar="$3" key="$4" prune="$5"
  [ -S "$sock" ] || return 0
  local c=(ctr --address "$sock" -n k8s.io)
  if "${c[@]}" images ls "name==$ref" 2>/dev/null | grep -q "datafleet.dev/key=$key"; then return; fi
  log "importing $ref into the cluster's $(basename "$(dirname "$sock")")"
  "${c[@]}" images import "$tar" >/dev/null
  "${c[@]}" images label "$ref" "datafleet.dev/key=$key" >/dev/null
  # Older builds of a key-tagged image would pile up in the cached image store.
  [ "$prune" = prune ] || return 0
  local old
  old="$("${c[@]}" images ls -q | grep "^${ref%:*}:" | grep -vxF "$ref" || true)"
  [ -z "$old" ] || "${c[@]}" images rm $old >/dev/null
}

main() {
  [ "$(id -u)" = 0 ] || { log "must run as root (debootstrap, chroot)"; exit 1; }
  need_tools
  mkdir -p "$OUT"
  local want=("$@") refs=()
  bins="$(mktemp -d)"
  trap 'rm -rf "$bins"' EXIT
  for spec in "${IMAGES[@]}"; do
    IFS='|' read -r name kind ref recipe <<<"$spec"
    if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != *" $name "* ]]; then continue; fi
    local key tar bin
    if [ "$kind" = alias ]; then
      local src; src="$(printf '%s\n' "${refs[@]}" | grep "^${recipe}=" | cut -d= -f2)"
      [ -n "$src" ] || { log "$name: build $recipe with it"; exit 1; }
      for sock in "${CONTAINERD_SOCKS[@]}"; do
        [ ! -S "$sock" ] || ctr --address "$sock" -n k8s.io images tag --force "$src" "$ref" >/dev/null
      done
      refs+=("${name}=${ref}")
      continue
    fi
    case "$kind" in
      go)
        bin="$bins/$name/${recipe##*/}"
        go_binary "$ROOT" "$recipe" "$(version)" "$bin"
        key="$(key_of go "$spec" "$(sha256sum < "$bin")")" ;;
      release)
        # The commit fixes the binary: built only when missing; tagged with its version.
        bin="$bins/$name/${recipe##*/}"
        local commit; commit="$(previous_release)"
        key="$(key_of go "$spec" "$commit")"
        ref="${ref/:PREVIOUS/:${commit:0:12}}"
        [ -s "${OUT}/${name}-${key}.tar" ] || release_binary "$recipe" "$bin" ;;
      minio)
        # The image has no libc: a static build.
        local minio; minio="$(CGO_ENABLED=0 "$ROOT/hack/go-tool.sh" github.com/minio/minio "$MINIO_VERSION")"
        cp "$minio" "$bins/minio"
        key="$(key_of go "$spec" "$(sha256sum < "$bins/minio")")" ;;
      prometheus)
        local prom; prom="$(CGO_ENABLED=0 "$ROOT/hack/go-tool.sh" github.com/prometheus/prometheus/cmd/prometheus "$PROMETHEUS_VERSION")"
        cp "$prom" "$bins/prometheus"
        key="$(key_of go "$spec" "$(sha256sum < "$bins/prometheus")")" ;;
      ferretdb)
        # The image has no libc either; the agent runs /ferretdb.
        local ferret; ferret="$(CGO_ENABLED=0 "$ROOT/hack/ferretdb.sh" "$recipe")"
        cp "$ferret" "$bins/ferretdb"
        key="$(key_of go "$spec" "$(sha256sum < "$bins/ferretdb")")" ;;
      debian) key="$(key_of debian "$spec")" ;;
    esac
    ref="${ref/:KEY/:$key}"
    tar="${OUT}/${name}-${key}.tar"
    if [ ! -s "$tar" ]; then
      log "building $name ($ref)"
      rm -f "${OUT}/${name}"-*.tar # an older key of the same image
      case "$kind" in
        go|release) build_binary_image "$name" "$ref" "$tar" "$bin" ;;
        minio) build_binary_image "$name" "$ref" "$tar" "$bins/minio" --cmd server --cmd /data ;;
        ferretdb) build_binary_image "$name" "$ref" "$tar" "$bins/ferretdb" ;;
        prometheus) build_binary_image "$name" "$ref" "$tar" "$bins/prometheus" ;;
        # shellcheck disable=SC2086
        debian) build_debian "$name" "$ref" "$tar" $recipe ;;
      esac
    fi
    import_image "$ref" "$tar" "$key" "$([ "$kind" = go ] && echo prune)"
    refs+=("${name}=${ref}")
  done
  printf '%s\n' "${refs[@]}" | tee "${OUT}/refs.env.tmp"
  # Keep refs of images not built this time.
  if [ -f "${OUT}/refs.env" ]; then
    grep -v -F -f <(printf '%s=\n' "${refs[@]%%=*}") "${OUT}/refs.env" >> "${OUT}/refs.env.tmp" || true
  fi
  sort -u "${OUT}/refs.env.tmp" > "${OUT}/refs.env"; rm -f "${OUT}/refs.env.tmp"
}

main "$@"
