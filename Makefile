# Rewind Broker. `make run` starts a broker on localhost with its data in ./data;
# `make test` runs everything CI runs.
SHELL := /bin/bash
GO ?= go
# Fuzz budget per target in `make test` (CI) and `make fuzz` (long runs). CI's is a count, not a
# duration: with a duration, Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" when the time runs out while a worker is mid-input (golang/go#75804, fixed
# in Go 1.27); it hit FuzzOpen here. 100 000 inputs take 2–11 s per target on the 2-core machine.
FUZZTIME ?= 100000x
LONGFUZZ ?= 5m
BIN := bin

FUZZ_TARGETS := \
	./protocol:FuzzDecode \
	./protocol:FuzzOpen \
	./protocol:FuzzDecodeAttach \
	./registry:FuzzDecodeEntry \
	./registry:FuzzDecodeTerminal \
	./registry:FuzzDecodeAttach \
	./registry:FuzzDecodeBlob \
	./registry:FuzzDecodeAudit

.PHONY: all run build test check unit chromium fuzz-smoke fuzz bench bench-full clean

all: build

run:
	$(GO) run ./cmd/broker $(ARGS)

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# test: formatting, vet, every test with the race detector (and the allocation tests without it),
# then each fuzz target briefly.
test: check unit fuzz-smoke

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

unit: chromium
	$(GO) test -race -count=1 -timeout 15m ./...
	@# allocation counts again without the race detector, which makes sync.Pool drop items
	$(GO) test -count=1 -run 'Alloc' ./protocol ./broker

# chromium: Debian's browser for the dashboard test (broker/dashboard_test.go drives it headless;
# in CI, where CI=true, the test fails without it). Installed only when missing.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing Debian's chromium for the dashboard test"; \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	fi

fuzz-smoke:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) > /tmp/fuzz-$$name.log 2>&1 || { cat /tmp/fuzz-$$name.log; exit 1; }; \
		tail -n 1 /tmp/fuzz-$$name.log; \
	done

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(LONGFUZZ)"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(LONGFUZZ); \
	done

# bench: Go benchmarks and the load scenarios. .ci/bench-load ends with `testclient report`, which
# rewrites the generated section of docs/benchmarks.md (reached vs goal, commit, machine, date,
# commands) from bin/load-*.json and bin/bench-go.txt; bin/bench-go.cmd records the command below.
BENCH_GO = $(GO) test -run '^$$' -bench . -benchmem -count 1 ./protocol ./registry ./broker
bench: build
	@mkdir -p $(BIN)
	@c=$$(git rev-parse --short HEAD); [ -z "$$(git status --porcelain -- . ':(exclude)docs/benchmarks.md')" ] || c=$$c-dirty; \
	printf '# commit %s, %s\n%s\n' "$$c" "$$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(BENCH_GO)" > $(BIN)/bench-go.cmd
	$(BENCH_GO) | tee $(BIN)/bench-go.txt
	./.ci/bench-load | tee $(BIN)/bench-load.txt

# bench-full: the 19 000-session runs (sessions and memory slope 5 000 → 19 000 over two load
# processes, wake cycles with 10 000 idle terminals); reports in bin/load-*.json, and the
# generated section of docs/benchmarks.md rewritten from them (and from the last bench's
# bin/bench-go.txt, which names its own commit and date).
bench-full: build
	BENCH_FULL=1 ./.ci/bench-load | tee $(BIN)/bench-load-full.txt

clean:
	rm -rf $(BIN)
