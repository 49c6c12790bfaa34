# make bench: the figures of docs/benchmarks.md (never timed tests). Included from the top Makefile.
# Needs the virtualenv with moto (the bench starts its own moto server on a free loopback port).

BENCH_REPORT ?= docs/benchmarks.md
BENCH_FUNCTIONS := promote-model start-deployment deploy-model test-model record-outcome
BENCH_TARGET_DIR = $${CARGO_TARGET_DIR:-target}
# Extra arguments for the report binary, e.g. BENCH_ARGS="--copy-mib 256 --burst 100 --runs 3".
BENCH_ARGS ?=

.PHONY: bench
bench: venv
	$(CARGO) build --release $(addprefix -p ,$(BENCH_FUNCTIONS))
	rm -rf $(BENCH_TARGET_DIR)/criterion/parse
	$(CARGO) bench --profile release -p promotion-bench --bench parse -- --noplot
	MOTO_SERVER=$(MOTO_SERVER) $(CARGO) run --release -p promotion-bench -- \
	  --out $(BENCH_REPORT) \
	  --bin-dir $(BENCH_TARGET_DIR)/release \
	  --criterion-dir $(BENCH_TARGET_DIR)/criterion \
	  --command "make bench$(if $(BENCH_ARGS), BENCH_ARGS=\"$(BENCH_ARGS)\")" \
	  $(BENCH_ARGS)
