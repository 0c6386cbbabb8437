"""devstack.gobuild: the go.mod reading behind every cached production binary, and the cache itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack import gobuild
from devstack.tools import HELM, TEMPORAL

GO_MOD = """module example.com/tool

go 1.26.10

require (
\tk8s.io/client-go v0.37.2
\tgithub.com/foo/bar v1.4.0 // indirect
)

require example.com/single v2.0.1

replace example.com/tool/api => ./api

replace (
\tgithub.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.2 // pinned
\texample.com/tool/sub => ../sub
)
"""


def test_go_mod_facts() -> None:
    assert gobuild.go_directive(GO_MOD) == "1.26.10"
    assert gobuild.required_versions(GO_MOD) == {
        "k8s.io/client-go": "v0.37.2",
        "github.com/foo/bar": "v1.4.0",
        "example.com/single": "v2.0.1",
    }
    assert gobuild.non_local_replacements(GO_MOD) == [
        "github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.2"
    ]


def test_wrapper_module_requires_the_tool_and_keeps_only_remote_replacements() -> None:
    tool = gobuild.GoTool(
        name="x", module="example.com/tool", version="v1.2.3", binaries={"x": "example.com/tool"}
    )
    wrapper = gobuild.wrapper_go_mod(tool, GO_MOD)
    assert "module backout.local/x-build" in wrapper
    assert "go 1.26.10" in wrapper and "require example.com/tool v1.2.3" in wrapper
    assert "go-digest v1.0.1-0.2" in wrapper
    assert "./api" not in wrapper and "../sub" not in wrapper


def test_helm_is_stamped_with_its_version_and_its_client_go_kubernetes_minor() -> None:
    flags = gobuild.render_ldflags(HELM, GO_MOD)
    assert "internal/version.version=v3.22.0" in flags
    assert "chartutil.k8sVersionMinor=37" in flags and "rules.k8sVersionMinor=37" in flags
    with pytest.raises(gobuild.GoBuildError, match=r"k8s\.io/client-go"):
        gobuild.render_ldflags(HELM, "module m\n\ngo 1.26\n")


def test_a_module_newer_than_the_toolchain_is_refused_before_building(tmp_path: Path) -> None:
    tool = TEMPORAL.model_copy(update={"toolchain": None})
    with pytest.raises(gobuild.GoBuildError, match=r"needs go 1\.99\.1 .*GOTOOLCHAIN"):
        gobuild._check_toolchain(tool, "go", "module m\n\ngo 1.99.1\n", gobuild._go_env(tool), tmp_path)


def test_the_cache_is_keyed_by_tool_and_version_and_a_missing_file_means_not_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKOUT_CACHE_DIR", str(tmp_path / "cache" / "cluster"))
    assert gobuild.tool_dir(TEMPORAL) == tmp_path / "cache" / "temporal" / "v1.32.2"
    assert gobuild.read_build(TEMPORAL) is None
    with pytest.raises(gobuild.GoBuildError, match="backout cluster build --with temporal"):
        gobuild.binary(TEMPORAL, "temporal-server")
    directory = gobuild.tool_dir(TEMPORAL)
    (directory / "bin").mkdir(parents=True)
    binaries = {name: str(directory / "bin" / name) for name in TEMPORAL.binaries}
    for path in binaries.values():
        Path(path).write_text("#!/bin/sh\n", encoding="utf-8")
    schema = directory / "module" / "schema" / "postgresql" / "v12"
    schema.mkdir(parents=True)
    info = gobuild.ToolBuild(
        name=TEMPORAL.name, module=TEMPORAL.module, version=TEMPORAL.version, go_version="go1.27.3",
        binaries=binaries, module_files={"schema/postgresql/v12": str(schema)},
        built_at=datetime.now(UTC), seconds=1.0,
    )  # fmt: skip
    (directory / "build-info.json").write_text(json.dumps(info.model_dump(mode="json")), encoding="utf-8")
    assert gobuild.binary(TEMPORAL, "temporal-sql-tool") == directory / "bin" / "temporal-sql-tool"
    assert gobuild.module_file(TEMPORAL, "schema/postgresql/v12") == schema
    Path(binaries["temporal-server"]).unlink()
    assert gobuild.read_build(TEMPORAL) is None
