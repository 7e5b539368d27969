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
# The whole output is kept in the cache (the newest ten runs): a CI log shows only its end, and a
# failing test's dump of logs and objects would push its failure message out of it. So on failure
# the suite ends with each test's messages again, one line each, without the dumps.
logs="$CACHE/logs"
mkdir -p "$logs"
log="$logs/e2e-$(date -u +%Y%m%dT%H%M%SZ).log"
find "$logs" -maxdepth 1 -name 'e2e-*.log' -printf '%T@ %p\n' | sort -rn | tail -n +10 | cut -d' ' -f2- | xargs -r rm -f
rc=0
go test -tags e2e -count=1 -timeout 60m -v ./test/e2e/ 2>&1 | tee "$log" || rc=$?
# Where the suite's time went, slowest step first (the budget of issue #29).
echo "===== e2e: time per step"
grep -E '^    --- (PASS|FAIL): TestOperator/' "$log" | sed -E 's/^    --- (PASS|FAIL): TestOperator\/(.*) \(([0-9.]+)s\)$/\3 \1 \2/' |
  sort -rn | awk '{ t = $1; $1 = ""; printf "  %7.0f s %s\n", t, substr($0, 2) }' | cut -c1-140 || true
if [ "$rc" != 0 ]; then
  echo "===== e2e failed: what the tests said, one line each (the whole output: $log)"
  grep -E '^ +(--- FAIL|[A-Za-z0-9_]+\.go:[0-9]+: .)' "$log" | cut -c1-600 | tail -n 60 || true
fi
exit "$rc"
