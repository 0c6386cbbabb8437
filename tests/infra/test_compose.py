"""docker-compose.yml, Dockerfile and the shipped Prometheus/Alertmanager configs fit together.

No Docker engine runs here, so instead of `docker compose config` this parses the file,
resolves ${VAR:-default} the way Compose does with an empty host environment, and checks
references, ports, environment names and the configs themselves (amtool, promtool).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from config import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
BACKOUT_SERVICES = ("backout-worker", "backout-api")
# What an operator exports before `docker compose up` (the file ships no token of its own).
HOST_ENV = {
    "HOME": "/home/user",
    "BACKOUT_SENDER_TOKEN": "sender-0123456789abcdef",
    "BACKOUT_REPORTER_TOKEN": "reporter-0123456789abcdef",
    "BACKOUT_OPERATOR_TOKEN": "operator-0123456789abcdef",
    "BACKOUT_ALLOWED_NAMESPACES": "prod",
}

_VARIABLE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>(?:[^{}]|\{[^{}]*\})*))?\}"
)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose interpolation: ${VAR}, ${VAR:-default} (nested), ${VAR:?error}; $$ is a literal $."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        if op in (":-", "-"):
            missing = current is None or (op == ":-" and current == "")
            return interpolate(arg, env) if missing else str(current)
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise AssertionError(f"${{{name}}} is required: {arg}")
            return current
        return current or ""

    escaped = value.replace("$$", "\0")
    return _VARIABLE.sub(substitute, escaped).replace("\0", "$")


def service_env(name: str) -> dict[str, str | None]:
    environment = SERVICES[name].get("environment") or {}
    if isinstance(environment, list):
        pairs = [item.split("=", 1) if "=" in item else [item, None] for item in environment]
        environment = dict(pairs)
    return {
        key: None if value is None else interpolate(str(value), HOST_ENV)
        for key, value in environment.items()
    }


def flag(service: str, name: str) -> str:
    """Value of --name=VALUE in a service's command (list or shell string)."""
    command = SERVICES[service]["command"]
    text = " ".join(command) if isinstance(command, list) else command
    found = re.search(rf"--{re.escape(name)}=(\S*)", text)
    assert found, f"{service}: no --{name} in its command"
    return found.group(1)


def host_port(address: str) -> tuple[str, int]:
    parsed = urlsplit(address if "//" in address else f"//{address}")
    assert parsed.hostname and parsed.port, f"{address!r} is not host:port"
    return parsed.hostname, parsed.port


def bind_mounts(service: str) -> dict[str, str]:
    """container path -> resolved host path, for the short volume syntax."""
    mounts: dict[str, str] = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = interpolate(volume, HOST_ENV).split(":")[:2]
        mounts[target] = source
    return mounts


def test_every_expected_service_is_there() -> None:
    assert {
        "postgresql", "temporal", "temporal-ui", "backout-worker", "backout-api", "prometheus", "alertmanager",
    } <= set(SERVICES)  # fmt: skip
    assert SERVICES["temporal"]["environment"]["DB"].startswith("postgres")
    assert SERVICES["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"


def test_worker_and_api_run_one_image_built_from_the_repo_dockerfile() -> None:
    worker, api = SERVICES["backout-worker"], SERVICES["backout-api"]
    build = worker["build"]
    assert (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()
    assert worker["image"] == api["image"]
    assert "build" not in api, "the API must reuse the worker's image, not build a second one"
    assert worker["command"] == ["worker"]
    assert api["command"] == ["api"]


def test_dockerfile_installs_the_project_with_backout_as_entrypoint() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^COPY \. ", dockerfile, re.M), "the build must copy the project"
    assert re.search(r"pip install --no-deps /src\b", dockerfile), "the build must pip-install the project"
    assert "--require-hashes -r /src/requirements-product.lock" in dockerfile, "dependencies as locked"
    assert re.search(r'^ENTRYPOINT \["backout"\]$', dockerfile, re.M)
    scripts = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'backout = "worker.cli:main"' in scripts
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".backout", ".git"} <= set(ignored)


def test_bind_mounted_repo_files_exist_and_named_volumes_are_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for target, source in bind_mounts(name).items():
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} (mounted at {target}) is not in the repo"
            elif not source.startswith("/"):
                assert source in declared, f"{name}: volume {source} is not declared"
        for dependency in service.get("depends_on", []):
            assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"


@pytest.mark.parametrize("service", BACKOUT_SERVICES)
def test_backout_environment_names_are_settings_fields_and_load(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = service_env(service)
    unknown = sorted(k for k in env if k.removeprefix("BACKOUT_").lower() not in Settings.model_fields)
    assert not unknown, f"{service}: not backout settings: {unknown}"
    assert all(k.startswith("BACKOUT_") for k in env)
    for key in list(os.environ):
        if key.startswith("BACKOUT_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if value is not None:  # no value = taken from the host, unset here
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.temporal_address is not None, "containers must use the Temporal service, not embed one"
    assert settings.allowed_namespaces == ["prod"]
    if service == "backout-api":
        assert settings.sender_token and settings.reporter_token and settings.operator_token
    else:
        assert settings.sender_token is None, "the worker holds no API credential"


@pytest.mark.parametrize(
    "variable", ["BACKOUT_SENDER_TOKEN", "BACKOUT_REPORTER_TOKEN", "BACKOUT_OPERATOR_TOKEN"]
)
def test_the_compose_file_ships_no_token(variable: str) -> None:
    """Issue 12: without the operator's own token Compose refuses to start (no default credential)."""
    host = {key: value for key, value in HOST_ENV.items() if key != variable}
    with pytest.raises(AssertionError, match=variable):
        for value in (SERVICES["backout-api"].get("environment") or {}).values():
            interpolate(str(value), host)


def test_api_listens_beyond_loopback_with_a_token_on_the_published_port() -> None:
    env = service_env("backout-api")
    assert env["BACKOUT_API_HOST"] == "0.0.0.0"
    assert env["BACKOUT_SENDER_TOKEN"] and env["BACKOUT_OPERATOR_TOKEN"]
    published = [str(p).rsplit(":", 1)[-1] for p in SERVICES["backout-api"]["ports"]]
    assert env["BACKOUT_API_PORT"] in published


def test_alertmanager_webhook_points_at_the_api_with_the_sender_token() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    [receiver] = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    [webhook] = receiver["webhook_configs"]
    url = urlsplit(webhook["url"])
    api_env = service_env("backout-api")
    assert url.hostname == "backout-api"
    assert str(url.port) == api_env["BACKOUT_API_PORT"]
    assert url.path == "/v1/alerts/alertmanager"
    assert webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization.get("type", "Bearer") == "Bearer"
    token_file = authorization["credentials_file"]
    command = " ".join(SERVICES["alertmanager"]["command"])
    assert f'"$$BACKOUT_SENDER_TOKEN" > {token_file}' in command, (
        "alertmanager must write the token file it reads"
    )
    assert service_env("alertmanager")["BACKOUT_SENDER_TOKEN"] == api_env["BACKOUT_SENDER_TOKEN"]
    assert (
        bind_mounts("alertmanager")[flag("alertmanager", "config.file")]
        == "./deploy/alertmanager/alertmanager.yml"
    )
    assert set(config["route"]["group_by"]) == {"namespace", "service"}


def test_backout_reaches_temporal_and_prometheus_on_their_ports() -> None:
    for service in BACKOUT_SERVICES:
        env = service_env(service)
        host, port = host_port(env["BACKOUT_TEMPORAL_ADDRESS"] or "")
        assert host == "temporal" and port == 7233  # the auto-setup image's frontend port
        host, port = host_port(env["BACKOUT_PROMETHEUS_URL"] or "")
        assert host == "prometheus" and port == host_port(flag("prometheus", "web.listen-address"))[1]
    assert any(str(p).endswith(":7233") for p in SERVICES["temporal"]["ports"])
    assert SERVICES["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_prometheus_sends_to_alertmanager_and_loads_the_shipped_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    [target] = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = host_port(target)
    assert host == "alertmanager"
    assert port == host_port(flag("alertmanager", "web.listen-address"))[1]
    mounts = bind_mounts("prometheus")
    config_path = flag("prometheus", "config.file")
    assert mounts[config_path] == "./deploy/prometheus/prometheus.yml"
    rules_mount = str(Path(config_path).parent / "rules")
    assert mounts[rules_mount] == "./deploy/prometheus/rules"
    assert all(pattern.startswith("rules/") for pattern in config["rule_files"])
    api_port = int(service_env("backout-api")["BACKOUT_API_PORT"] or 0)
    for job in config["scrape_configs"]:
        for address in job["static_configs"][0]["targets"]:
            host, port = host_port(address)
            assert host == "localhost" or host in SERVICES, f"scrape target {address} is not a service"
            if host == "backout-api":
                assert port == api_port


def _run_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed (Debian packages prometheus / prometheus-alertmanager)")
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = _run_tool(["amtool", "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_prometheus_config_and_finds_the_shipped_rules() -> None:
    result = _run_tool(["promtool", "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    shipped = len(list((REPO / "deploy" / "prometheus" / "rules").glob("*.y*ml")))
    assert shipped > 0
    assert f"SUCCESS: {shipped} rule files found" in result.stdout


def test_interpolation_resolves_like_compose() -> None:
    env = {"HOME": "/h", "SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}", env) == "x"
    assert interpolate("${EMPTY:-d}", env) == "d"
    assert interpolate("${EMPTY-d}", env) == ""
    assert interpolate("${NOPE:-${HOME}/.kube/config}", env) == "/h/.kube/config"
    assert interpolate("a $$B", env) == "a $B"
    with pytest.raises(AssertionError, match="required"):
        interpolate("${NOPE:?set it}", env)
