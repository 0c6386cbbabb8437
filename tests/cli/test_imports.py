"""The `backout` command imports its domain only when a command runs.

Each check runs in a fresh interpreter and reads sys.modules afterwards: what `--help` (or the
command) really loaded, not what the source seems to import. Timings are `backout bench cli`'s job.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.defaults import GO_TOOL_NAMES
from devstack.tools import TOOLS
from worker.cli import COMMANDS, HARNESS_COMMANDS

REPO = Path(__file__).resolve().parents[2]
# Never for the CLI's start or help: each costs from a quarter of a second to over a second.
HEAVY = ("sklearn", "kubernetes", "temporalio", "matplotlib")
# Nor, for any command's help, the libraries their domains start with.
DOMAIN = ("numpy", "scipy", "httpx", "pydantic", "yaml", "uvicorn", "fastapi", "rich")
SCENARIO = REPO / "tests/scenarios/attribution/001_recent_unrelated_deploy/bundle.json"

_PROBE = """
import json, sys
out, argv = sys.argv[1], json.loads(sys.argv[2])
if argv is None:
    import worker.cli
    code = 0
else:
    from worker.cli import app
    try:
        app(args=argv, prog_name="backout", standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
with open(out, "w") as file:
    json.dump({"code": code, "modules": sorted(sys.modules)}, file)
"""


def loaded_by(argv: list[str] | None, tmp_path: Path) -> tuple[int, set[str]]:
    """The exit code and the top-level packages loaded by running `backout ARGV` (None: the import alone)."""
    out = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), json.dumps(argv)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    result = json.loads(out.read_text())
    return int(result["code"]), {name.split(".")[0] for name in result["modules"]}


def test_importing_the_cli_loads_no_domain(tmp_path: Path) -> None:
    _, loaded = loaded_by(None, tmp_path)
    assert not loaded & {*HEAVY, *DOMAIN}, sorted(loaded & {*HEAVY, *DOMAIN})


def test_the_probe_sees_what_a_command_loads(tmp_path: Path) -> None:
    """The control: a command that does use the model loads numpy, so an empty answer means something."""
    code, loaded = loaded_by(["attribute", "--input", str(SCENARIO), "--json"], tmp_path)
    assert code == 0
    assert "numpy" in loaded and "attribution" in loaded


@pytest.mark.parametrize(
    "command", [None, *COMMANDS, *HARNESS_COMMANDS], ids=lambda c: f"{c or 'backout'} --help"
)
def test_help_loads_no_heavy_library(command: str | None, tmp_path: Path) -> None:
    code, loaded = loaded_by([command, "--help"] if command else ["--help"], tmp_path)
    assert code == 0
    assert not loaded & {*HEAVY, *DOMAIN}, sorted(loaded & {*HEAVY, *DOMAIN})


def test_attributing_a_bundle_loads_no_heavy_library(tmp_path: Path) -> None:
    code, loaded = loaded_by(["attribute", "--input", str(SCENARIO)], tmp_path)
    assert code == 0
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_harness_help_names_the_tools_cluster_build_knows() -> None:
    """`backout cluster build --help` lists devstack/defaults.py's names without loading the tools."""
    assert tuple(TOOLS) == GO_TOOL_NAMES
