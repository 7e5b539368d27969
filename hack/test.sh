#!/usr/bin/env bash
# `make test`: every tier in order, each timed. The time of each tier is printed at the end, also
# when one fails, so that a CI log shows where the time went (issue #29: the budget is 60 minutes
# on an empty cache and 25 on a warm one, on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
rows=()
# busy is the machine's CPU time in use so far, in seconds of one core (from /proc/stat: all but
# idle and iowait). The whole machine's, so a tier's figure includes whatever else runs beside it;
# measured this way because the cluster's and the pods' processes are not this shell's children.
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print int(($2+$3+$4+$7+$8+$9)/hz); exit}' /proc/stat; }
cores="$(nproc)"
busy0="$(busy)"
# row NAME WALL CPU RESULT: one line of the summary.
row() { printf '  %-52s %5d s  %6d CPU-s (%3d %% of %d cores)  %s' "$1" "$2" "$3" $(($3 * 100 / (cores * ($2 > 0 ? $2 : 1)))) "$cores" "$4"; }
tier() {
  local name="$1"; shift
  local t0=$SECONDS c0 rc=0
  c0="$(busy)"
  echo "===== make test: $name" >&2
  "$@" || rc=$?
  rows+=("$(row "$name" $((SECONDS - t0)) $(($(busy) - c0)) "$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)")")")
  return "$rc"
}
summary() {
  local rc=$?
  echo "===== make test: time per tier (CPU: the machine's, in seconds of one core)"
  [ ${#rows[@]} -eq 0 ] || printf '%s\n' "${rows[@]}"
  row "total" "$SECONDS" $(($(busy) - busy0)) "$([ "$rc" = 0 ] && echo ok || echo FAILED)"
  echo
  exit "$rc"
}
trap summary EXIT

tier "dependencies (hack/deps.sh)" make -s --no-print-directory deps
eval "$(make -s --no-print-directory test-env)"
tier "unit, envtest, engines, chart, repo (go test ./...)" go test -count=1 -timeout 20m ./...
# The agent again, against PostgreSQL 17 (the host has 15; 17 comes from the project's image).
pg17="$(hack/postgres-bin.sh 17)"
tier "PostgreSQL agent against PostgreSQL 17" env POSTGRES_BIN_DIR="$pg17" go test -count=1 -timeout 20m ./engines/postgres/agent/
tier "go vet" go vet ./...
tier "end-to-end on the local cluster (test/e2e/run.sh)" test/e2e/run.sh
