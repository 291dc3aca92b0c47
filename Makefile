# sworn — make help lists the targets.
GO       ?= go
BIN      := .bin
PKGS     := ./...
PROTO    := agent/admin/adminpb/admin.proto

.DEFAULT_GOAL := help

.PHONY: help
help: ## list targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/sworn
	$(GO) build -o $(BIN)/sworn ./cmd/sworn

.PHONY: run
run: ## run the agent on the embedded CA (--dev)
	$(GO) run ./cmd/sworn agent --dev

KUBE_BINS := $(BIN)/etcd $(BIN)/kube-apiserver $(BIN)/kubectl
TEST_BINS := $(BIN)/vault $(KUBE_BINS) $(BIN)/step-ca $(BIN)/nginx-ok $(BIN)/helm-render

.PHONY: test
test: $(TEST_BINS) ## run every test with the race detector (builds Vault and the Kubernetes control plane once)
	$(GO) test -race -count=1 $(PKGS)

.PHONY: test-short
test-short: $(TEST_BINS) ## the quick inner loop: no race detector, short mode
	$(GO) test -short -count=1 $(PKGS)

# The short soak (75 s, 20 watchers) runs inside make test as TestSoak; this
# is the long one whose figures docs/benchmarks.md reports. It needs root.
SOAK_DURATION ?= 20m
SOAK_WATCHERS ?= 150
SOAK_TIMEOUT  ?= 45m

.PHONY: soak
soak: ## run the agent SOAK_DURATION (20m) with SOAK_WATCHERS (150) watchers through CA rotation, SIGHUPs and a kill -9, and print the figures
	SOAK_DURATION=$(SOAK_DURATION) SOAK_WATCHERS=$(SOAK_WATCHERS) $(GO) test -count=1 -v -run '^TestSoak$$' -timeout $(SOAK_TIMEOUT) ./internal/soak/

# The reduced fleet (3 agents x 10 identities) runs inside make test as
# TestFleet; this is the full one whose figures docs/benchmarks.md and
# docs/scale.md report: FLEET_AGENTS agent processes, each holding
# FLEET_IDENTITIES SVIDs of FLEET_TTL, against one Vault, in sign and then
# intermediate mode.
FLEET_AGENTS     ?= 50
FLEET_IDENTITIES ?= 200
FLEET_TTL        ?= 5m
FLEET_TIMEOUT    ?= 60m

.PHONY: bench-fleet
bench-fleet: $(BIN)/vault ## run FLEET_AGENTS (50) agents x FLEET_IDENTITIES (200) SVIDs of FLEET_TTL (5m) against one Vault through a CA change, in both modes, and print the figures
	FLEET_AGENTS=$(FLEET_AGENTS) FLEET_IDENTITIES=$(FLEET_IDENTITIES) FLEET_TTL=$(FLEET_TTL) $(GO) test -count=1 -v -run '^TestFleet$$' -timeout $(FLEET_TIMEOUT) ./internal/fleet/

# Every package whose figures docs/benchmarks.md reports, each benchmark run
# BENCHCOUNT times so benchstat can give a spread (its ±) and not one sample.
BENCH_PKGS := ./ca/local/ ./ca/vault/ ./agent/ ./agent/cache/ ./cmd/sworn/proxy/
BENCHCOUNT ?= 6
BENCHSTAT  := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

.PHONY: bench
bench: $(TEST_BINS) ## run every benchmark BENCHCOUNT (6) times into .bin/bench.txt and summarise it with benchstat (figures go to docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem -count=$(BENCHCOUNT) -timeout 90m $(BENCH_PKGS) > $(BIN)/bench.txt || { cat $(BIN)/bench.txt; exit 1; }
	$(GO) run $(BENCHSTAT) $(BIN)/bench.txt

FUZZTIME ?= 10s

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME (default 10s) each; a crash is kept in the package's testdata/fuzz
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg; \
	  done; \
	done

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: lint
lint: ## gofmt, go vet (also as darwin: everything but the agent builds off Linux), staticcheck and a check that generated code is current
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) build ./... && GOOS=darwin $(GO) vet ./...
	$(GO) run $(STATICCHECK) $(PKGS)
	$(MAKE) generate-check

.PHONY: generate
generate: $(BIN)/protoc-ok ## regenerate the admin API's Go code from its proto
	protoc --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" \
	       --plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
	       -I agent/admin/adminpb \
	       --go_out=agent/admin/adminpb --go_opt=paths=source_relative \
	       --go-grpc_out=agent/admin/adminpb --go-grpc_opt=paths=source_relative \
	       $(PROTO)

.PHONY: generate-check
generate-check: generate ## fail if generated code differs from the committed code
	@git diff --exit-code -- agent/admin/adminpb || (echo "generated code is stale: run make generate"; exit 1)

# nginx comes from Debian's package: the proxy's HTTP-mode tests forward to a
# real one, because what matters is how a real backend normalises paths and
# reads headers.
$(BIN)/nginx-ok:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light)
	@mkdir -p $(BIN) && touch $@

# protoc comes from Debian's protobuf-compiler; the Go plugins are pinned
# as tools in go.mod.
$(BIN)/protoc-ok:
	@command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)
	@mkdir -p $(BIN) && touch $@

.PHONY: vault
vault: $(BIN)/vault ## build the pinned HashiCorp Vault server used by the Vault tests

# Vault is a separate module so its dependency graph never enters ours. The
# build is long (tens of minutes on 2 cores) and is done once.
$(BIN)/vault: deploy/vault/server/go.mod deploy/vault/server/go.sum
	@mkdir -p $(BIN)
	cd deploy/vault/server && $(GO) build -o ../../../$(BIN)/vault.tmp github.com/hashicorp/vault
	mv $(BIN)/vault.tmp $@

.PHONY: kube
kube: $(KUBE_BINS) ## build etcd, kube-apiserver and kubectl for the Kubernetes tests

KUBE_MOD := deploy/kubernetes/testbin

$(BIN)/etcd: $(KUBE_MOD)/etcd/go.mod $(KUBE_MOD)/etcd/go.sum $(KUBE_MOD)/etcd/main.go
	@mkdir -p $(BIN)
	cd $(KUBE_MOD)/etcd && $(GO) build -o ../../../../$(BIN)/etcd.tmp .
	mv $(BIN)/etcd.tmp $@

$(BIN)/kube-apiserver $(BIN)/kubectl: $(BIN)/%: $(KUBE_MOD)/apiserver/go.mod $(KUBE_MOD)/apiserver/go.sum
	@mkdir -p $(BIN)
	cd $(KUBE_MOD)/apiserver && $(GO) build -o ../../../../$(BIN)/$*.tmp k8s.io/kubernetes/cmd/$*
	mv $(BIN)/$*.tmp $@

# The Helm chart's tests render it with the Helm SDK; helm-render is its own
# module so Helm's dependency graph never enters ours.
HELM_RENDER := deploy/helm/render

$(BIN)/helm-render: $(HELM_RENDER)/go.mod $(HELM_RENDER)/go.sum $(HELM_RENDER)/main.go
	@mkdir -p $(BIN)
	cd $(HELM_RENDER) && $(GO) build -o ../../../$(BIN)/helm-render.tmp .
	mv $(BIN)/helm-render.tmp $@

.PHONY: stepca
stepca: $(BIN)/step-ca ## build the pinned smallstep step-ca used by the step-ca tests

# Without cgo: with it step-ca wants libpcsclite for the YubiKey KMS.
$(BIN)/step-ca: deploy/stepca/server/go.mod deploy/stepca/server/go.sum
	@mkdir -p $(BIN)
	cd deploy/stepca/server && CGO_ENABLED=0 $(GO) build -o ../../../$(BIN)/step-ca.tmp github.com/smallstep/certificates/cmd/step-ca
	mv $(BIN)/step-ca.tmp $@

# The release image: built by deploy/image (its own module, so
# go-containerregistry stays out of go.mod) without a Docker daemon, as one
# OCI image index for linux/amd64 and linux/arm64 written as an OCI layout.
# VERSION stamps a release; left empty it is the tag at HEAD, else a Go
# pseudo-version of HEAD. The CA certificates in the image are the build
# machine's, from Debian's ca-certificates. docs/install.md says how to push it.
VERSION   ?=
IMAGE_DIR ?= dist/image

.PHONY: image
image: ## build the container image (linux/amd64 and linux/arm64, static, non-root) as an OCI layout in dist/image, without Docker
	@[ -s /etc/ssl/certs/ca-certificates.crt ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates)
	cd deploy/image && $(GO) run . -out $(abspath $(IMAGE_DIR)) $(if $(VERSION),-version $(VERSION))

.PHONY: release-check
release-check: ## build the image into a temporary directory and test it: both platforms, entrypoint, user, labels, the binary's version
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	$(MAKE) --no-print-directory image IMAGE_DIR="$$d/image" && \
	cd deploy/image && SWORN_IMAGE_LAYOUT="$$d/image" $(GO) test -count=1 ./...

.PHONY: tidy
tidy: ## go mod tidy
	$(GO) mod tidy
