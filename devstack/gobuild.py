"""Build binaries from Go modules once into `~/.cache/backout/<tool>/<version>/`, then reuse them.

One helper for every production part backout runs from Go sources (helm, the Temporal
server and its SQL tool, Flux controllers): the cache is keyed by tool and version, shared
by every clone on the machine, guarded by a file lock so two test sessions on a cold
machine build once, and never inside the repository.

Two ways to build, chosen by the module:
- `go install <package>@<version>`, when the module's go.mod has no local `replace`;
- a wrapper module of our own (`wrapper=True`) for modules whose go.mod replaces
  submodules with local paths, which `go install` refuses: it requires the module, copies
  the module's non-local replace lines, and builds the packages with `go build`.

A module whose go.mod says a newer `go` than the machine's needs a newer toolchain: the
tool names it (`toolchain="go1.27.3"`) and the go command fetches it once from the module
proxy (`GOTOOLCHAIN`). Files a tool needs at run time that ship inside the module (SQL
schemas, CRDs) are copied next to the binaries (`module_files`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from devstack.cluster import build as cluster_build

BUILD_PARALLELISM_ENV = "BACKOUT_GO_BUILD_PARALLELISM"
DEFAULT_LDFLAGS = "-s -w"

Progress = Callable[[str], None]


class GoBuildError(RuntimeError):
    """Go is missing, a module cannot be fetched or a build failed; the message says which."""


class GoTool(BaseModel):
    """A tool built from one Go module at one version."""

    name: str = Field(description="cache folder name, e.g. 'helm'")
    module: str
    version: str
    binaries: dict[str, str] = Field(description="binary name -> package path inside the module")
    toolchain: str | None = Field(
        default=None, description="GOTOOLCHAIN for modules that need a newer Go than the machine's"
    )
    module_files: list[str] = Field(
        default_factory=list, description="paths inside the module copied next to the binaries"
    )
    wrapper: bool = False
    ldflags: str = Field(
        default=DEFAULT_LDFLAGS,
        description="`{version}` is the tool's version; `{minor[<module>]}` the minor version the "
        "tool's go.mod requires of <module> (helm stamps its Kubernetes version so)",
    )


class ToolBuild(BaseModel):
    """A cached build: where its binaries and module files are, and how it was made."""

    name: str
    module: str
    version: str
    go_version: str
    binaries: dict[str, str]
    module_files: dict[str, str]
    built_at: datetime
    seconds: float


def cache_root() -> Path:
    """The folder holding every backout build cache (`~/.cache/backout`); the control plane
    lives in its `cluster/` (where BACKOUT_CACHE_DIR points), so tools sit beside it."""
    return cluster_build.cache_root().parent


def tool_dir(tool: GoTool) -> Path:
    return cache_root() / tool.name / tool.version


def _info_file(tool: GoTool) -> Path:
    return tool_dir(tool) / "build-info.json"


def read_build(tool: GoTool) -> ToolBuild | None:
    """The cached build of `tool`, or None when any of its files is missing."""
    info = _info_file(tool)
    if not info.exists():
        return None
    try:
        built = ToolBuild.model_validate_json(info.read_text(encoding="utf-8"))
    except ValueError:
        return None
    paths = [*built.binaries.values(), *built.module_files.values()]
    if set(built.binaries) != set(tool.binaries) or not all(Path(path).exists() for path in paths):
        return None
    return built


def _built(tool: GoTool) -> ToolBuild:
    built = read_build(tool)
    if built is None:
        raise GoBuildError(
            f"{tool.name} {tool.version} is not built: run `backout cluster build --with {tool.name}`"
        )
    return built


def binary(tool: GoTool, name: str) -> Path:
    """Path of one binary of a built tool; raises GoBuildError naming the build command if absent."""
    return Path(_built(tool).binaries[name])


def module_file(tool: GoTool, relative: str) -> Path:
    """A file or folder the tool's module ships (`GoTool.module_files`), copied beside its binaries."""
    return Path(_built(tool).module_files[relative])


def build(tool: GoTool, progress: Progress = cluster_build._print_progress) -> ToolBuild:
    """Build (or reuse) `tool`; instant when the cache is warm."""
    if not re.fullmatch(r"v\d+\.\d+\.\d+(-[\w.]+)?", tool.version):
        raise GoBuildError(f"{tool.name}: version {tool.version!r} must look like v1.2.3")
    cached = read_build(tool)
    if cached is not None:
        return cached
    directory = tool_dir(tool)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = read_build(tool)
        if cached is not None:
            return cached
        return _build_locked(tool, directory, progress)


def _go_env(tool: GoTool, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = tool.toolchain or "local"
    env.setdefault("GOFLAGS", "-buildvcs=false")
    env["CGO_ENABLED"] = "0"
    env.update(extra or {})
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    completed = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise GoBuildError(
            f"{' '.join(args)} failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}"
        )
    return completed.stdout


def go_directive(go_mod: str) -> str:
    match = re.search(r"^go\s+(\S+)", go_mod, re.MULTILINE)
    return match.group(1) if match else "1.21"


def required_versions(go_mod: str) -> dict[str, str]:
    """Every `module vX.Y.Z` a go.mod requires (single lines and blocks)."""
    found: dict[str, str] = {}
    for match in re.finditer(
        r"^\s*(?:require\s+)?([\w.\-/~]+\.[\w.\-/~]+)\s+(v\d+\.\d+\.\d+\S*)", go_mod, re.MULTILINE
    ):
        found.setdefault(match.group(1), match.group(2))
    return found


def render_ldflags(tool: GoTool, module_go_mod: str) -> str:
    minors = {module: version.split(".")[1] for module, version in required_versions(module_go_mod).items()}
    try:
        return tool.ldflags.format(version=tool.version, minor=minors)
    except (KeyError, IndexError) as exc:
        raise GoBuildError(
            f"{tool.name}: ldflags name {exc} which {tool.module}'s go.mod does not require"
        ) from exc


def _version_key(text: str) -> tuple[int, ...]:
    """`go1.26.10` / `1.26.10` -> (1, 26, 10), for comparing a go directive with a toolchain."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def non_local_replacements(go_mod: str) -> list[str]:
    """A go.mod's `old => new version` replacements (single or in a block), without local paths."""
    found: list[str] = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
                continue
            body = line
        elif line.startswith("replace ("):
            in_block = True
            continue
        elif line.startswith("replace "):
            body = line.removeprefix("replace ").strip()
        else:
            continue
        if "=>" in body and not body.split("=>", 1)[1].strip().startswith((".", "/")):
            found.append(body)
    return found


def wrapper_go_mod(tool: GoTool, module_go_mod: str) -> str:
    lines = [
        f"module backout.local/{tool.name}-build",
        "",
        f"go {go_directive(module_go_mod)}",
        "",
        f"require {tool.module} {tool.version}",
        "",
    ]
    replacements = non_local_replacements(module_go_mod)
    if replacements:
        lines += ["replace (", *[f"\t{line}" for line in replacements], ")", ""]
    return "\n".join(lines)


def _check_toolchain(tool: GoTool, go: str, module_go_mod: str, env: dict[str, str], cwd: Path) -> str:
    """The Go version the build will use; refuses early when the module needs a newer one."""
    go_version = _run([go, "env", "GOVERSION"], cwd=cwd, env=env).strip()
    needed = go_directive(module_go_mod)
    if _version_key(go_version) < _version_key(needed):
        raise GoBuildError(
            f"{tool.module}@{tool.version} needs go {needed} but the build would use {go_version}: "
            "give the tool a toolchain (GOTOOLCHAIN) the module proxy serves, or pick an older release"
        )
    return go_version


def _build_locked(tool: GoTool, directory: Path, progress: Progress) -> ToolBuild:
    started = time.monotonic()
    go = cluster_build._go_binary(progress)
    env = _go_env(tool)
    src = directory / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    download = json.loads(_run([go, "mod", "download", "-json", f"{tool.module}@{tool.version}"], src, env))
    if download.get("Error"):
        raise GoBuildError(f"cannot download {tool.module}@{tool.version}: {download['Error']}")
    module_dir = Path(download["Dir"])
    module_go_mod = Path(download["GoMod"]).read_text(encoding="utf-8")
    go_version = _check_toolchain(tool, go, module_go_mod, env, src)
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    parallelism = os.environ.get(BUILD_PARALLELISM_ENV, "2")
    progress(f"building {tool.module}@{tool.version} with {go_version} into {directory} (minutes on 2 cores)")
    flags = ["-p", parallelism, "-trimpath", "-ldflags", render_ldflags(tool, module_go_mod)]
    if tool.wrapper:
        (src / "go.mod").write_text(wrapper_go_mod(tool, module_go_mod), encoding="utf-8")
        # A build-tagged import keeps the packages in the module graph for `go mod tidy`.
        imports = "\n".join(f'import _ "{package}"' for package in tool.binaries.values())
        (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\n{imports}\n", encoding="utf-8")
        _run([go, "mod", "tidy"], src, env)
        for name, package in tool.binaries.items():
            partial = bin_dir / f".{name}.partial"
            _run(["nice", "-n", "10", go, "build", *flags, "-o", str(partial), package], src, env)
            partial.rename(bin_dir / name)
            progress(f"  {tool.name}: {name} built")
    else:
        gobin = directory / ".gobin"
        shutil.rmtree(gobin, ignore_errors=True)
        packages = [f"{package}@{tool.version}" for package in tool.binaries.values()]
        _run(
            ["nice", "-n", "10", go, "install", *flags, *packages], src, _go_env(tool, {"GOBIN": str(gobin)})
        )
        for name, package in tool.binaries.items():
            (gobin / package.rsplit("/", 1)[-1]).rename(bin_dir / name)
        shutil.rmtree(gobin, ignore_errors=True)
    copied: dict[str, str] = {}
    for relative in tool.module_files:
        source, target = module_dir / relative, directory / "module" / relative
        if not source.exists():
            raise GoBuildError(f"{tool.module}@{tool.version} has no {relative}")
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)
        # The module cache is read-only; the copies need not be.
        for path in [target, *target.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        copied[relative] = str(target)
    shutil.rmtree(src, ignore_errors=True)
    built = ToolBuild(
        name=tool.name,
        module=tool.module,
        version=tool.version,
        go_version=go_version,
        binaries={name: str(bin_dir / name) for name in tool.binaries},
        module_files=copied,
        built_at=datetime.now(UTC),
        seconds=round(time.monotonic() - started, 1),
    )
    _info_file(tool).write_text(built.model_dump_json(indent=2), encoding="utf-8")
    progress(f"  {tool.name} {tool.version}: built in {built.seconds:.0f}s")
    return built
