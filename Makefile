# Model promotion service: set-up, local AWS, demo, tests.
# `make demo` and `make test` work from a fresh clone; everything they need is installed here.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
LOCAL := .local
MOTO_HOST ?= 127.0.0.1
MOTO_PORT ?= 5000
ENDPOINT := http://$(MOTO_HOST):$(MOTO_PORT)
CARGO ?= cargo
PROMOTE := target/debug/promote
# The tests and the bench start their own moto server from the project's virtualenv.
MOTO_SERVER = $(abspath $(VENV))/bin/moto_server

.PHONY: help venv build-cli local-up local-down demo test test-unit lint lint-rust rust-lint-tools bench

help:
	@echo "make demo        set up, start the local AWS, promote an approved dev model, show the result"
	@echo "make test        set up and run every test (unit, handler, integration against moto, infra checks)"
	@echo "make test-unit   the core crate's tests alone: domain, ports' fakes, use cases; compiles no AWS SDK"
	@echo "make local-up    start moto on $(ENDPOINT) and provision the four accounts; env in $(LOCAL)/env"
	@echo "make local-down  stop the local AWS"
	@echo "make lint        rustfmt, clippy -D warnings, unused dependencies; cfn-lint, policy, SAM and drift checks of infra/"
	@echo "make bench       the figures of docs/benchmarks.md (release build, its own moto server)"
	@echo "make build       every function for Lambda (cargo-lambda, arm64); make deploy-central|deploy-dev|deploy-target"

$(VENV)/.installed: requirements.txt $(wildcard infra/requirements.txt)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt $(if $(wildcard infra/requirements.txt),-r infra/requirements.txt)
	touch $@

venv: $(VENV)/.installed

# promotion-tests beside the CLI: its dependencies turn on what the tests turn on (promotion-core's
# fakes, the features of other members under the SDK), so the demo after the tests rebuilds
# nothing; `make lint` checks it.
build-cli:
	$(CARGO) build --quiet -p promote-cli -p promotion-tests

# The virtualenv installs while the workspace compiles (pip waits on the network, cargo on the CPU).
local-up:
	$(MAKE) --no-print-directory -j2 venv build-cli
	mkdir -p $(LOCAL)
	if ! curl -fs -o /dev/null $(ENDPOINT)/moto-api/; then \
	  nohup $(VENV)/bin/moto_server -H $(MOTO_HOST) -p $(MOTO_PORT) > $(LOCAL)/moto.log 2>&1 & echo $$! > $(LOCAL)/moto.pid; \
	fi
	for _ in $$(seq 100); do curl -fs -o /dev/null $(ENDPOINT)/moto-api/ && break; sleep 0.2; done
	curl -fs -X POST $(ENDPOINT)/moto-api/reset > /dev/null
	rm -f $(LOCAL)/pipeline-state.json
	$(PROMOTE) local provision --endpoint $(ENDPOINT) > $(LOCAL)/env
	@echo "local AWS up on $(ENDPOINT); environment in $(LOCAL)/env (source it to use the promote CLI)"

local-down:
	if [ -f $(LOCAL)/moto.pid ]; then kill $$(cat $(LOCAL)/moto.pid) 2>/dev/null || true; rm -f $(LOCAL)/moto.pid; fi

CENTRAL_CHURN := arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/1
CENTRAL_FRAUD := arn:aws:sagemaker:us-east-1:222222222222:model-package/fraud-detection-111111111111/1

# The two stories, told by the CLI's own lines (logs stay on stderr, at WARN).
demo:
	@$(MAKE) --no-print-directory -s local-up
	@source $(LOCAL)/env; \
	step() { printf '\n-- %s\n' "$$*"; }; \
	printf '\n==== 1. churn-prediction: approved in dev, promoted, tested, approved by governance, in prod ====\n'; \
	step "a lead data scientist approves churn-prediction v1 in the dev account (111111111111)"; \
	$(PROMOTE) local decide --out $(LOCAL)/approval-event.json --call-out $(LOCAL)/approval-call.json; \
	step "EventBridge forwards the approval to promote-model in the central account (222222222222)"; \
	$(PROMOTE) invoke promote-model --event $(LOCAL)/approval-event.json; \
	step "the same rule forwards CloudTrail's record of the approval: promote-model records who approved"; \
	$(PROMOTE) invoke promote-model --event $(LOCAL)/approval-call.json; \
	step "EventBridge delivers the same event again: nothing is duplicated"; \
	$(PROMOTE) invoke promote-model --event $(LOCAL)/approval-event.json; \
	step "the test endpoint will answer the test cases well"; \
	$(PROMOTE) local replies --account $$TEST_ACCOUNT_ID 0.83 0.12; \
	step "an ML engineer approves the central version; the pipeline deploys to test (333333333333) and tests it;"; \
	printf '   a governance officer approves; the pipeline deploys to prod (444444444444)\n'; \
	$(PROMOTE) local pipeline --package $(CENTRAL_CHURN) --approve --comment "risk review passed"; \
	step "promote history churn-prediction-111111111111"; \
	$(PROMOTE) history churn-prediction-111111111111; \
	printf '\n==== 2. fraud-detection: its tests fail, the test endpoint is rolled back, the version rejected ====\n'; \
	step "approved in dev and promoted"; \
	$(PROMOTE) local decide --package $$DEV_SECOND_MODEL_PACKAGE_ARN --out $(LOCAL)/approval-event-2.json --call-out $(LOCAL)/approval-call-2.json; \
	$(PROMOTE) invoke promote-model --event $(LOCAL)/approval-event-2.json; \
	$(PROMOTE) invoke promote-model --event $(LOCAL)/approval-call-2.json; \
	step "the test endpoint will answer with errors"; \
	$(PROMOTE) local replies --account $$TEST_ACCOUNT_ID "error: model not loaded" "error: model not loaded"; \
	step "an ML engineer approves the central version; the pipeline deploys to test and tests it"; \
	if $(PROMOTE) local pipeline --package $(CENTRAL_FRAUD); then echo "expected the tests to fail"; exit 1; fi; \
	step "promote history fraud-detection-111111111111"; \
	$(PROMOTE) history fraud-detection-111111111111; \
	step "promote status: what runs where now, read from the registries and the endpoints"; \
	$(PROMOTE) status

test:
	$(MAKE) --no-print-directory venv & venv=$$!; $(CARGO) test --workspace --no-run; wait $$venv
	MOTO_SERVER=$(MOTO_SERVER) $(CARGO) test --workspace --no-fail-fast
	$(MAKE) --no-print-directory -f infra/Makefile.mk lint

# The fast tier: promotion-core depends on no AWS SDK crate, so this compiles in seconds.
test-unit:
	$(CARGO) test -p promotion-core --features fakes

RUST_TOOLS := $(LOCAL)/tools
MACHETE_VERSION := 0.9.2
$(RUST_TOOLS)/bin/cargo-machete:
	$(CARGO) install --quiet --locked --root $(RUST_TOOLS) cargo-machete@$(MACHETE_VERSION)

rust-lint-tools: $(RUST_TOOLS)/bin/cargo-machete

lint-rust: rust-lint-tools
	@echo "== rustfmt"
	$(CARGO) fmt --all --check
	@echo "== clippy, warnings denied"
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings
	@echo "== unused dependencies"
	$(RUST_TOOLS)/bin/cargo-machete
	@echo "== one feature set for tests and binaries: no crate built otherwise by make demo than by make test"
	mkdir -p $(LOCAL)
	$(CARGO) tree -p promote-cli -p promotion-tests -e normal,build -f '{p} [{f}]' --prefix none | grep -v '(\*)' | sort -u > $(LOCAL)/features-build.txt
	$(CARGO) tree --workspace -e normal,build,dev -f '{p} [{f}]' --prefix none | grep -v '(\*)' | sort -u > $(LOCAL)/features-test.txt
	if comm -23 $(LOCAL)/features-build.txt $(LOCAL)/features-test.txt | grep .; then \
	  echo "the crates above are built with other features by make demo than by make test"; exit 1; fi

lint: lint-rust

-include infra/Makefile.mk
include bench/Makefile.mk
