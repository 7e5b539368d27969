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
  [ -z "${IMAGE_TAG:-}" ] || set_image+=(--set-string "image.tag=$IMAGE_TAG")
else
  export KUBECONFIG="$("$ROOT/test/cluster/cluster.sh" up | tail -n1)"
  "$ROOT/hack/images.sh" >/dev/null
  ref="$(grep '^operator=' "${CACHE}/images/refs.env" | cut -d= -f2)"
  set_image+=(--set "image.repository=${ref%:*}" --set-string "image.tag=${ref##*:}" --set image.pullPolicy=Never)
  # A developer's cluster is always in its maintenance window, so that a rebuilt agent reaches the
  # demo's pods (one instance at a time) instead of waiting as a pending restart (docs/upgrades.md).
  set_image+=(--set maintenanceWindow.startTime=00:00 --set maintenanceWindow.duration=24h)
  # The demo's object store (below), which BackupStores may name.
  set_image+=(--set "backupStores.allowedEndpoints={minio.datafleet-demo.svc:9000}")
  demo_store=1
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

# An object store for backups on the local cluster: MinIO in namespace datafleet-demo (its data
# in the pod: a demo's), with the bucket "backups", as docs/getting-started.md uses it.
if [ -n "${demo_store:-}" ]; then
  minio="$(grep '^minio=' "${CACHE}/images/refs.env" | cut -d= -f2)"
  "$KUBECTL" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: datafleet-demo
  labels: {pod-security.kubernetes.io/enforce: restricted}
---
apiVersion: v1
kind: Pod
metadata: {name: minio, namespace: datafleet-demo, labels: {app: minio}}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: minio
      image: ${minio}
      imagePullPolicy: Never
      args: [server, --address, ":9000", /data]
      env:
        - {name: MINIO_ROOT_USER, value: datafleet-demo}
        - {name: MINIO_ROOT_PASSWORD, value: datafleet-demo-secret}
        - {name: MINIO_BROWSER, value: "off"}
        - {name: MINIO_UPDATE, value: "off"}
      ports: [{containerPort: 9000}]
      readinessProbe: {httpGet: {path: /minio/health/ready, port: 9000}}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: data, mountPath: /data}, {name: tmp, mountPath: /tmp}]
  volumes: [{name: data, emptyDir: {}}, {name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: minio, namespace: datafleet-demo}
spec:
  selector: {app: minio}
  ports: [{name: s3, port: 9000, targetPort: 9000}]
YAML
  "$KUBECTL" -n datafleet-demo wait pod/minio --for=condition=Ready --timeout=2m >/dev/null
  # The bucket, through the Service's address, which this host routes to (test/cluster).
  ip="$("$KUBECTL" -n datafleet-demo get service minio -o jsonpath='{.spec.clusterIP}')"
  for attempt in $(seq 30); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" --user datafleet-demo:datafleet-demo-secret \
      -X PUT "http://${ip}:9000/backups" || true)"
    # 200: made; 409: there already (a second make demo).
    if [ "$code" = 200 ] || [ "$code" = 409 ]; then break; fi
    if [ "$attempt" = 30 ]; then echo "demo: creating the bucket in MinIO answered ${code}" >&2; exit 1; fi
    sleep 2
  done
fi
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

Then follow docs/getting-started.md: an instance, a binding, a backup and its restore, a
version upgrade and the fleet's status, in ten minutes.

Remove it with: $HELM uninstall -n $NAMESPACE datafleet   (or: make cluster-down)
MSG
