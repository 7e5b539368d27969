#!/usr/bin/env bash
# Builds Kubernetes and etcd binaries from Go modules (no GitHub or GCS downloads are reachable
# here) and caches them outside the repository, keyed by version, in the layout setup-envtest
# uses, so a fresh clone on the same machine reuses them.
#
#   hack/k8s-binaries.sh [component...]   components: kube-apiserver etcd kubectl
#                                          kube-controller-manager kube-scheduler kubelet kube-proxy
# Prints the directory holding the binaries on its last line.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.1}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
ASSETS="${CACHE}/k8s/${K8S_VERSION}-$(go env GOOS)-$(go env GOARCH)"
# Heavy tool builds get their own GOCACHE: builds side by side can corrupt a shared one.
export GOCACHE="${CACHE}/gocache-tools"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kube-apiserver etcd)

mkdir -p "$ASSETS"
log() { echo "k8s-binaries: $*" >&2; }

k8s_module() {
  local dir="${CACHE}/src/kubernetes-${K8S_VERSION}"
  if [ -f "$dir/.ready" ]; then echo "$dir"; return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  log "preparing a scratch module for k8s.io/kubernetes v${K8S_VERSION} (downloads ~1 GB once)"
  ( cd "$dir"
    go mod init datafleet.local/k8sbuild >/dev/null 2>&1
    go mod download "k8s.io/kubernetes@v${K8S_VERSION}"
    modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v${K8S_VERSION}.mod"
    # kubernetes' go.mod replaces its staging modules with ./staging paths; pin them to the
    # published v0.X.Y tags instead.
    staging_version="v0.${K8S_VERSION#1.}"
    grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$modfile" | awk '{print $1}' | sort -u > staging.txt
    [ -s staging.txt ] || { log "no staging modules found in $modfile"; exit 1; }
    { echo "require k8s.io/kubernetes v${K8S_VERSION}"
      while read -r m; do echo "replace $m => $m ${staging_version}"; done < staging.txt
    } >> go.mod
    cat > tools.go <<'GO'
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy >&2
  )
  touch "$dir/.ready"
  echo "$dir"
}

# All the Kubernetes commands asked for in one go build: it compiles their shared packages once and
# links the binaries side by side (linking is single-threaded and the longest part of each).
build_k8s() {
  local dir
  dir="$(k8s_module)"
  log "building $* v${K8S_VERSION}"
  local pkgs=() c
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  local v="k8s.io/component-base/version" cv="k8s.io/client-go/pkg/version"
  local minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
  local ld="-s -w"
  for p in "$v" "$cv"; do
    ld+=" -X $p.gitVersion=v${K8S_VERSION} -X $p.gitMajor=1 -X $p.gitMinor=${minor}"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local out; out="$(mktemp -d "$ASSETS/.build.XXXXXX")"
  ( cd "$dir" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ld" -o "$out/" "${pkgs[@]}" ) \
    || { rm -rf "$out"; return 1; }
  for c in "$@"; do mv "$out/$c" "$ASSETS/$c"; done
  rmdir "$out"
}

build_etcd() {
  local dir="${CACHE}/src/etcd-${ETCD_VERSION}"
  if [ ! -f "$dir/.ready" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    log "preparing a scratch module for etcd v${ETCD_VERSION}"
    ( cd "$dir"
      go mod init datafleet.local/etcdbuild >/dev/null 2>&1
      { echo "require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}"
        for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
          echo "replace go.etcd.io/etcd/$m => go.etcd.io/etcd/$m v${ETCD_VERSION}"
        done
      } >> go.mod
      printf '//go:build tools\n\npackage etcdbuild\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
      go mod tidy >&2 )
    touch "$dir/.ready"
  fi
  log "building etcd v${ETCD_VERSION}"
  ( cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3 ) \
    && mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

k8s=()
for c in "${components[@]}"; do
  if [ -x "$ASSETS/$c" ]; then continue; fi
  case "$c" in
    etcd) build_etcd ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy|kubectl) k8s+=("$c") ;;
    *) log "unknown component $c"; exit 2 ;;
  esac
done
[ ${#k8s[@]} -eq 0 ] || build_k8s "${k8s[@]}"
echo "$ASSETS"
