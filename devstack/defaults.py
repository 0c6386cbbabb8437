"""Defaults the harness's commands show in their help, importable without the code behind them:
`backout cluster --help` and `backout temporal --help` load typer and this module alone."""

from __future__ import annotations

from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"
CLUSTER_STATE_DIR = Path(".backout/cluster")
TEMPORAL_SQL_STATE_DIR = Path(".backout/temporal-sql")
# The production parts `backout cluster build --with` knows (devstack/tools.py builds them; a
# test checks the two agree).
GO_TOOL_NAMES = ("helm", "temporal", "flux-source-controller", "flux-kustomize-controller", "argocd")
