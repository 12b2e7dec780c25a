# Tracestream: OpenTelemetry traces into Redis Streams, on Kubernetes.
#
# Everything a target needs is installed by the target itself (hack/ scripts, tools in ./bin),
# cached by version, so the second run is fast. `make help` lists the targets.

VERSION ?= 0.1.0-dev
IMG ?= ghcr.io/tracestream/tracestream:$(VERSION)
IMAGE_TAR ?= bin/tracestream-image.tar

CONTROLLER_GEN_VERSION := $(shell go list -m -f '{{.Version}}' sigs.k8s.io/controller-tools)
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
# promtool is built from the Prometheus module at the version go.mod pins for the PromQL parser
# (Prometheus v3.x is tagged v0.3xx.y as a Go module), so the rule unit tests and the parser
# test/observability uses agree.
PROMETHEUS_VERSION := $(shell go list -m -f '{{.Version}}' github.com/prometheus/prometheus)

LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# Tools built from modules live in the version-keyed cache (hack/install-tool.sh prints the path).
HELM = $(shell hack/install-tool.sh helm helm.sh/helm/v3/cmd/helm $(HELM_VERSION))
PROMTOOL = $(shell hack/install-tool.sh promtool github.com/prometheus/prometheus/cmd/promtool $(PROMETHEUS_VERSION))

CLUSTER_DIR ?= $(CURDIR)/.cluster
CLUSTER_KUBECONFIG := $(CLUSTER_DIR)/kubeconfig

GO_LDFLAGS := -s -w -X github.com/tracestream/tracestream/internal/version.Version=$(VERSION)
# Extra flags for go test, e.g. GOTEST_FLAGS=-v.
GOTEST_FLAGS ?=

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
		/^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and manager RBAC role (config/), and sync both into the Helm chart.
	$(CONTROLLER_GEN) crd rbac:roleName=manager paths=./api/... paths=./internal/controller/... output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	rm -f charts/tracestream/crds/*.yaml
	cp config/crd/bases/*.yaml charts/tracestream/crds/
	cp config/rbac/role.yaml charts/tracestream/files/manager-role.yaml
	sed -i -E 's/^(version|appVersion): .*/\1: $(VERSION)/' charts/tracestream/Chart.yaml
	sed -i -E 's/^(  newTag:) .*/\1 $(VERSION)/' config/default/kustomization.yaml

.PHONY: docs
docs: ## Generate the CRD reference (docs/reference/api.md) from the API types.
	hack/crd-ref-docs.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet (with the e2e build tag, so test/e2e is vetted too).
	go vet -tags e2e,chaos ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run --build-tags e2e,chaos ./...

.PHONY: verify
verify: manifests generate docs ## Regenerate code, manifests, chart CRDs and docs, format, vet, and fail if anything changed.
	gofmt -s -l $$(git ls-files '*.go') | (! grep .) || { echo "gofmt: the files above need make fmt"; exit 1; }
	go mod tidy -diff
	$(MAKE) vet
	git diff --exit-code -- api config charts docs/reference || { echo "generated files are stale: run make manifests generate docs and commit"; exit 1; }
	test -z "$$(git status --porcelain -- api config charts docs/reference)" || { git status --porcelain -- api config charts docs/reference; echo "untracked generated files"; exit 1; }

##@ Test

.PHONY: test
test: test-deps ## Unit, envtest and Redis-harness tests (with -race), then a short run of each fuzz target.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" HELM="$(HELM)" PROMTOOL="$(PROMTOOL)" \
		PROMETHEUS_OPERATOR_CRDS="$$(hack/prometheus-operator-crds.sh)" KEDA_CRDS="$$(hack/keda-crds.sh)" \
		go test -race -count=1 $(GOTEST_FLAGS) ./...
	$(MAKE) fuzz

# Fuzz targets as package:Target:executions. make fuzz runs each for that many executions (or
# for FUZZTIME when set, e.g. FUZZTIME=60s); the seed corpora under testdata/fuzz also run as plain
# tests in every go test. Counts, not durations: with a -fuzztime duration, Go 1.26's coordinator
# can fail a target with a bare "context deadline exceeded" at the deadline (golang/go#75804, fixed
# in Go 1.27), which made CI flaky here.
FUZZ_TARGETS := \
	./internal/exporter/otlpwire:FuzzValidate:10000x \
	./internal/exporter/otlpwire:FuzzFromJSON:60000x \
	./internal/exporter/encode:FuzzEncodeJSON:100000x \
	./internal/exporter/encode:FuzzEncodeRequest:30000x \
	./internal/exporter/encode:FuzzKeyTemplate:60000x \
	./internal/exporter/receiver:FuzzHTTPBody:20000x \
	./internal/exporter/config:FuzzConfigYAML:30000x \
	./internal/exporter/entry:FuzzUnmarshal:30000x
FUZZTIME ?=

.PHONY: fuzz
fuzz: ## Run each fuzz target briefly (a fixed number of executions; FUZZTIME=60s for longer runs).
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$${rest#*:}; \
		budget=$${FUZZTIME:-$$n}; \
		echo "fuzz $$name ($$pkg) for $$budget"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $$budget $$pkg || exit 1; \
	done

.PHONY: test-deps
test-deps: ## Install redis-server, build the envtest control plane, helm and promtool, fetch the CRDs the tests use (all cached).
	hack/install-debs.sh redis
	hack/envtest-assets.sh >/dev/null
	hack/install-tool.sh helm helm.sh/helm/v3/cmd/helm $(HELM_VERSION) >/dev/null
	hack/install-tool.sh promtool github.com/prometheus/prometheus/cmd/promtool $(PROMETHEUS_VERSION) >/dev/null
	hack/prometheus-operator-crds.sh >/dev/null
	hack/keda-crds.sh >/dev/null

.PHONY: test-e2e
test-e2e: cluster-up image ## End-to-end tests on the local single-node cluster (starts it if needed).
	hack/cluster-load-image.sh $(IMAGE_TAR)
	KUBECONFIG=$(CLUSTER_KUBECONFIG) E2E_IMAGE=$(IMG) E2E_VERSION=$(VERSION) \
		E2E_IMAGE_ID="$$(sha256sum $(IMAGE_TAR) | cut -c1-16)" E2E_HELM="$(HELM)" \
		E2E_KUBECTL="$$(hack/build-kube.sh kubectl)/kubectl" \
		go test -tags e2e -count=1 -timeout 30m $(GOTEST_FLAGS) ./test/e2e/...

.PHONY: test-chaos
test-chaos: ## Fault-injection suite: faults under load, every acknowledged span checked in Redis (docs/reliability.md).
	hack/install-debs.sh redis
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go test -tags chaos -count=1 -timeout 20m $(GOTEST_FLAGS) ./test/chaos/...

.PHONY: bench
bench: ## Every performance figure in one run (exporter vs redis-benchmark, Collector, latency, memory, operator at scale) into docs/performance.md.
	hack/bench.sh

##@ Build

.PHONY: build
build: ## Build bin/manager and bin/exporter (static).
	CGO_ENABLED=0 go build -trimpath -ldflags "$(GO_LDFLAGS)" -o bin/manager ./cmd/manager
	CGO_ENABLED=0 go build -trimpath -ldflags "$(GO_LDFLAGS)" -o bin/exporter ./cmd/exporter

.PHONY: image
image: build ## Build the OCI image tarball (bin/tracestream-image.tar, tag = version) without a container engine.
	go run ./hack/image --tag $(IMG) --out $(IMAGE_TAR) \
		--file bin/manager:/manager --file bin/exporter:/exporter --entrypoint /manager
	@echo "image $(IMG) written to $(IMAGE_TAR)"

.PHONY: run
run: ## Run the manager against the cluster in KUBECONFIG (exporter image: IMG, load it with make image).
	go run -ldflags "$(GO_LDFLAGS)" ./cmd/manager --exporter-image=$(IMG)

##@ Local cluster

.PHONY: cluster-up
cluster-up: ## Start the local single-node cluster (kubeconfig: .cluster/kubeconfig).
	hack/cluster-up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and undo every change it made to the host.
	hack/cluster-down.sh

.PHONY: demo
demo: ## Run the whole pipeline on the local single-node cluster (or KUBE_CONTEXT/KUBECONFIG with IMAGE=).
	VERSION=$(VERSION) IMG=$(IMG) HELM_VERSION=$(HELM_VERSION) hack/demo.sh

.PHONY: demo-down
demo-down: ## Remove the demo (namespace, operator release, demo Redis); the cluster stays up.
	VERSION=$(VERSION) IMG=$(IMG) HELM_VERSION=$(HELM_VERSION) hack/demo-down.sh

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen
	ln -sf $(notdir $@) $(LOCALBIN)/controller-gen

$(GOLANGCI_LINT):
	mkdir -p $(LOCALBIN)/.golangci-lint
	GOBIN=$(LOCALBIN)/.golangci-lint GOFLAGS=-mod=mod go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/.golangci-lint/golangci-lint $@ && rmdir $(LOCALBIN)/.golangci-lint
	ln -sf $(notdir $@) $(LOCALBIN)/golangci-lint

.PHONY: tools
tools: $(CONTROLLER_GEN) $(GOLANGCI_LINT) ## Install controller-gen and golangci-lint into ./bin, and helm and promtool into the cache.
	@echo "helm: $(HELM)"
	@echo "promtool: $(PROMTOOL)"
