# Two commands set everything up from the hash-locked files (see README):
#   make run    install the runtime lock into .venv as the image does, and serve on embedded defaults
#   make test   install the dev lock into .venv-dev and run every check and test
PYTHON ?= python3
PIP_FLAGS = --quiet --require-hashes --no-deps --only-binary :all: --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 4000

.PHONY: run test install install-dev lint verify-env ship-checks sbom lock bench clean

# The runtime venv exactly as the image builds it (docker/install.sh): the project in
# site-packages, the locked dependencies in .venv/lib/sealgate-deps (a directory no interpreter
# start processes), no pip or setuptools, every file bound by a signed install manifest. Signed
# with a key made for this install and never written (docs/verify.md: what that does and does
# not protect against). The project is installed from its wheel, not editable: change a source
# file and the next `make run` reinstalls.
SOURCES := $(shell find gateway verify -type f -not -path '*/__pycache__/*' -not -name '*.pyc')
.venv/.installed: requirements.lock requirements-build.lock pyproject.toml docker/install.sh $(SOURCES)
	rm -rf .venv
	SEALGATE_VENV=$(CURDIR)/.venv SEALGATE_SRC=$(CURDIR) PYTHON=$(PYTHON) docker/install.sh
	touch $@

# Made anew whenever a lock changes, so a package a lock no longer names is not left behind
# (verify-env would find it).
.venv-dev/.installed: requirements-dev.lock requirements-build.lock pyproject.toml
	rm -rf .venv-dev
	$(PYTHON) -m venv .venv-dev
	.venv-dev/bin/python -m pip install $(PIP_FLAGS) -r requirements-build.lock
	.venv-dev/bin/python -m pip install $(PIP_FLAGS) -r requirements-dev.lock
	.venv-dev/bin/python -m pip install --quiet --no-deps --no-build-isolation --no-index -e .
	touch $@

install: .venv/.installed
install-dev: .venv-dev/.installed

# Serve on embedded defaults: SQLite under .sealgate/, the bundled config with the local mock model.
# The admin credential is read from .sealgate/admin.key (created here once, mode 0600). The first
# interpreter is the isolated launcher: the start-up check (bound to the install manifest, against
# the runtime lock and ./policies) runs before anything of the venv is imported.
run: install
	@mkdir -p .sealgate && chmod 700 .sealgate
	@[ -s .sealgate/admin.key ] || (umask 077 && .venv/bin/python -I -S -c "import secrets; print('sga-' + secrets.token_urlsafe(32))" > .sealgate/admin.key)
	SEALGATE_ADMIN_KEY_FILE=.sealgate/admin.key SEALGATE_DATA_DIR=.sealgate \
	  SEALGATE_VERIFY_LOCKS=$(CURDIR)/requirements.lock SEALGATE_VERIFY_POLICIES=$(CURDIR)/policies \
	  .venv/bin/python -I -S -B $$(echo .venv/lib/python3*/site-packages/gateway/boot.py) \
	  serve --host $(HOST) --port $(PORT)

lint: install-dev
	.venv-dev/bin/ruff check gateway verify sealgate tests bench
	.venv-dev/bin/ruff format --check gateway verify sealgate tests bench
	.venv-dev/bin/mypy
	.venv-dev/bin/lint-imports --no-cache

# The supply-chain gate: this environment must be exactly the locked one, with no unexpected
# start-up hooks and every installed file matching its RECORD.
verify-env: install-dev
	.venv-dev/bin/python -m verify env --lock requirements-dev.lock --lock requirements-build.lock

# How Sealgate ships: the workflows pass zizmor (offline, with its pedantic persona), the committed
# SBOM is what the runtime lock generates, every policy file validates, and every lock is fresh
# against pyproject.toml.
ship-checks: install-dev
	.venv-dev/bin/sealgate policy check --policies policies
	.venv-dev/bin/zizmor --offline --no-progress --persona pedantic .github
	.venv-dev/bin/python -m verify.sbom generate --check
	UV=.venv-dev/bin/uv scripts/lock --check

test: lint verify-env ship-checks
	.venv-dev/bin/python -m pytest

# Rewrite sbom/sealgate.cdx.json from requirements.lock (after scripts/lock); commit the result.
sbom: install-dev
	.venv-dev/bin/sealgate sbom generate

lock: install-dev
	UV=.venv-dev/bin/uv scripts/lock

bench: install-dev
	.venv-dev/bin/python -m bench

clean:
	rm -rf .venv .venv-dev
