"""Build the control-plane binaries from Go modules into a cache outside the repository.

kube-apiserver, kube-controller-manager and kube-scheduler come from the
`k8s.io/kubernetes` module through a generated wrapper module (its go.mod replaces the
staging modules with local paths, so `go install` refuses it); KWOK installs directly.
The cache is keyed by version, so a warm machine skips the whole build.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import BaseModel

from devstack.defaults import KUBERNETES_VERSION

KWOK_VERSION = "v0.7.0"
# Debian's etcd 3.4.23 predates progress notifications (3.4.31 / 3.5.13), without which the
# apiserver refuses watch-list streams and KWOK's informers lag by tens of seconds.
ETCD_VERSION = "v3.5.21"
# kubectl is not needed by backout itself, but makes the local cluster usable by hand and in the demo.
KUBE_COMPONENTS: tuple[str, ...] = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
CACHE_DIR_ENV = "BACKOUT_CACHE_DIR"
MINIMUM_GO = (1, 24)
TOOLCHAIN_VERSION = "go1.24.13"
BUILD_PARALLELISM_ENV = "BACKOUT_GO_BUILD_PARALLELISM"

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """The toolchain is missing or a build step failed; the message says which."""


class BuildInfo(BaseModel):
    kubernetes_version: str
    kwok_version: str
    go_version: str
    built_at: datetime
    seconds: float
    binaries: dict[str, str]


def cache_root() -> Path:
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "backout" / "cluster"


def version_dir(version: str = KUBERNETES_VERSION) -> Path:
    return cache_root() / version


def binary_dir(version: str = KUBERNETES_VERSION) -> Path:
    return version_dir(version) / "bin"


def binary_path(name: str, version: str = KUBERNETES_VERSION) -> Path:
    return binary_dir(version) / name


def _print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def go_version_tuple(text: str) -> tuple[int, int]:
    """`go1.26.8` or `go version go1.22.1 linux/amd64` -> (1, 26)."""
    match = re.search(r"go(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _usable_go(candidate: str | None) -> bool:
    if candidate is None:
        return False
    completed = subprocess.run([candidate, "env", "GOVERSION"], capture_output=True, text=True)
    return completed.returncode == 0 and go_version_tuple(completed.stdout) >= MINIMUM_GO


def _go_binary(progress: Progress = _print_progress) -> str:
    """A Go >= 1.24: on PATH, in /usr/local/go, or a toolchain fetched once from the Go module proxy."""
    for candidate in (shutil.which("go"), "/usr/local/go/bin/go", str(_toolchain_dir() / "bin" / "go")):
        if candidate and Path(candidate).exists() and _usable_go(candidate):
            return candidate
    return _fetch_toolchain(progress)


def _toolchain_dir() -> Path:
    return cache_root().parent / "go" / TOOLCHAIN_VERSION


def _fetch_toolchain(progress: Progress) -> str:
    """Go toolchains are published as modules (golang.org/toolchain), so the module proxy serves them."""
    target = _toolchain_dir()
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine(), platform.machine()
    )
    module_version = f"v0.0.1-{TOOLCHAIN_VERSION}.{platform.system().lower()}-{machine}"
    proxy = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0].rstrip("/")
    if proxy in ("direct", "off"):
        proxy = "https://proxy.golang.org"
    url = f"{proxy}/golang.org/toolchain/@v/{module_version}.zip"
    progress(f"no Go >= {MINIMUM_GO[0]}.{MINIMUM_GO[1]} found: fetching {url}")
    archive = target.parent / f"{module_version}.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with httpx.stream("GET", url, follow_redirects=True, timeout=120) as response:
        if response.status_code != 200:
            raise BuildError(f"cannot fetch the Go toolchain from {url}: HTTP {response.status_code}")
        with archive.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    prefix = f"golang.org/toolchain@{module_version}/"
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            if not member.filename.startswith(prefix) or member.is_dir():
                continue
            destination = staging / member.filename[len(prefix) :]
            destination.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, destination.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            if (
                (member.external_attr >> 16) & 0o111
                or "/bin/" in f"/{member.filename[len(prefix) :]}"
                or ("/pkg/tool/" in member.filename)
            ):
                destination.chmod(0o755)
    archive.unlink()
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    go = target / "bin" / "go"
    if not _usable_go(str(go)):
        raise BuildError(f"the fetched Go toolchain at {go} does not run")
    return str(go)


def _go_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-buildvcs=false")
    env["CGO_ENABLED"] = "0"
    if extra:
        env.update(extra)
    return env


def _run(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(args, cwd=cwd, env=env or _go_env(), capture_output=True, text=True)
    if completed.returncode != 0:
        raise BuildError(
            f"{' '.join(args)} failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}"
        )
    return completed.stdout


def staging_replacements(kubernetes_go_mod: str) -> list[str]:
    """Module paths the kubernetes go.mod points at its own staging tree."""
    pattern = re.compile(r"^\s*(?:replace\s+)?(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", re.MULTILINE)
    return sorted(set(pattern.findall(kubernetes_go_mod)))


def sibling_replacements(go_mod: str, module_prefix: str) -> list[str]:
    """Modules a go.mod points at sibling directories (`=> ../api`), e.g. etcd's."""
    pattern = re.compile(
        rf"^\s*(?:replace\s+)?({re.escape(module_prefix)}[\w.\-/]*)\s+=>\s+\.\./", re.MULTILINE
    )
    return sorted(set(pattern.findall(go_mod)))


def required_version(go_mod: str, module: str) -> str:
    """The version `go_mod` requires of `module` (etcd's siblings carry real versions there)."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod, re.MULTILINE)
    if match is None:
        raise BuildError(f"go.mod requires no version of {module}")
    return match.group(1)


def _go_directive(kubernetes_go_mod: str) -> str:
    match = re.search(r"^go\s+(\S+)", kubernetes_go_mod, re.MULTILINE)
    return match.group(1) if match else "1.24.0"


def wrapper_go_mod(kubernetes_go_mod: str, version: str) -> str:
    staging_version = "v0." + version.removeprefix("v").split(".", 1)[1]
    modules = staging_replacements(kubernetes_go_mod)
    if not modules:
        raise BuildError("found no staging replace directives in the kubernetes go.mod")
    lines = [
        "module backout.local/kube-build",
        "",
        f"go {_go_directive(kubernetes_go_mod)}",
        "",
        f"require k8s.io/kubernetes {version}",
        "",
        "replace (",
        *[f"\t{module} => {module} {staging_version}" for module in modules],
        ")",
        "",
    ]
    return "\n".join(lines)


def _ldflags(version: str) -> str:
    major, minor = version.removeprefix("v").split(".")[:2]
    prefix = "k8s.io/component-base/version"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return " ".join(
        [
            "-s",
            "-w",
            f"-X {prefix}.gitVersion={version}",
            f"-X {prefix}.gitMajor={major}",
            f"-X {prefix}.gitMinor={minor}",
            f"-X {prefix}.gitTreeState=clean",
            f"-X {prefix}.buildDate={stamp}",
        ]
    )


def _stream_build(args: list[str], cwd: Path, label: str, progress: Progress) -> None:
    """Run `go build -v`, reporting every few packages so a long build visibly moves."""
    started = time.monotonic()
    process = subprocess.Popen(
        args, cwd=cwd, env=_go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    compiled = 0
    tail: list[str] = []
    last_report = 0.0
    for line in process.stdout:
        line = line.rstrip()
        tail = [*tail[-40:], line]
        if line and not line.startswith(("go: ", "#")) and " " not in line:
            compiled += 1
        now = time.monotonic()
        if now - last_report >= 10:
            progress(f"  {label}: {compiled} packages compiled, {now - started:.0f}s elapsed")
            last_report = now
    if process.wait() != 0:
        raise BuildError(f"building {label} failed:\n" + "\n".join(tail))
    progress(f"  {label}: done in {time.monotonic() - started:.0f}s ({compiled} packages)")


def is_built(version: str = KUBERNETES_VERSION) -> bool:
    names = [*KUBE_COMPONENTS, "kwok", "etcd"]
    return (version_dir(version) / "build-info.json").exists() and all(
        binary_path(name, version).exists() for name in names
    )


def read_build_info(version: str = KUBERNETES_VERSION) -> BuildInfo | None:
    info_file = version_dir(version) / "build-info.json"
    if not info_file.exists():
        return None
    return BuildInfo.model_validate_json(info_file.read_text(encoding="utf-8"))


def build(version: str = KUBERNETES_VERSION, progress: Progress = _print_progress) -> BuildInfo:
    """Build (or reuse) every binary for `version`; instant when the cache is warm."""
    existing = read_build_info(version)
    if existing is not None and is_built(version):
        return existing
    if not re.fullmatch(r"v1\.\d+\.\d+", version):
        raise BuildError(f"kubernetes version {version!r} must look like v1.34.4")
    version_dir(version).mkdir(parents=True, exist_ok=True)
    # Two test sessions on a cold machine must not both write the same binaries.
    with (version_dir(version) / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = read_build_info(version)
        if existing is not None and is_built(version):
            return existing
        return _build_locked(version, progress)


def _build_locked(version: str, progress: Progress) -> BuildInfo:
    started = time.monotonic()
    go = _go_binary(progress)
    go_version = _run([go, "env", "GOVERSION"]).strip()
    bin_dir = binary_dir(version)
    src_dir = version_dir(version) / "src"
    bin_dir.mkdir(parents=True, exist_ok=True)
    src_dir.mkdir(parents=True, exist_ok=True)
    parallelism = os.environ.get(BUILD_PARALLELISM_ENV, "2")
    progress(f"building the control plane {version} with {go_version} into {bin_dir} (-p {parallelism})")

    progress(f"  fetching k8s.io/kubernetes@{version} module metadata")
    (src_dir / "go.mod").unlink(missing_ok=True)
    download = json.loads(_run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"], cwd=src_dir))
    if download.get("Error"):
        raise BuildError(f"cannot download k8s.io/kubernetes@{version}: {download['Error']}")
    kubernetes_go_mod = Path(download["GoMod"]).read_text(encoding="utf-8")
    (src_dir / "go.mod").write_text(wrapper_go_mod(kubernetes_go_mod, version), encoding="utf-8")
    (src_dir / "go.sum").touch()

    for component in KUBE_COMPONENTS:
        target = bin_dir / component
        if target.exists():
            progress(f"  {component}: cached")
            continue
        partial = bin_dir / f".{component}.partial"
        args = ["nice", "-n", "10", go, "build", "-mod=mod", "-v", "-p", parallelism, "-trimpath"]
        args += ["-ldflags", _ldflags(version), "-o", str(partial), f"k8s.io/kubernetes/cmd/{component}"]
        _stream_build(args, src_dir, component, progress)
        partial.rename(target)

    kwok = bin_dir / "kwok"
    if not kwok.exists():
        progress(f"  kwok: go install sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}")
        gobin = version_dir(version) / ".kwok-gobin"
        env = _go_env({"GOBIN": str(gobin)})
        args = ["nice", "-n", "10", go, "install", "-v", "-p", parallelism, "-trimpath"]
        args += ["-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"]
        completed = subprocess.run(args, env=env, capture_output=True, text=True)
        if completed.returncode != 0:
            raise BuildError(f"installing kwok failed: {completed.stderr.strip()[-2000:]}")
        (gobin / "kwok").rename(kwok)
        progress("  kwok: done")

    etcd = bin_dir / "etcd"
    if not etcd.exists():
        _build_etcd(go, version_dir(version) / "etcd-src", etcd, parallelism, progress)

    info = BuildInfo(
        kubernetes_version=version,
        kwok_version=KWOK_VERSION,
        go_version=go_version,
        built_at=datetime.now(UTC),
        seconds=round(time.monotonic() - started, 1),
        binaries={name: str(binary_path(name, version)) for name in [*KUBE_COMPONENTS, "kwok", "etcd"]},
    )
    (version_dir(version) / "build-info.json").write_text(info.model_dump_json(indent=2), encoding="utf-8")
    progress(f"control plane {version} ready in {info.seconds:.0f}s")
    return info


def _build_etcd(go: str, src_dir: Path, target: Path, parallelism: str, progress: Progress) -> None:
    """etcd's server module also replaces its siblings with local paths: same wrapper trick."""
    src_dir.mkdir(parents=True, exist_ok=True)
    module = "go.etcd.io/etcd/server/v3"
    (src_dir / "go.mod").unlink(missing_ok=True)  # a stale wrapper would be parsed by `go mod download`
    download = json.loads(_run([go, "mod", "download", "-json", f"{module}@{ETCD_VERSION}"], cwd=src_dir))
    if download.get("Error"):
        raise BuildError(f"cannot download {module}@{ETCD_VERSION}: {download['Error']}")
    server_go_mod = Path(download["GoMod"]).read_text(encoding="utf-8")
    siblings = sibling_replacements(server_go_mod, "go.etcd.io/etcd/")
    lines = [
        "module backout.local/etcd-build",
        "",
        f"go {_go_directive(server_go_mod)}",
        "",
        f"require {module} {ETCD_VERSION}",
        "",
        "replace (",
        *[f"\t{sibling} => {sibling} {required_version(server_go_mod, sibling)}" for sibling in siblings],
        ")",
        "",
    ]
    (src_dir / "go.mod").write_text("\n".join(lines), encoding="utf-8")
    (src_dir / "go.sum").touch()
    partial = target.with_name(".etcd.partial")
    args = ["nice", "-n", "10", go, "build", "-mod=mod", "-v", "-p", parallelism, "-trimpath"]
    args += ["-ldflags", "-s -w", "-o", str(partial), module]
    _stream_build(args, src_dir, "etcd", progress)
    partial.rename(target)
