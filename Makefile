# storaged — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
# The release (VERSION file; the Node packages carry the same one) and the
# commit, stamped into the binary: `storaged version`, GET /v1/info.
VERSION   ?= $(shell cat VERSION)
COMMIT    ?= $(shell git describe --always --dirty --abbrev=12 --exclude='*' 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.Version=$(VERSION) -X main.Commit=$(COMMIT)
PREFIX    ?= /usr/local
DESTDIR   ?=
SOCKET    ?= $(CURDIR)/var/storaged.sock
NODE_DIR  := clients/node
# Daemon backends the Node client's suites run against.
NODE_TEST_BACKENDS ?= memory,sqlite,postgres,redis,sqs
# Fuzz budgets are execution counts, about ten seconds each here, not
# durations: go1.26's fuzzing coordinator can fail a duration budget as it
# runs out ("context deadline exceeded" with no failing input written;
# golang/go#75804, fixed in go1.27), which failed a CI run. FUZZTIME=1m
# (or any -fuzztime value) sets one budget for every target instead.
FUZZTIME  ?=
FUZZ_FAST ?= 300000x
FUZZ_SLOW ?= 60000x
LOAD_SECONDS ?= 20
# make dist: the platforms (GOOS/GOARCH) built (darwin/arm64 does not build yet:
# cmd/storaged/peercred.go reads peer credentials with the Linux-only SO_PEERCRED), and nfpm for the .deb, pinned
# (v2.46+ needs modules the Go proxy here does not serve).
DIST_PLATFORMS ?= linux/amd64 linux/arm64
# The pinned tools are built once per machine into TOOLS, which every clone
# and worktree shares (a build takes minutes; one per clone made each fresh
# clone's make test pay for it). Each is installed into a directory of its
# own and renamed into place, so that two builds at once do not collide.
TOOLS     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/storaged-tools
NFPM_VERSION := v2.45.2
NFPM      := $(TOOLS)/nfpm-$(NFPM_VERSION)
# make lint: golangci-lint, pinned, built from the Go module proxy.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HOST_PLATFORM = $(shell $(GO) env GOOS)/$(shell $(GO) env GOARCH)

.PHONY: help build run test test-go test-node test-ui ui-screenshots test-dist test-reliability fuzz bench lint install example dist clean

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the daemon into bin/storaged.
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/storaged ./cmd/storaged

run: build ## Build and serve records and jobs from SQLite under ./var (socket path printed); Ctrl-C stops.
	@mkdir -p var
	STORAGED_SOCKET=$(SOCKET) REPOSITORY_BACKEND=sqlite JOBQUEUE_BACKEND=sqlite SQLITE_PATH=$(CURDIR)/var/storaged.db ./bin/storaged serve

test: lint test-go test-node test-ui test-dist ## Lint, then build everything and run every test (Go with -race, the Node client, the dashboard in Chromium, the packages).

# Packages tested at once. Most of the suites wait (on PostgreSQL, Redis,
# moto, daemons, fsync) far more than they compute: on two cores a run uses
# about half of them with Go's default of one package per core.
GO_TEST_P ?= 4

test-go: build ## Go tests with the race detector (fuzz seed corpora replayed); go vet's checks run in make lint.
	STORAGED_TEST_BIN=$(CURDIR)/bin/storaged $(GO) test -race -count=1 -p $(GO_TEST_P) ./...

test-node: build ## Node client: install, build, type tests, node:test against a real daemon.
	@if [ -f $(NODE_DIR)/package.json ]; then \
		cd $(NODE_DIR) && npm ci --no-audit --no-fund && npm run build && STORAGED_BIN=$(CURDIR)/bin/storaged STORAGED_TEST_BACKENDS=$(NODE_TEST_BACKENDS) npm test; \
	fi

test-ui: build ## The dashboard in headless Chromium (/usr/bin/chromium, or STORAGED_CHROMIUM) against a real daemon: clients/node/ui-test.
	cd $(NODE_DIR) && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && STORAGED_BIN=$(CURDIR)/bin/storaged npm run -s test:ui

ui-screenshots: build ## Screenshots of every dashboard page with demo data into docs/ui/ (for the README).
	cd $(NODE_DIR) && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && STORAGED_BIN=$(CURDIR)/bin/storaged npm run -s ui:screenshots

test-dist: $(NFPM) ## make dist for this platform only into var/dist-test, then install and check what it made (packaging/test).
	$(MAKE) -s dist DIST=$(CURDIR)/var/dist-test DIST_PLATFORMS=$(HOST_PLATFORM)
	DIST_DIR=$(CURDIR)/var/dist-test node --test --test-concurrency=1 packaging/test/*.test.mjs

dist: $(NFPM) ## Release artifacts in dist/: npm packages (client, one per platform), tarballs and .debs for DIST_PLATFORMS.
	VERSION=$(VERSION) COMMIT=$(COMMIT) NFPM=$(NFPM) GO=$(GO) DIST=$(or $(DIST),$(CURDIR)/dist) PLATFORMS='$(DIST_PLATFORMS)' packaging/dist.sh

$(NFPM):
	@mkdir -p $(dir $@)
	tmp=$$(mktemp -d $(dir $@).nfpm-XXXXXX) && GOBIN=$$tmp $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION) \
		&& mv $$tmp/nfpm $@ && rmdir $$tmp

# The reliability tests are the Go tests named TestReliability* in any package
# (they also run, at small size, in make test); here at full size.
test-reliability: build ## Crash, fault, load and hostile-input tests (TestReliability*) at full size, then every fuzzer (FUZZTIME); see docs/RELIABILITY.md.
	@mkdir -p var
	STORAGED_RELIABILITY=1 STORAGED_LOAD_SECONDS=$(LOAD_SECONDS) $(GO) test -count=1 -v -timeout 20m \
		-run '^TestReliability' ./... > var/reliability.log 2>&1 || { cat var/reliability.log; exit 1; }
	@grep -E '^(--- |ok|FAIL)|_test\.go:[0-9]+: ' var/reliability.log | grep -v -- '--- PASS: TestReliabilityHostileInput/'
	cd $(NODE_DIR) && npm run -s build:test && STORAGED_BIN=$(CURDIR)/bin/storaged STORAGED_TEST_BACKENDS=$(NODE_TEST_BACKENDS) node --test --test-concurrency=1 build/test/faults.test.js
	$(MAKE) -s fuzz FUZZTIME=$(FUZZTIME)

fuzz: ## Run each fuzz target: about 10 s of executions each, or FUZZTIME (e.g. 1m) each.
	$(GO) test -run '^$$' -fuzz '^FuzzParseQuery$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_FAST)) ./internal/backend/
	$(GO) test -run '^$$' -fuzz '^FuzzParseFilter$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_FAST)) ./internal/backend/
	$(GO) test -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_SLOW)) ./internal/handlers/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnqueue$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_SLOW)) ./internal/handlers/
	$(GO) test -run '^$$' -fuzz '^FuzzQueueNames$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_FAST)) ./internal/backend/sqs/

bench: build ## Side-by-side measurements (see bench/); QUICK=1 for a short run, BENCH_ONLY=postgres,repoV2 for some sections.
	@if [ -x bench/run ]; then QUICK=$(QUICK) BENCH_ONLY=$(BENCH_ONLY) bench/run; else echo "bench/run is not written yet"; exit 1; fi

# --allow-serial-runners: another golangci-lint running on this machine (any
# clone) makes this one wait for it rather than fail.
lint: $(GOLANGCI_LINT) ## golangci-lint (.golangci.yml: vet, staticcheck, errcheck, gosec, revive, gofmt, goimports...), tsc and eslint on the Node client and on the dashboard's page code (internal/ui/assets).
	$(GOLANGCI_LINT) run --allow-serial-runners ./...
	@if [ -f $(NODE_DIR)/package.json ]; then \
		cd $(NODE_DIR) && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npx tsc --noEmit -p . && npm run -s lint; \
	fi

$(GOLANGCI_LINT):
	@mkdir -p $(dir $@)
	tmp=$$(mktemp -d $(dir $@).golangci-lint-XXXXXX) && GOBIN=$$tmp $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) \
		&& mv $$tmp/golangci-lint $@ && rmdir $$tmp

install: build ## Install the binary and systemd units under DESTDIR/PREFIX.
	install -D -m 0755 bin/storaged $(DESTDIR)$(PREFIX)/bin/storaged
	@if [ -d systemd ]; then \
		install -D -m 0644 systemd/storaged.service $(DESTDIR)/etc/systemd/system/storaged.service; \
		install -D -m 0644 systemd/storaged.socket $(DESTDIR)/etc/systemd/system/storaged.socket; \
		install -D -m 0644 systemd/storaged.env.example $(DESTDIR)/etc/storaged/storaged.env.example; \
	fi

example: ## Run the plan-service example against `make run`'s daemon.
	cd $(NODE_DIR) && npm run build && cd examples/plan-service && STORAGED_SOCKET=$(SOCKET) node server.mjs

clean: ## Remove build output and ./var.
	rm -rf bin var dist $(NODE_DIR)/dist
