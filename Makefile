# wapisnap — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo dev test fuzz-engine lint bench bench-broadcast bench-peers bench-cold openapi-current build deploy clean

# Project-local Python tools (AWS emulator, cfn-lint), reinstalled when the pins change.
$(STAMP): infra/requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	@touch $(STAMP)

setup: $(STAMP)

## Run the whole system locally and play a scripted scenario end to end.
demo: setup
	cargo run --quiet -p wapisnap-local -- demo

## The local stack in the foreground (LOCAL_HTTP_ADDR, LOCAL_SANDBOX_ADDR, META_GRAPH_URL, ...).
dev: setup
	cargo run --quiet -p wapisnap-local -- dev

## Every test, unit and integration; the integration tests start their own emulator.
test: setup
	cargo test --workspace

## The send engine's property test with many random stories (`make test` plays 8).
fuzz-engine: setup
	INTERLEAVING_CASES=$${INTERLEAVING_CASES:-200} cargo test -p wapisnap-tests --test integration interleavings

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint infra/template.yaml

## Criterion benchmarks (the webhook's signature + parse + routing path).
bench:
	cargo bench -p wapisnap

## A 10,000-recipient broadcast through the local stack against the sandbox's throughput limit
## (80 and 1,000 mps): time against the floor, peak rate, requests per recipient. Options go in
## BENCH_ARGS, e.g. BENCH_ARGS="--recipients 2000 --mps 80".
bench-broadcast: setup
	cargo run --release -p wapisnap-local --bin bench-broadcast -- $(BENCH_ARGS)

## What each unit of work costs in AWS: an inbound text with its flow reply, a status webhook, an
## inbox reply, a 131049 retry cycle, a broadcast recipient, a sweeper run. Counts each unit's AWS
## requests by operation on the local stack, times its Lambda invocations, prices both at list
## prices; totals per 1M inbound messages and per 100,000-recipient broadcast. Options go in
## BENCH_ARGS, e.g. BENCH_ARGS="--recipients 500 --open-jobs 1000"; BENCH_COST_CALLS=1 lists each call.
.PHONY: bench-cost
bench-cost: setup
	cargo run --release --quiet -p wapisnap-local --bin bench-cost -- $(BENCH_ARGS)

## The webhook's CPU path (signature + parse + routing) against the JavaScript it replaces, on
## the same signed payloads: a hand-written Node handler (createHmac + timingSafeEqual +
## JSON.parse) and whatsapp-api-js (bench/peers, pinned); medians per delivery and the ratios.
## Needs Node 20+; not run in CI.
bench-peers:
	cd bench/peers && npm ci --silent --no-audit --no-fund
	cargo run --release --quiet -p wapisnap --example bench_peers -- $(BENCH_ARGS)

## Cold start and size of every function: release binaries run as Lambda runs them, against a
## stand-in of the Lambda runtime API and the local stack, with real events; per function the
## init (process start to the first /next), the first and a warm invocation, peak RSS, and the
## size of the arm64 bootstrap Lambda loads (made by `make build`) beside the binary run here.
## Options go in BENCH_ARGS, e.g. BENCH_ARGS="--runs 5 --only webhook".
COLD_FUNCTIONS := webhook api sender flows retry broadcast sweeper
bench-cold: setup build
	cargo build --release $(addprefix -p wapisnap-,$(COLD_FUNCTIONS))
	cargo run --release --quiet -p wapisnap-local --bin bench-cold -- $(BENCH_ARGS)

$(VENV)/.deploy-tools: infra/requirements-deploy.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements-deploy.txt
	@touch $@

## The API serves docs/openapi.json as checked in: a build or deploy first checks it is the code's.
openapi-current:
	cargo test --quiet -p wapisnap-api --lib openapi

## Lambda binaries for arm64, with cargo-lambda (installed into .venv on first use).
build: $(VENV)/.deploy-tools openapi-current
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --workspace \
		--exclude wapisnap-local --exclude wapisnap-tests --exclude wapisnap-admin

## Deploy with SAM (needs the SAM CLI and AWS credentials); asks for the Meta secrets once.
deploy: $(VENV)/.deploy-tools openapi-current
	cd infra && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" sam build --beta-features && sam deploy --guided

clean:
	cargo clean
	rm -rf $(VENV) .local

## Fuzzing (issue 11), longer than `make test` does it: the parsers' property tests
## (shared/src/fuzz.rs) with FUZZ_CASES cases per property (cheap properties play more, those
## with a round trip fewer), then FUZZ_WEBHOOK_CASES fuzzed deliveries POSTed to the local
## stack's webhook (tests/integration/webhook_fuzz.rs). A new seed each run, printed; replay one
## with FUZZ_SEED=<seed> and the same counts. Debug build: overflow checks stay on.
FUZZ_CASES ?= 10000
FUZZ_WEBHOOK_CASES ?= 1000
.PHONY: fuzz
fuzz: setup
	FUZZ_CASES=$(FUZZ_CASES) cargo test -p wapisnap --lib fuzz -- --nocapture
	FUZZ_CASES=$(FUZZ_WEBHOOK_CASES) cargo test -p wapisnap-tests --test integration webhook_fuzz -- --nocapture
