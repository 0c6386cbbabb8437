"""Settings: flags > environment (BACKOUT_*) > optional YAML file > defaults.

Built once by the process that needs them (`load_settings`) and handed down: the worker gives
them to its activity classes, the API to its routes. Nothing looks them up through a global.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_FILE_ENV = "BACKOUT_CONFIG"


class SettingsError(ValueError):
    """Settings that cannot be used; the message names the setting."""


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the optional YAML file named by BACKOUT_CONFIG (or --config)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is None:
            return
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {path}: no such file") from exc
        except yaml.YAMLError as exc:
            raise SettingsError(f"config file {path}: invalid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path}: top level must be a mapping")
        unknown = sorted(set(loaded) - set(settings_cls.model_fields))
        if unknown:
            raise SettingsError(f"config file {path}: unknown setting(s): {', '.join(unknown)}")
        self._data = loaded

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class EvidenceQuery(BaseModel):
    """A PromQL query whose result series become metric evidence in every incident bundle.

    `{namespace}` and `{service}` in the query are replaced by the incident's. Each result
    series is attributed to its `service` label (else the incident's service) and, when
    `version_label` names one of its labels, to that version (canary-style comparison).
    """

    name: str
    query: str
    bad_direction: Literal["up", "down"] | None = None
    version_label: str | None = None


class EvalTarget(BaseModel):
    """A golden set that verifies a service's recovery, and the endpoint to run it against."""

    manifest: Path
    endpoint: str | None = Field(default=None, description="overrides the manifest's endpoint")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BACKOUT_", extra="forbid", validate_default=True)

    state_dir: Path = Path(".backout")

    # Temporal
    temporal_address: str | None = Field(
        default=None, description="host:port of an existing Temporal frontend; unset = embedded dev server"
    )
    temporal_namespace: str = "default"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_ui: bool = True
    task_queue: str = "backout-incidents"

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_token: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 1024 * 1024
    worker_metrics_port: int | None = Field(
        default=None, description="the worker serves its own Prometheus /metrics on worker_metrics_host:PORT"
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="0.0.0.0 in a pod, so probes and Prometheus reach the worker"
    )
    worker_niceness: int = Field(
        default=5,
        ge=0,
        le=19,
        description="`backout up` runs its worker this much nicer than the API, so a saturated host "
        "still takes Alertmanager's webhooks promptly (0: same priority)",
    )
    worker_metrics_url: str | None = Field(
        default=None, description="the API's /metrics also shows the worker's step latencies from this URL"
    )
    duplicate_window_s: float = Field(
        default=30.0,
        ge=0,
        description="identical notifications within this window are answered without Temporal",
    )

    # Kubernetes
    kubeconfig: Path | None = None
    # NoDecode: BACKOUT_ALLOWED_NAMESPACES is comma-separated, not JSON (split by _split_csv).
    allowed_namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_rollbacks_per_namespace_per_hour: int = 3
    kube_dry_run: bool = Field(
        default=False,
        description="every Kubernetes write is a server-side dry run (validated by RBAC and admission, "
        "never persisted); incidents say what backout would have done",
    )
    # NoDecode: comma-separated, like allowed_namespaces.
    kube_dry_run_namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="writes in these namespaces only are server-side dry runs (kube_dry_run covers all)",
    )

    # Prometheus (metric evidence and verification)
    prometheus_url: str | None = None
    evidence_queries: list[EvidenceQuery] = Field(default_factory=list)
    eval_manifests: dict[str, EvalTarget] = Field(
        default_factory=dict,
        description="namespace/service -> golden set (and endpoint) that verifies recovery",
    )

    # Runbooks, attribution, ownership
    runbook_dir: Path | None = None
    attribution_model: Path | None = None
    ownership_file: Path | None = None
    lookback_s: int = 7200
    incident_settle_s: float = Field(default=5.0, ge=0, description="wait for the rest of an alert storm")
    incident_cooldown_s: float = Field(default=600.0, ge=0, description="absorb re-fires after handling")

    # Paging
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com"
    pagerduty_ca_file: Path | None = None
    slack_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_channel: str | None = None
    webhook_url: str | None = Field(
        default=None, description="a generic JSON webhook that gets every incident event (unset: not called)"
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="signs each webhook body: X-Backout-Signature = sha256=HMAC(secret, timestamp.body)",
    )

    # Optional LLM rewrite of summaries / LLM judge
    llm_endpoint: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None

    @field_validator("allowed_namespaces", "kube_dry_run_namespaces", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_path = os.environ.get(CONFIG_FILE_ENV)
        yaml_source = _YamlSource(settings_cls, Path(config_path) if config_path else None)
        return (init_settings, env_settings, yaml_source)

    # Derived locations under the state directory.
    @property
    def temporal_db_file(self) -> Path:
        return self.state_dir / "temporal.sqlite"

    @property
    def change_store_file(self) -> Path:
        return self.state_dir / "changes.sqlite"

    @property
    def feedback_file(self) -> Path:
        return self.state_dir / "feedback.jsonl"

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    def masked(self) -> dict[str, Any]:
        """Effective values for `backout config show`, secrets masked."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown[name] = "********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                shown[name] = str(value)
            else:
                shown[name] = value
        return shown


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; flags arrive as overrides (None means 'not given')."""
    if config_file is not None:
        os.environ[CONFIG_FILE_ENV] = str(config_file)
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(problems) from exc
