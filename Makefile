# Datafleet. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

DATAFLEET_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/datafleet
export DATAFLEET_CACHE
K8S_VERSION ?= 1.37.1
CONTROLLER_GEN_VERSION ?= v0.23.0
HELM_VERSION ?= v3.22.0

CONTROLLER_GEN = $(shell hack/go-tool.sh sigs.k8s.io/controller-tools/cmd/controller-gen $(CONTROLLER_GEN_VERSION))
HELM = $(shell hack/go-tool.sh helm.sh/helm/v3/cmd/helm $(HELM_VERSION))
# A real S3 server for the backup tests; the module proxy serves MinIO only as pseudo-versions.
MINIO_VERSION ?= v0.0.0-20260212201848-7aac2a2c5b7c
# Built static (as its image needs), so that one build serves the host's tests and the image.
MINIO = $(shell CGO_ENABLED=0 hack/go-tool.sh github.com/minio/minio $(MINIO_VERSION))
# Emulators of Cloud Storage (fake-gcs-server, a Go module) and Azure Blob Storage (Azurite, an npm
# package pinned by hack/azurite/package-lock.json) for the gs:// and azblob:// store tests.
FAKE_GCS_VERSION ?= v1.56.1
FAKE_GCS = $(shell hack/go-tool.sh github.com/fsouza/fake-gcs-server $(FAKE_GCS_VERSION))
AZURITE = $(shell hack/azurite.sh)
# Prometheus's Go module (its v0.3xx.y tags are Prometheus 3.xx.y): promtool checks and unit-tests the
# alert rules; hack/images.sh builds Prometheus's image from it, which scrapes the local cluster in e2e.
PROMETHEUS_VERSION ?= v0.316.0
export PROMETHEUS_VERSION
PROMTOOL = $(shell CGO_ENABLED=0 hack/go-tool.sh github.com/prometheus/prometheus/cmd/promtool $(PROMETHEUS_VERSION))
# A MongoDB wire-protocol server for the mongodb engine's tests (no mongod can be installed here).
FERRETDB = $(shell CGO_ENABLED=0 hack/ferretdb.sh)
# kwok plays the nodes and pods of the scale harness's kubelet-less cluster (test/scale, docs/scale.md).
KWOK_VERSION ?= v0.8.0
KWOK = $(shell hack/go-tool.sh sigs.k8s.io/kwok/cmd/kwok $(KWOK_VERSION))
# kube-apiserver and etcd built from Go modules, cached outside the repository (see hack/k8s-binaries.sh).
ENVTEST_ASSETS = $(shell K8S_VERSION=$(K8S_VERSION) hack/k8s-binaries.sh kube-apiserver etcd kubectl | tail -n1)

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: generate
generate: ## Regenerate deepcopy code, CRDs and RBAC from the API types.
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=charts/datafleet/crds
	$(CONTROLLER_GEN) rbac:roleName=datafleet-manager paths=./framework/... paths=./engines/... paths=./cmd/... output:rbac:artifacts:config=charts/datafleet/files
	go run ./cmd/dashboards charts/datafleet/files/dashboards

.PHONY: verify-generated
verify-generated: generate ## Fail when generated files differ from what is committed.
	@if [ -n "$$(git status --porcelain -- api charts)" ]; then \
	  git --no-pager diff -- api charts; git status --porcelain -- api charts; \
	  echo "generated files are stale: run 'make generate' and commit the result"; exit 1; fi

.PHONY: prometheus-version
prometheus-version: ## Print the Prometheus module version the tests build promtool and Prometheus from.
	@echo $(PROMETHEUS_VERSION)

.PHONY: envtest-assets
envtest-assets: ## Build (once) and cache kube-apiserver, etcd and kubectl; print their directory.
	@echo $(ENVTEST_ASSETS)

.PHONY: vet
vet: ## go vet.
	go vet ./...

# Debian packages the engine integration tests run (real PostgreSQL and RabbitMQ servers, and the
# Redis server of the reference engine, engines/reference).
TEST_PACKAGES = postgresql-15 rabbitmq-server redis-server

# The versions hack/deps.sh builds.
export K8S_VERSION CONTROLLER_GEN_VERSION HELM_VERSION MINIO_VERSION FAKE_GCS_VERSION KWOK_VERSION TEST_PACKAGES

.PHONY: deps
deps: ## Install and build, once, everything the tests need (side by side; cached outside the repository).
	hack/deps.sh

.PHONY: test-env
test-env: ## Print the environment the test tiers run with (the paths of the tools they use).
	@echo "export KUBEBUILDER_ASSETS='$(ENVTEST_ASSETS)' CONTROLLER_GEN='$(CONTROLLER_GEN)' HELM='$(HELM)'" \
	  "MINIO_BIN='$(MINIO)' PROMTOOL='$(PROMTOOL)' FAKE_GCS_BIN='$(FAKE_GCS)' AZURITE_BIN='$(AZURITE)' FERRETDB_BIN='$(FERRETDB)'" \
	  "KWOK='$(KWOK)'"

.PHONY: test
test: ## Run every test tier: unit, controllers on a real API server, engines against real servers, chart, end-to-end.
	hack/test.sh

.PHONY: e2e
e2e: ## End-to-end suite: brings the local cluster up if needed (and down after), builds images, installs the chart.
	HELM="$(HELM)" test/e2e/run.sh

.PHONY: cluster-up
cluster-up: ## Start the local three-node cluster (idempotent; DATAFLEET_NODES=1 or 2 for fewer); prints its kubeconfig path.
	test/cluster/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and check that nothing of it is left on the machine.
	test/cluster/cluster.sh down

.PHONY: images
images: ## Build every image from Debian packages / Go binaries (cached); import them when the cluster is up.
	hack/images.sh

.PHONY: demo
demo: ## The operator with sample instances on the local cluster (or on $$KUBECONFIG's cluster).
	HELM="$(HELM)" hack/demo.sh

.PHONY: bench
bench: ## Scale benchmark: 500 instances of the fake engine on a real API server.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -run '^$$' -bench BenchmarkConverge -benchtime 1x -timeout 60m ./test/scale/

.PHONY: bench-scale
bench-scale: ## Scale harness: the real manager, every engine, on a kwok control plane (docs/scale.md). SCALE_INSTANCES, SCALE_ENGINES.
	KUBEBUILDER_ASSETS="$$(hack/k8s-binaries.sh kube-apiserver etcd kube-controller-manager kube-scheduler | tail -n1)" KWOK="$(KWOK)" \
	  go test -run '^$$' -bench BenchmarkFleet -benchtime 1x -timeout 180m -v ./test/scale/ | grep -v '^goos\|^goarch\|^pkg\|^cpu'

.PHONY: bench-backup
bench-backup: ## Backup benchmark: a 1 GiB PostgreSQL database through the backup path, next to plain pg_dump -Fc.
	hack/host-packages.sh $(TEST_PACKAGES)
	go test -run '^$$' -bench BenchmarkBackup -benchtime 1x -timeout 60m ./engines/postgres/agent/

.PHONY: bench-pitr
bench-pitr: ## Point-in-time recovery benchmark: restore through the store against pg_basebackup + replay, the archiver's cost, the achieved RPO.
	hack/host-packages.sh $(TEST_PACKAGES)
	MINIO_BIN="$(MINIO)" go test -run '^$$' -bench BenchmarkPITR -benchtime 1x -timeout 60m ./engines/postgres/agent/

.PHONY: run
run: build ## Start a local API server, install the CRDs and samples, and run the manager against it.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./cmd/devcluster -- bin/manager --metrics-bind-address=127.0.0.1:8080 --health-probe-bind-address=127.0.0.1:8081

.PHONY: build
build: ## Build the manager and the kubectl plugin (kubectl datafleet) into bin/.
	go build -o bin/manager ./cmd/manager
	go build -o bin/kubectl-datafleet ./cmd/kubectl-datafleet
