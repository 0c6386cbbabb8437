# backout: `make demo` runs a whole incident end to end; `make test` runs the full suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BACKOUT := $(VENV)/bin/backout
LOCK := requirements.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml devstack/pyproject.toml devstack/setup.py $(LOCK) | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help venv dev deps system-deps cluster-binaries lint typecheck audit lock pytest test demo clean

help:
	@echo "make demo   - run a whole incident end to end on embedded defaults"
	@echo "make test   - ruff, mypy and the full pytest suite (real Temporal, Kubernetes, Prometheus)"

# Every dependency exactly as pinned, with its hashes, in requirements.lock (`make lock` writes it
# from pyproject.toml and devstack/pyproject.toml); then the product (backout) and the development
# harness (devstack/, a separate distribution) themselves, without resolving anything again.
$(STAMP): pyproject.toml devstack/pyproject.toml devstack/setup.py $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . -e ./devstack
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

dev: venv

system-deps:
	@bash scripts/install-system-deps.sh

# Production parts the tests run, built from Go modules into ~/.cache/backout (once per version).
GO_TOOLS ?= helm,temporal,flux-source-controller,flux-kustomize-controller,argocd

cluster-binaries: venv
	$(BACKOUT) cluster build --with $(GO_TOOLS)

deps: venv system-deps cluster-binaries

# Re-pin every dependency (after a change of pyproject.toml floors, or to take fixed releases).
# requirements-product.lock: the product alone, for the container image (Dockerfile).
lock: venv
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra dev \
		--no-emit-find-links --no-emit-index-url -o $(LOCK) pyproject.toml devstack/pyproject.toml
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-find-links --no-emit-index-url -o requirements-product.lock pyproject.toml

# The pinned releases against the Python advisory database (scripts/audit_lock.py says what it
# could not check; BACKOUT_AUDIT_REQUIRED=1 makes that an error).
audit: venv
	$(PY) scripts/audit_lock.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy config incidents workflows activities runbooks evals api worker attribution devstack tests

pytest: deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck audit pytest

demo: deps
	$(BACKOUT) demo

clean:
	rm -rf .backout .pytest_cache .mypy_cache .ruff_cache
