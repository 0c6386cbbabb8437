"""`pip install .` installs the product only: the built wheel holds no development harness."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import worker.cli

REPO = Path(__file__).resolve().parents[2]
HARNESS_TOP_LEVEL = {"devstack", "cluster", "simservice", "demo", "tests"}
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*cache", ".backout", "reports"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the product's wheel from a copy of the working tree (devstack/ included) and list it."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=COPY_IGNORE)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(work / "out"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (built_wheel,) = (work / "out").glob("backout-*.whl")
    return built_wheel


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_the_product_packages(wheel_files: list[str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel_files if not name.split("/", 1)[0].endswith(".dist-info")}
    assert {
        "incidents",
        "workflows",
        "activities",
        "runbooks",
        "evals",
        "attribution",
        "api",
        "worker",
    } <= tops
    assert "runbooks/library/llm-quality-rollback.yaml" in wheel_files
    assert "worker/cli/__init__.py" in wheel_files


def test_the_wheel_holds_no_development_harness(wheel_files: list[str]) -> None:
    harness = [name for name in wheel_files if name.split("/", 1)[0] in HARNESS_TOP_LEVEL]
    local_servers = [name for name in wheel_files if "receiver" in name or "/bench/" in name]
    assert harness == [] and local_servers == []


def test_the_wheel_needs_no_harness_dependency(wheel: Path, wheel_files: list[str]) -> None:
    metadata_name = next(name for name in wheel_files if name.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(metadata_name).decode()
        entry_points = next(
            (archive.read(name).decode() for name in wheel_files if name.endswith("entry_points.txt")), ""
        )
    requires = [
        line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]
    assert any(item.startswith("temporalio") for item in requires)
    assert not [item for item in requires if item.startswith(("matplotlib", "cryptography"))]
    assert "backout = worker.cli:main" in entry_points and "backout.commands" not in entry_points


def test_harness_commands_say_how_to_get_the_harness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.cli, "_plugins", dict)
    for argv in (["demo"], ["cluster", "up", "--fresh"], ["bench", "ingest", "--json"]):
        result = CliRunner().invoke(worker.cli.app, argv)
        assert result.exit_code == 2, argv
        assert f"backout {argv[0]} needs the development harness: pip install -e ./devstack" in result.output
