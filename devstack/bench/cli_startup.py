"""`backout bench cli`: how long the `backout` command takes, as a whole process, and how much memory.

Each command runs `runs` times as its own process (the console script, as a user types it);
wall time is taken around the process and peak RSS from the kernel's accounting of that child
(wait4). Commands are interleaved run by run, so a burst of load on the shared machine hits
all of them alike, and the floor (`python -c pass`, same interpreter) is measured in the same
rounds: the figures are medians, with their ratio to the floor's median.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

HELP_LIMIT_S = 0.3
HELP_LIMIT_MIB = 60.0
ATTRIBUTE_LIMIT_S = 1.0
BUNDLE_CHANGES = 50


class Probe(BaseModel):
    """One command to time, and the limits its median must meet (None: reported only)."""

    name: str
    argv: list[str]
    limit_s: float | None = None
    limit_mib: float | None = None


class Timing(BaseModel):
    name: str
    argv: list[str]
    runs: int
    median_s: float
    min_s: float
    max_s: float
    median_cpu_s: float  # user + system: what the command costs, less the wait for a busy CPU
    median_peak_rss_mib: float
    ratio_to_floor: float | None = None
    limit_s: float | None = None
    limit_mib: float | None = None
    ok: bool = True
    exit_codes: list[int]


class CliBenchResult(BaseModel):
    bench: str = "cli"
    runs: int
    floor: Timing
    commands: list[Timing]
    ranking_in_process_ms: float | None = None
    machine: dict[str, str | int | float]
    ok: bool
    problems: list[str]


def backout_executable() -> str:
    """The `backout` console script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("backout")
    return str(beside) if beside.exists() else "backout"


# Runs one command and reports it. A small process of its own, because a child's peak RSS counts
# the memory of the process it was forked from until it execs: from this bench (numpy, the model
# loaded) every command would look as large as the bench.
_RUNNER = """
import json, os, subprocess, sys, time
with open(os.devnull, "wb") as sink:
    started = time.perf_counter()
    process = subprocess.Popen(sys.argv[1:], stdout=sink, stderr=sink, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps([wall, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status), cpu]))
"""


def _run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, float]:
    """Wall seconds, peak RSS (MiB; ru_maxrss is KiB on Linux), exit code and CPU seconds (user +
    system) of one run of `argv`."""
    answer = subprocess.run(
        [sys.executable, "-S", "-c", _RUNNER, *argv], capture_output=True, text=True, env=env, check=True
    )
    wall, rss, code, cpu = json.loads(answer.stdout)
    return float(wall), float(rss), int(code), float(cpu)


def _timing(probe: Probe, samples: list[tuple[float, float, int, float]], floor_s: float | None) -> Timing:
    walls = [sample[0] for sample in samples]
    rss = [sample[1] for sample in samples]
    codes = [sample[2] for sample in samples]
    cpu = [sample[3] for sample in samples]
    median = statistics.median(walls)
    median_rss = statistics.median(rss)
    ok = all(code == 0 for code in codes)
    if probe.limit_s is not None:
        ok = ok and median < probe.limit_s
    if probe.limit_mib is not None:
        ok = ok and median_rss < probe.limit_mib
    return Timing(
        name=probe.name,
        argv=probe.argv,
        runs=len(samples),
        median_s=round(median, 4),
        min_s=round(min(walls), 4),
        max_s=round(max(walls), 4),
        median_cpu_s=round(statistics.median(cpu), 4),
        median_peak_rss_mib=round(median_rss, 1),
        ratio_to_floor=round(median / floor_s, 1) if floor_s else None,
        limit_s=probe.limit_s,
        limit_mib=probe.limit_mib,
        ok=ok,
        exit_codes=sorted(set(codes)),
    )


def help_probes(executable: str) -> list[Probe]:
    """`backout --help` and `backout <command> --help` for every top-level command, the harness's
    own groups (`cluster`, `temporal`, ...) included: the same limits hold for all."""
    from worker.cli import COMMANDS, HARNESS_COMMANDS

    return [
        Probe(name=name, argv=[executable, *name.split()], limit_s=HELP_LIMIT_S, limit_mib=HELP_LIMIT_MIB)
        for name in ["--help", *(f"{command} --help" for command in [*COMMANDS, *HARNESS_COMMANDS])]
    ]


def write_bundle(path: Path, changes: int = BUNDLE_CHANGES) -> None:
    """A large incident bundle (spec v1): `changes` candidate changes, 200 series over two hours."""
    from attribution.bench import latency_case
    from attribution.case import case_to_bundle_dict

    path.write_text(json.dumps(case_to_bundle_dict(latency_case(0, changes=changes))), encoding="utf-8")


def ranking_ms(bundle: Path, runs: int) -> float:
    """The ranking alone, in this process (imports warm): median milliseconds of `runs`."""
    from attribution.model import load_model
    from incidents.bundle import load_bundle

    model = load_model()
    loaded = load_bundle(bundle)
    model.attribute(loaded)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        model.attribute(loaded)
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 1)


def run_cli_bench(runs: int, only: list[str] | None = None, with_attribute: bool = True) -> CliBenchResult:
    executable = backout_executable()
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    floor = Probe(name="python -c pass", argv=[sys.executable, "-c", "pass"])
    probes = help_probes(executable)
    if only:
        probes = [probe for probe in probes if probe.name in only or probe.name.split(" ")[0] in only]
    problems: list[str] = []
    ranking: float | None = None
    with tempfile.TemporaryDirectory(prefix="backout-bench-cli-") as work:
        if with_attribute:
            bundle = Path(work) / "bundle-50-changes.json"
            write_bundle(bundle)
            probes.append(
                Probe(
                    name=f"attribute --input <{BUNDLE_CHANGES}-change bundle>",
                    argv=[executable, "attribute", "--input", str(bundle)],
                    limit_s=ATTRIBUTE_LIMIT_S,
                )
            )
            try:
                ranking = ranking_ms(bundle, runs)
            except Exception as exc:  # the model may be mid-retraining; the process timings still count
                problems.append(f"ranking in process: {type(exc).__name__}: {exc}")
        samples: dict[str, list[tuple[float, float, int, float]]] = {
            probe.name: [] for probe in [floor, *probes]
        }
        for probe in [floor, *probes]:  # one warm-up each: the page cache, .pyc files
            _run_once(probe.argv, env)
        for _ in range(runs):
            for probe in [floor, *probes]:
                samples[probe.name].append(_run_once(probe.argv, env))
    floor_timing = _timing(floor, samples[floor.name], None)
    timings = [_timing(probe, samples[probe.name], floor_timing.median_s) for probe in probes]
    for timing in timings:
        if timing.ok:
            continue
        if timing.exit_codes != [0]:
            problems.append(f"{timing.name}: exit codes {timing.exit_codes}")
        if timing.limit_s is not None and timing.median_s >= timing.limit_s:
            problems.append(f"{timing.name}: median {timing.median_s} s >= {timing.limit_s} s")
        if timing.limit_mib is not None and timing.median_peak_rss_mib >= timing.limit_mib:
            problems.append(
                f"{timing.name}: median peak RSS {timing.median_peak_rss_mib} MiB >= {timing.limit_mib}"
            )
    return CliBenchResult(
        runs=runs,
        floor=floor_timing,
        commands=timings,
        ranking_in_process_ms=ranking,
        machine={
            "python": platform.python_version(),
            "cpus": os.cpu_count() or 0,
            "load_1m": round(os.getloadavg()[0], 2),
            "platform": platform.platform(terse=True),
        },
        ok=not problems,
        problems=problems,
    )
