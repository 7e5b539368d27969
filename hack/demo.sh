#!/usr/bin/env bash
# `make demo`: the operator running with the sample manifests, in one command.
# Without KUBECONFIG it brings up the local cluster (test/cluster/cluster.sh), builds and imports the
# images and installs there. With KUBECONFIG pointing at another cluster it installs into that cluster;
# set IMAGE_REPOSITORY and IMAGE_TAG to an operator image that cluster can pull.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
: "${HELM:?HELM must name a helm binary: run make demo, which builds it}"
NAMESPACE="${NAMESPACE:-datafleet-system}"
local_kubeconfig="$("$ROOT/test/cluster/cluster.sh" kubeconfig)"
set_image=()

if [ -n "${KUBECONFIG:-}" ] && [ "$KUBECONFIG" != "$local_kubeconfig" ]; then
  echo "demo: installing into the cluster of KUBECONFIG=$KUBECONFIG" >&2
  [ -z "${IMAGE_REPOSITORY:-}" ] || set_image+=(--set "image.repository=$IMAGE_REPOSITORY")
  [ -z "${IMAGE_TAG:-}" ] || set_image+=(--set "image.tag=$IMAGE_TAG")
else
  export KUBECONFIG="$("$ROOT/test/cluster/cluster.sh" up | tail -n1)"
  "$ROOT/hack/images.sh" >/dev/null
  ref="$(grep '^operator=' "${CACHE}/images/refs.env" | cut -d= -f2)"
  set_image+=(--set "image.repository=${ref%:*}" --set "image.tag=${ref##*:}" --set image.pullPolicy=Never)
  # A developer's cluster is always in its maintenance window, so that a rebuilt agent reaches the
  # demo's pods (one instance at a time) instead of waiting as a pending restart (docs/upgrades.md).
  set_image+=(--set maintenanceWindow.startTime=00:00 --set maintenanceWindow.duration=24h)
fi
KUBECTL="$("$ROOT/hack/k8s-binaries.sh" kubectl | tail -n1)/kubectl"

# Helm never upgrades crds/ of an installed chart: apply them first (docs/install.md, Upgrading).
"$KUBECTL" apply --server-side -f "$ROOT/charts/datafleet/crds/" >/dev/null
# VersionCatalogs made by hand (earlier demos applied them from docs/samples) are handed to the
# release, which now ships them: Helm adopts objects that carry its release annotations.
for vc in $("$KUBECTL" get versioncatalogs -o name 2>/dev/null); do
  "$KUBECTL" annotate --overwrite "$vc" meta.helm.sh/release-name=datafleet meta.helm.sh/release-namespace="$NAMESPACE" >/dev/null
  "$KUBECTL" label --overwrite "$vc" app.kubernetes.io/managed-by=Helm >/dev/null
done
"$HELM" upgrade --install datafleet "$ROOT/charts/datafleet" --namespace "$NAMESPACE" --create-namespace \
  --wait --timeout 5m "${set_image[@]}"
# A ready pod is not yet a reachable webhook: the Service's route to it is programmed a moment
# later (the e2e waits the same way). A server-side dry run of the samples shows the webhook answers.
for attempt in $(seq 60); do
  if out="$("$KUBECTL" apply --dry-run=server -f "$ROOT/docs/samples/" 2>&1)"; then break; fi
  if [ "$attempt" = 60 ] || ! grep -q 'failed calling webhook' <<<"$out"; then
    echo "$out" >&2; echo "demo: the samples were refused (above)" >&2; exit 1
  fi
  sleep 2
done
"$KUBECTL" apply -f "$ROOT/docs/samples/"
cat <<MSG

Datafleet is running. Look at it with:

  export KUBECONFIG=$KUBECONFIG
  alias kubectl=$KUBECTL
  kubectl -n $NAMESPACE get pods
  kubectl get versioncatalogs
  kubectl get serviceinstances -A
  kubectl describe serviceinstance orders-db
  kubectl describe serviceinstance events
  kubectl describe serviceinstance profiles
  kubectl get servicebindings
  kubectl get secret orders-app -o jsonpath='{.data.uri}' | base64 -d

Remove it with: $HELM uninstall -n $NAMESPACE datafleet   (or: make cluster-down)
MSG
