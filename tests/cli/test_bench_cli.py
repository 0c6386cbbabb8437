"""`backout bench cli` runs and reports what it measured (the figures themselves are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from devstack.bench.cli_startup import CliBenchResult

BACKOUT = str(Path(sys.executable).with_name("backout"))


def test_the_bench_times_whole_processes_against_the_floor() -> None:
    answer = subprocess.run(
        [BACKOUT, "bench", "cli", "--runs", "2", "--only", "config", "--no-attribute", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode in (0, 1), answer.stderr  # 1: a limit missed on a loaded machine
    result = CliBenchResult.model_validate(json.loads(answer.stdout))
    assert result.floor.argv[1:] == ["-c", "pass"] and result.floor.runs == 2
    assert [timing.name for timing in result.commands] == ["config --help"]
    timing = result.commands[0]
    assert timing.runs == 2 and timing.exit_codes == [0] and timing.limit_s == 0.3
    assert timing.ratio_to_floor is not None and timing.min_s <= timing.median_s <= timing.max_s
    # Peak RSS is the command's own, not the bench's (which has pydantic and more loaded).
    assert 0 < result.floor.median_peak_rss_mib < timing.median_peak_rss_mib < 200
    assert result.floor.median_peak_rss_mib < 30
