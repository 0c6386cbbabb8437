"""The production parts backout builds from Go modules (see gobuild.py), pinned by version.

The chart's documentation, the compose file and the tests name these same versions.
"""

from __future__ import annotations

from devstack.gitops.build import ARGOCD, FLUX_TOOLS
from devstack.gobuild import GoTool

HELM = GoTool(
    name="helm",
    module="helm.sh/helm/v3",
    version="v3.22.0",
    binaries={"helm": "helm.sh/helm/v3/cmd/helm"},
    # What helm's own Makefile stamps: its version, and the Kubernetes version of its client-go
    # (the default for `helm template` capabilities and lint's deprecation checks; else v1.20).
    ldflags=" ".join(
        [
            "-s -w",
            "-X helm.sh/helm/v3/internal/version.version={version}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
            "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor[k8s.io/client-go]}",
            "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
            "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={minor[k8s.io/client-go]}",
        ]
    ),
)

# v1.32.2's go.mod says `go 1.26.10`, newer than the machine's Go: go1.27.3 is the toolchain the
# module proxy serves for it.
TEMPORAL = GoTool(
    name="temporal",
    module="go.temporal.io/server",
    version="v1.32.2",
    binaries={
        "temporal-server": "go.temporal.io/server/cmd/server",
        "temporal-sql-tool": "go.temporal.io/server/cmd/tools/sql",
    },
    toolchain="go1.27.3",
    module_files=["schema/postgresql/v12"],
)

TOOLS: dict[str, GoTool] = {tool.name: tool for tool in (HELM, TEMPORAL, *FLUX_TOOLS, ARGOCD)}
