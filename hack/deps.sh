#!/usr/bin/env bash
# Installs and builds, once, everything `make test` needs, cached outside the repository: Debian
# packages, the images' Debian root filesystems, PostgreSQL 17's binaries, Azurite, and the Go
# programs (Kubernetes, etcd, CoreDNS, controller-gen, Helm, MinIO, FerretDB, promtool, Prometheus,
# fake-gcs-server). On a warm cache it only checks and takes seconds.
#
#   hack/deps.sh          (the Makefile's `deps` target exports the versions it pins)
#
# After the Debian packages, three streams run side by side: the downloads and chroots of the Debian
# parts, which mostly wait for the network and the disk, and two streams of Go builds (the
# Kubernetes binaries, the largest, and the servers and tools). Two builds at once keep both cores
# busy while the other links (a single-threaded step of up to a minute for the large binaries) or
# downloads its modules. Each step's output goes to a log in the cache; a failing step prints its
# end, and the table at the end says how long each stream and step took.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
: "${CONTROLLER_GEN_VERSION:?run make deps}" "${HELM_VERSION:?}" "${MINIO_VERSION:?}" "${FAKE_GCS_VERSION:?}" \
  "${PROMETHEUS_VERSION:?}" "${KWOK_VERSION:?}" "${TEST_PACKAGES:?}"
logs="${CACHE}/logs/deps"
mkdir -p "$logs"
times="$(mktemp)"
trap 'rm -f "$times"' EXIT

# step NAME COMMAND...: runs COMMAND with its output in the step's log and records its time.
step() {
  local name="$1"; shift
  local log="${logs}/${name// /-}.log" t0=$SECONDS
  if ! "$@" >"$log" 2>&1; then
    echo "deps: $name failed (log: $log); its end:" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
  printf '  %-28s %5d s\n' "$name" $((SECONDS - t0)) >> "$times"
}

tool() { "$ROOT/hack/go-tool.sh" "$@"; }
static() { CGO_ENABLED=0 "$@"; }

debian() {
  step "Azurite" "$ROOT/hack/azurite.sh"
  step "engine images" "$ROOT/hack/images.sh" postgres-15 postgres-17 rabbitmq-3.10 rabbitmq-4.0
  step "PostgreSQL 17 binaries" "$ROOT/hack/postgres-bin.sh" 17
}

kubernetes() {
  step "cluster binaries" "$ROOT/test/cluster/cluster.sh" binaries
}

go_servers() {
  # MinIO and FerretDB are built static once: the same binary runs the host tests and its image.
  # promtool is static too, so that it reuses the packages of Prometheus's static build (built
  # with cgo it compiled them all again: 609 s of the cold run's 2866).
  step "MinIO" static tool github.com/minio/minio "$MINIO_VERSION"
  step "FerretDB" static "$ROOT/hack/ferretdb.sh"
  step "Prometheus" static tool github.com/prometheus/prometheus/cmd/prometheus "$PROMETHEUS_VERSION"
  step "promtool" static tool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION"
  step "fake-gcs-server" tool github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION"
  step "kwok" tool sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
  step "controller-gen" tool sigs.k8s.io/controller-tools/cmd/controller-gen "$CONTROLLER_GEN_VERSION"
  step "Helm" tool helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
}

t0=$SECONDS
# apt first and alone: two package installs at once would fight over dpkg's lock.
# shellcheck disable=SC2086
step "Debian packages" "$ROOT/hack/host-packages.sh" $TEST_PACKAGES debootstrap umoci skopeo patchelf
step "cluster packages" "$ROOT/test/cluster/cluster.sh" packages
pids=()
for s in debian kubernetes go_servers; do
  ( s0=$SECONDS; "$s"; printf '%-30s %5d s\n' "stream $s" $((SECONDS - s0)) >> "$times" ) &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
echo "deps: $([ $rc = 0 ] && echo ready || echo FAILED) after $((SECONDS - t0)) s (logs: $logs)" >&2
cat "$times" >&2
exit $rc
