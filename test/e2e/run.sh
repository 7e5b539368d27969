#!/usr/bin/env bash
# Runs the end-to-end suite (`make e2e`). Against the local cluster by default: it brings the cluster up
# if needed, builds and imports the images, runs the Go tests, and, when it brought the cluster up,
# tears it down again and checks that nothing of it is left on the machine (set E2E_KEEP_CLUSTER=1 to
# keep it). With E2E_KUBECONFIG set it uses that cluster instead, which must already have the images.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
CLUSTER="$ROOT/test/cluster/cluster.sh"
: "${HELM:?HELM must name a helm binary: run make e2e, which builds it}"

if [ -z "${E2E_KUBECONFIG:-}" ]; then
  brought_up=false
  "$CLUSTER" status || brought_up=true
  if $brought_up && [ "${E2E_KEEP_CLUSTER:-}" != 1 ]; then
    trap 'rc=$?; "$CLUSTER" down || rc=1; exit $rc' EXIT
  fi
  E2E_KUBECONFIG="$("$CLUSTER" up | tail -n1)"
  "$ROOT/hack/images.sh" >/dev/null
fi
export E2E_KUBECONFIG HELM E2E_IMAGES="${E2E_IMAGES:-${CACHE}/images/refs.env}"
cd "$ROOT"
go test -tags e2e -count=1 -timeout 50m -v ./test/e2e/
