# Infrastructure: offline checks of the templates, the Lambda build, the deployments.
# Included by the top Makefile; works alone too:  make -f infra/Makefile.mk lint
# Step-by-step installation into an organization: docs/deploy.md.

PYTHON ?= python3
VENV ?= .venv
CARGO ?= cargo
# The SAM CLI pins click and boto3 differently from the local emulator: a virtualenv of its own.
SAM_VENV ?= .venv-sam
# Copy infra/samconfig.toml.example there and fill in the accounts (docs/deploy.md).
SAMCONFIG ?= infra/samconfig.toml
STAGE ?=

INFRA_TEMPLATES := infra/central-account.yaml infra/dev-account.yaml infra/target-account.yaml infra/guardrails.yaml
INFRA_FUNCTIONS := promote-model start-deployment deploy-model test-model record-outcome
INFRA_PY = $(VENV)/bin/python
# sam build runs cargo lambda (and zig) from the project's venv; no telemetry leaves the machine.
SAM = PATH="$(abspath $(VENV))/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
SAM_CONFIG_ARGS = --config-file $(abspath $(SAMCONFIG))

.PHONY: lint build deploy-central deploy-dev deploy-target target-stage samconfig-present

# cfn-lint, aws-sam-translator and pytest, pinned (the top Makefile's venv installs them too).
$(VENV)/.infra-installed: infra/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

# cargo-lambda and zig, from PyPI.
$(VENV)/.build-tools: infra/requirements-build.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-build.txt
	touch $@

$(SAM_VENV)/.installed: infra/requirements-deploy.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-deploy.txt
	touch $@

# Everything offline: no AWS account, no network. No bytecode or pytest cache in the tree.
lint: export PYTHONDONTWRITEBYTECODE = 1
lint: $(VENV)/.infra-installed
	@echo "== cfn-lint: errors, warnings and informational findings all fail (SAM input checked against SAM's schemas)"
	$(VENV)/bin/cfn-lint --include-checks I --non-zero-exit-code informational -- $(INFRA_TEMPLATES)
	@echo "== least-privilege policy check"
	$(INFRA_PY) infra/check_policies.py
	@echo "== SAM transform, offline (cfn-lint runs none; see infra/check_sam_transform.py)"
	$(INFRA_PY) infra/check_sam_transform.py
	@echo "== drift between the templates, the code and the emulator's names"
	$(INFRA_PY) infra/check_drift.py
	@echo "== tests of the checks (pytest: each check catches what it is for, e.g. tests/overbroad.yaml)"
	$(INFRA_PY) -m pytest -c infra/pytest.ini infra/tests

# Every function for Lambda: arm64 binaries in target/lambda/<name>/bootstrap.
# Needs the Rust target aarch64-unknown-linux-gnu (cargo lambda adds it through rustup).
build: $(VENV)/.build-tools
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO) lambda build --release --arm64 $(addprefix --package ,$(INFRA_FUNCTIONS))

target-stage:
	@case "$(STAGE)" in test|prod) ;; *) echo "usage: make deploy-target STAGE=test|prod"; exit 1;; esac

samconfig-present:
	@test -f $(SAMCONFIG) || { echo "$(SAMCONFIG) is missing: cp infra/samconfig.toml.example $(SAMCONFIG) and fill it in (docs/deploy.md)"; exit 1; }

# Central account: sam build (cargo lambda per function), sam deploy, then the pipeline's source object.
deploy-central: lint samconfig-present $(VENV)/.build-tools $(SAM_VENV)/.installed
	$(SAM) build --template-file infra/central-account.yaml --build-dir .aws-sam/central $(SAM_CONFIG_ARGS) --config-env central
	$(SAM) deploy --template-file .aws-sam/central/template.yaml $(SAM_CONFIG_ARGS) --config-env central
	$(SAM_VENV)/bin/python infra/pipeline_source.py $(SAMCONFIG) central

# One dev account with the credentials at hand; every dev account of the organization at
# once is a StackSet (docs/deploy.md).
deploy-dev: lint samconfig-present $(SAM_VENV)/.installed
	$(SAM) deploy --template-file infra/dev-account.yaml $(SAM_CONFIG_ARGS) --config-env dev

# make deploy-target STAGE=test|prod
deploy-target: target-stage lint samconfig-present $(SAM_VENV)/.installed
	$(SAM) deploy --template-file infra/target-account.yaml $(SAM_CONFIG_ARGS) --config-env $(STAGE)
