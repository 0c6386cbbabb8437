"""The GitOps reconcilers backout tests against, built from Go modules by devstack.gobuild:
Flux's source-controller and kustomize-controller, and Argo CD.

`go install github.com/fluxcd/<controller>@vX` is refused because each controller's
go.mod replaces its `./api` submodule with a local path, so they build through a wrapper
module. The CRDs ship in the same module (`config/crd/bases`) and are cached next to the
binary.

Versions: the v1.10 line (go 1.27.0, built with GOTOOLCHAIN=go1.27.3) cannot be built from
the module proxy this project uses: it serves the controllers' v1.10 zips but answers 403
for modules they require (fluxcd/pkg/spiffe v0.2.0, which v1.10 introduced and of which no
version is served, fluxcd/pkg/masktoken v0.10.0, apis/crypto v0.5.0, http/fetch v0.30.x,
artifact v0.27.x, cosign v3.1.4). The newest releases whose whole requirement list is
served are source-controller v1.9.3 (v1.9.4+ need fluxcd/pkg/artifact v0.18.2+) and
kustomize-controller v1.9.6; both say `go 1.26.0`, so the machine's Go builds them.
"""

from __future__ import annotations

from pathlib import Path

from devstack import gobuild

CRD_FOLDER = "config/crd/bases"


def _flux_controller(name: str, version: str) -> gobuild.GoTool:
    return gobuild.GoTool(
        name=f"flux-{name}",
        module=f"github.com/fluxcd/{name}",
        version=version,
        binaries={name: f"github.com/fluxcd/{name}"},
        module_files=[CRD_FOLDER],
        wrapper=True,
    )


SOURCE_CONTROLLER = _flux_controller("source-controller", "v1.9.3")
KUSTOMIZE_CONTROLLER = _flux_controller("kustomize-controller", "v1.9.6")
FLUX_TOOLS: tuple[gobuild.GoTool, ...] = (SOURCE_CONTROLLER, KUSTOMIZE_CONTROLLER)


def build_flux(progress: gobuild.Progress | None = None) -> list[gobuild.ToolBuild]:
    """Build (or reuse) every Flux controller backout runs; instant when the cache is warm."""
    if progress is None:
        return [gobuild.build(tool) for tool in FLUX_TOOLS]
    return [gobuild.build(tool, progress) for tool in FLUX_TOOLS]


def controller_binary(tool: gobuild.GoTool) -> Path:
    return gobuild.binary(tool, next(iter(tool.binaries)))


def controller_crds(tool: gobuild.GoTool) -> list[Path]:
    return sorted(gobuild.module_file(tool, CRD_FOLDER).glob("*.yaml"))


def main() -> None:
    for built in build_flux():
        print(f"{built.name} {built.version}: {built.seconds:.0f}s with {built.go_version}: {built.binaries}")


if __name__ == "__main__":
    main()


# Argo CD ships every component in one binary (`./cmd`), which picks its role from the name it
# runs under (or ARGOCD_BINARY_NAME). Its go.mod replaces gitops-engine with a local path; the
# wrapper module drops that line and uses the gitops-engine release of the same version.
ARGOCD = gobuild.GoTool(
    name="argocd",
    module="github.com/argoproj/argo-cd/v3",
    version="v3.6.1",
    binaries={"argocd": "github.com/argoproj/argo-cd/v3/cmd"},
    toolchain="go1.27.3",
    wrapper=True,
    ldflags="-s -w -X github.com/argoproj/argo-cd/v3/common.version=3.6.1",
    # The repo-server runs these by name (its image puts them in /usr/local/bin).
    module_files=["hack/git-verify-wrapper.sh", "hack/gpg-wrapper.sh"],
)
