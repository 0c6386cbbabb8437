# backout: `make demo` runs a whole incident end to end; `make test` runs the full suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BACKOUT := $(VENV)/bin/backout
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml devstack/pyproject.toml devstack/setup.py | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help venv dev deps system-deps cluster-binaries lint typecheck pytest test demo clean

help:
	@echo "make demo   - run a whole incident end to end on embedded defaults"
	@echo "make test   - ruff, mypy and the full pytest suite (real Temporal, Kubernetes, Prometheus)"

# The product (backout) and the development harness (devstack/, a separate distribution).
$(STAMP): pyproject.toml devstack/pyproject.toml devstack/setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e ./devstack
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

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy config incidents workflows activities runbooks evals api worker attribution devstack

pytest: deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

demo: deps
	$(BACKOUT) demo

clean:
	rm -rf .backout .pytest_cache .mypy_cache .ruff_cache
