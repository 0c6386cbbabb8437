"""Real Prometheus and Alertmanager processes on loopback, for tests and `make demo`.

Each server gets its own free port, data directory and generated config. Alertmanager
runs with HA clustering off (otherwise it binds 9094 and gossips with strangers).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import httpx
import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator

from devstack.process import ManagedProcess, ProcessStartError, free_port

PROMETHEUS_BINARIES: tuple[str, ...] = ("prometheus",)
ALERTMANAGER_BINARIES: tuple[str, ...] = ("prometheus-alertmanager", "alertmanager")

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def find_binary(candidates: tuple[str, ...]) -> Path:
    """First of `candidates` on PATH; the error says how to install it."""
    for name in candidates:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ProcessStartError(
        f"none of {', '.join(candidates)} found on PATH; install the Debian packages "
        "prometheus and prometheus-alertmanager (scripts/install-system-deps.sh)"
    )


def _duration(seconds: float) -> str:
    """Prometheus duration string; milliseconds keep sub-second values exact."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError(f"duration must be positive, got {seconds}s")
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


class ScrapeTarget(BaseModel):
    """One scrape job with static targets."""

    job: str = Field(min_length=1)
    addresses: list[str] = Field(min_length=1, description="host:port of each target")
    metrics_path: str = "/metrics"
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("addresses")
    @classmethod
    def _host_port(cls, value: list[str]) -> list[str]:
        for address in value:
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"scrape address {address!r} must be host:port")
        return value


class AlertmanagerConfig(BaseModel):
    """Alertmanager routing everything to one webhook (backout's API in the demo)."""

    webhook_url: str
    bearer_token: SecretStr | None = None
    group_by: list[str] = Field(default_factory=lambda: ["namespace", "service"])
    group_wait_s: float = Field(default=1.0, gt=0)
    group_interval_s: float = Field(default=5.0, gt=0)
    repeat_interval_s: float = Field(default=60.0, gt=0)
    send_resolved: bool = True
    # An API on HTTPS: the CA its certificate is checked against, and Alertmanager's own
    # certificate and key when the API requires client certificates (mutual TLS).
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


class PrometheusConfig(BaseModel):
    rule_dirs: list[Path] = Field(default_factory=list)
    scrape_targets: list[ScrapeTarget] = Field(default_factory=list)
    alertmanager_address: str | None = Field(default=None, description="host:port")
    scrape_interval_s: float = Field(default=1.0, gt=0)
    evaluation_interval_s: float = Field(default=1.0, gt=0)
    # Prometheus drops alerts evaluated before it has discovered Alertmanager and only resends
    # after this delay (default 1m); a short delay makes the first notification prompt.
    alert_resend_delay_s: float = Field(default=1.0, gt=0)

    @field_validator("rule_dirs")
    @classmethod
    def _dirs_exist(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if not path.is_dir():
                raise ValueError(f"rules directory {path} does not exist")
        return [path.resolve() for path in value]


def render_alertmanager_config(config: AlertmanagerConfig, token_file: Path | None) -> dict[str, Any]:
    """Alertmanager YAML as a dict; the token is read from `token_file` so it never sits in the config."""
    webhook: dict[str, Any] = {"url": config.webhook_url, "send_resolved": config.send_resolved}
    http_config: dict[str, Any] = {}
    if token_file is not None:
        http_config["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    tls = {
        name: str(path)
        for name, path in (
            ("ca_file", config.tls_ca_file),
            ("cert_file", config.tls_cert_file),
            ("key_file", config.tls_key_file),
        )
        if path is not None
    }
    if tls:
        http_config["tls_config"] = tls
    if http_config:
        webhook["http_config"] = http_config
    return {
        "route": {
            "receiver": "backout",
            "group_by": list(config.group_by),
            "group_wait": _duration(config.group_wait_s),
            "group_interval": _duration(config.group_interval_s),
            "repeat_interval": _duration(config.repeat_interval_s),
        },
        "receivers": [{"name": "backout", "webhook_configs": [webhook]}],
    }


def render_prometheus_config(config: PrometheusConfig) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "global": {
            "scrape_interval": _duration(config.scrape_interval_s),
            "evaluation_interval": _duration(config.evaluation_interval_s),
        },
        "rule_files": [str(d / pattern) for d in config.rule_dirs for pattern in ("*.yml", "*.yaml")],
        "scrape_configs": [
            {
                "job_name": target.job,
                "metrics_path": target.metrics_path,
                "static_configs": [{"targets": target.addresses, "labels": target.labels}],
            }
            for target in config.scrape_targets
        ],
    }
    if config.alertmanager_address:
        rendered["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [config.alertmanager_address]}]}]
        }
    return rendered


class _LocalServer(Generic[ConfigT]):
    """Shared lifecycle of one locally started server: work dir, port, config, process, readiness."""

    name = "server"
    binaries: tuple[str, ...] = ()
    host = "127.0.0.1"

    def __init__(
        self,
        work_dir: Path,
        config: ConfigT,
        port: int | None = None,
        binary: Path | None = None,
        startup_timeout_s: float = 30.0,
    ) -> None:
        self.work_dir = work_dir
        self.config = config
        self.port = port or free_port(self.host)
        self.binary = binary or find_binary(self.binaries)
        self.config_file = work_dir / f"{self.name}.yml"
        self.startup_timeout_s = startup_timeout_s
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _write_config(self, rendered: dict[str, Any]) -> None:
        self.config_file.write_text(yaml.safe_dump(rendered, sort_keys=False), encoding="utf-8")

    def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=5, trust_env=False)
        response.raise_for_status()
        return response.json()

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(self.name, self._argv(), self.work_dir / f"{self.name}.log")
        self.process.start()
        self.process.wait_http_ready(f"{self.url}/-/ready", timeout_s=self.startup_timeout_s)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class AlertmanagerServer(_LocalServer[AlertmanagerConfig]):
    name = "alertmanager"
    binaries = ALERTMANAGER_BINARIES

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds now, from /api/v2/alerts."""
        return list(self._get_json("/api/v2/alerts"))

    def _argv(self) -> list[str]:
        token_file: Path | None = None
        if self.config.bearer_token is not None:
            token_file = self.work_dir / "webhook-token"
            token_file.touch(mode=0o600, exist_ok=True)
            token_file.write_text(self.config.bearer_token.get_secret_value(), encoding="utf-8")
        self._write_config(render_alertmanager_config(self.config, token_file))
        return [
            str(self.binary),
            f"--config.file={self.config_file}",
            f"--storage.path={self.work_dir / 'data'}",
            f"--web.listen-address={self.address}",
            f"--web.external-url={self.url}",
            "--cluster.listen-address=",
        ]


class PrometheusServer(_LocalServer[PrometheusConfig]):
    name = "prometheus"
    binaries = PROMETHEUS_BINARIES

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus holds now (pending and firing), from /api/v1/alerts."""
        return list(self._get_json("/api/v1/alerts")["data"]["alerts"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector as Prometheus returns it."""
        return list(self._get_json("/api/v1/query", {"query": expr})["data"]["result"])

    def _argv(self) -> list[str]:
        self._write_config(render_prometheus_config(self.config))
        return [
            str(self.binary),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
            f"--web.listen-address={self.address}",
            f"--web.external-url={self.url}",
            "--web.enable-lifecycle",
            f"--rules.alert.resend-delay={_duration(self.config.alert_resend_delay_s)}",
        ]


class AlertingStack:
    """Alertmanager first (Prometheus needs its address), then Prometheus; stopped in reverse."""

    def __init__(
        self,
        work_dir: Path,
        webhook_url: str,
        bearer_token: str | None = None,
        rule_dirs: list[Path] | None = None,
        scrape_targets: list[ScrapeTarget] | None = None,
        alertmanager: AlertmanagerConfig | None = None,
        scrape_interval_s: float = 1.0,
        evaluation_interval_s: float = 1.0,
    ) -> None:
        am_config = alertmanager or AlertmanagerConfig(
            webhook_url=webhook_url,
            bearer_token=SecretStr(bearer_token) if bearer_token is not None else None,
        )
        self.alertmanager = AlertmanagerServer(work_dir / "alertmanager", am_config)
        self.prometheus = PrometheusServer(
            work_dir / "prometheus",
            PrometheusConfig(
                rule_dirs=rule_dirs or [],
                scrape_targets=scrape_targets or [],
                alertmanager_address=self.alertmanager.address,
                scrape_interval_s=scrape_interval_s,
                evaluation_interval_s=evaluation_interval_s,
            ),
        )

    def start(self) -> None:
        self.alertmanager.start()
        try:
            self.prometheus.start()
        except BaseException:
            self.alertmanager.stop()
            raise

    def stop(self) -> None:
        self.prometheus.stop()
        self.alertmanager.stop()

    def __enter__(self) -> AlertingStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
