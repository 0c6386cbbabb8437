"""Settings: flags > environment (BACKOUT_*) > optional YAML file > defaults.

Built once by the process that needs them (`load_settings`) and handed down: the worker gives
them to its activity classes, the API to its routes. Nothing looks them up through a global.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from config.gitops import GitOpsConfig
from config.redact import redact_url

CONFIG_FILE_ENV = "BACKOUT_CONFIG"
# The allow list entry that means "every namespace"; it must be written on purpose, alone.
ALL_NAMESPACES = "*"
# The API's credentials, one per role (README "Security"): which setting holds each role's token.
ROLE_TOKENS: dict[str, str] = {
    "sender": "sender_token",
    "reporter": "reporter_token",
    "operator": "operator_token",
    "metrics": "metrics_token",
}
MIN_TOKEN_CHARS = 16
# Placeholders an evidence query may use; each must sit inside a double-quoted PromQL string.
QUERY_PLACEHOLDERS = ("{namespace}", "{service}")


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


def _placeholders_outside_strings(query: str) -> list[str]:
    """Placeholders written outside a double-quoted PromQL string (where a value could become code)."""
    outside: list[str] = []
    quoted = False
    index = 0
    while index < len(query):
        char = query[index]
        if quoted and char == "\\":
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted:
            outside.extend(p for p in QUERY_PLACEHOLDERS if query.startswith(p, index))
        index += 1
    return outside


class EvidenceQuery(BaseModel):
    """A named PromQL query whose result series become metric evidence in incident bundles.

    `{namespace}` and `{service}` are replaced by the incident's, escaped as PromQL string content,
    so they may only appear inside double-quoted strings (`namespace="{namespace}"`). Each result
    series is attributed to its `service` label (else the incident's service) and, when
    `version_label` names one of its labels, to that version (canary-style comparison).
    `run: always` queries run for every incident; `run: when_named` ones only for an incident
    whose alert names them in its `backout.dev/evidence-query` annotation (alerts name queries,
    they never carry PromQL).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_:][A-Za-z0-9_:.-]*$")
    query: str = Field(min_length=1, max_length=4000)
    bad_direction: Literal["up", "down"] | None = None
    version_label: str | None = None
    run: Literal["always", "when_named"] = "always"

    @field_validator("query")
    @classmethod
    def _placeholders_quoted(cls, query: str) -> str:
        outside = _placeholders_outside_strings(query)
        if outside:
            raise ValueError(
                f"{', '.join(sorted(set(outside)))} must be inside a double-quoted string, "
                'e.g. namespace="{namespace}" (values are escaped as string content)'
            )
        return query


class EvalTarget(BaseModel):
    """A golden set that verifies a service's recovery, and the endpoint to run it against."""

    manifest: Path
    endpoint: str | None = Field(default=None, description="overrides the manifest's endpoint")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BACKOUT_", extra="forbid", validate_default=True)

    state_dir: Path = Path(".backout")
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:password@host:5432/dbname) of the store every API "
        "replica and worker shares: reported changes and culprit labels. Unset: SQLite in state_dir, "
        "which only processes sharing that directory see (one machine, `backout up`)",
    )

    # Temporal
    temporal_address: str | None = Field(
        default=None, description="host:port of an existing Temporal frontend; unset = embedded dev server"
    )
    temporal_namespace: str = "default"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_ui: bool = True
    task_queue: str = "backout-incidents"

    # HTTP API: one credential per role (README "Security"); a role without one is closed.
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    sender_token: SecretStr | None = Field(
        default=None, description="alert sources (Alertmanager, Grafana): POST /v1/alerts/*"
    )
    reporter_token: SecretStr | None = Field(
        default=None, description="CI/CD and other change reporters: POST /v1/changes"
    )
    reporter_identity: str = Field(
        default="reporter", min_length=1, description="stamped on every change the reporter token posts"
    )
    operator_token: SecretStr | None = Field(
        default=None, description="people and tools that read incidents and changes, approve, label culprits"
    )
    operator_identity: str = Field(
        default="operator",
        min_length=1,
        description="who an approval made with the operator token is from: a Slack user id, an email or a "
        "team of the ownership file, as runbook approvers name them",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="GET /metrics only (Prometheus); the operator token reads it too"
    )
    allow_anonymous_loopback: bool = Field(
        default=False,
        description="a role without a token accepts requests without one, only from loopback and only "
        "when the API listens on loopback (local demo and development)",
    )
    api_token: SecretStr | None = Field(
        default=None, description="removed: one token for every role; use the per-role tokens"
    )
    api_docs: bool = Field(default=False, description="serve /openapi.json (operator token) and /docs")
    api_tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain) the API serves HTTPS with; unset: plain HTTP (a TLS-terminating "
        "proxy, ingress or mesh in front)",
    )
    api_tls_key_file: Path | None = Field(default=None, description="the private key of api_tls_cert_file")
    api_tls_client_ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle: every client must present a certificate it signed (mutual TLS) before "
        "a request is read; the bearer tokens still decide the role",
    )
    client_ca_file: Path | None = Field(
        default=None,
        description="CA bundle the CLI trusts for public_url (an API certificate of a private CA)",
    )
    client_cert_file: Path | None = Field(
        default=None, description="certificate the CLI presents to an API that requires one (mutual TLS)"
    )
    client_key_file: Path | None = Field(default=None, description="the private key of client_cert_file")
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    slack_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    api_header_timeout_s: float = Field(
        default=10.0, gt=0, description="a request's headers must arrive within"
    )
    api_http_parser: Literal["httptools", "h11"] = Field(
        default="httptools",
        description="the API's HTTP/1.1 parser: httptools (C, faster) or h11 (pure Python); both "
        "get the header deadline and the 16 KiB header cap",
    )
    api_body_timeout_s: float = Field(
        default=30.0, gt=0, description="each read of a request's body waits at most"
    )
    api_keep_alive_s: float = Field(default=5.0, gt=0)
    api_max_concurrency: int = Field(
        default=200, ge=1, description="connections and requests at once; then 503"
    )
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
    max_notifications_per_incident_per_minute: int = Field(
        default=120,
        ge=1,
        description="distinct notifications one incident takes per minute, all API replicas together; then 503",
    )
    max_alert_bytes_per_incident_per_hour: int = Field(
        default=8 * 1024 * 1024,
        ge=256 * 1024,
        description="alert payload signalled to one incident per hour, all API replicas together; then 503 "
        "(keeps the incident's Temporal history well under its 50 MB limit)",
    )
    api_replicas: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="the most API processes that run at once: each takes this share of the per-incident "
        "budgets above, so together they stay within them (the chart sets it to api.replicas)",
    )
    duplicate_window_s: float = Field(
        default=30.0,
        ge=0,
        description="identical notifications within this window are answered without Temporal",
    )

    # Kubernetes
    kubeconfig: Path | None = None
    # NoDecode: BACKOUT_ALLOWED_NAMESPACES is comma-separated, not JSON (split by _split_csv).
    # Empty: backout refuses to start; "*" alone: every namespace, on purpose.
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
    prometheus_timeout_s: float = Field(
        default=5.0, gt=0, description="one evidence query waits at most this long for Prometheus"
    )
    evidence_budget_s: float = Field(
        default=15.0,
        gt=0,
        description="all evidence queries of an incident wait at most this long together; once "
        "Prometheus is away or too slow the rest are not sent (the runbook sees evidence.missing)",
    )
    evidence_queries: list[EvidenceQuery] = Field(default_factory=list)
    max_evidence_queries: int = Field(
        default=8, ge=1, le=100, description="range queries one incident may send to Prometheus"
    )
    eval_manifests: dict[str, EvalTarget] = Field(
        default_factory=dict,
        description="namespace/service -> golden set (and endpoint) that verifies recovery",
    )

    # GitOps: Flux/Argo CD ownership, the revert written to Git (config/gitops.py)
    gitops: GitOpsConfig = Field(default_factory=GitOpsConfig)

    # Runbooks, attribution, ownership
    runbook_dir: Path | None = None
    attribution_model: Path | None = None
    ownership_file: Path | None = None
    lookback_s: int = 7200
    incident_settle_s: float = Field(default=5.0, ge=0, description="wait for the rest of an alert storm")
    incident_cooldown_s: float = Field(default=600.0, ge=0, description="absorb re-fires after handling")
    approval_recheck_s: float = Field(
        default=60.0,
        ge=1,
        description="while an approval is pending, look again this often: a new plan withdraws it",
    )

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

    # The LLM judge of golden sets whose manifest names none (evals/judge.py).
    llm_endpoint: str | None = Field(
        default=None, description="OpenAI-compatible base URL of the default llm_judge (with llm_model)"
    )
    llm_model: str | None = Field(default=None, description="model name the default llm_judge asks")
    llm_api_key: SecretStr | None = Field(default=None, description="bearer key for llm_endpoint")

    @field_validator("allowed_namespaces", "kube_dry_run_namespaces", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_namespaces")
    @classmethod
    def _wildcard_alone(cls, value: list[str]) -> list[str]:
        if ALL_NAMESPACES in value and len(value) > 1:
            raise ValueError('"*" (every namespace) must be the only entry')
        return value

    @field_validator("api_token")
    @classmethod
    def _no_shared_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raise ValueError(
                "BACKOUT_API_TOKEN (one token for every role) is gone: set BACKOUT_SENDER_TOKEN (alert "
                "sources), BACKOUT_REPORTER_TOKEN (change reporters), BACKOUT_OPERATOR_TOKEN (reads and "
                "approvals) and optionally BACKOUT_METRICS_TOKEN, each its own"
            )
        return value

    @field_validator("evidence_queries")
    @classmethod
    def _unique_query_names(cls, value: list[EvidenceQuery]) -> list[EvidenceQuery]:
        named = [query.name for query in value if query.run == "when_named"]
        duplicates = sorted({name for name in named if named.count(name) > 1})
        if duplicates:
            raise ValueError(f"when_named evidence queries need unique names: {', '.join(duplicates)}")
        return value

    def _set_together(self, first: str, second: str, why: str) -> None:
        """Both settings or neither: one alone is a mistake, named with the variable that is missing."""
        if (getattr(self, first) is None) != (getattr(self, second) is None):
            given, missing = (first, second) if getattr(self, second) is None else (second, first)
            raise ValueError(f"{given} is set without {missing}: {why} (BACKOUT_{missing.upper()})")

    @model_validator(mode="after")
    def _judge_complete(self) -> Settings:
        self._set_together("llm_endpoint", "llm_model", "the default LLM judge needs both")
        if self.llm_api_key is not None and self.llm_endpoint is None:
            raise ValueError("llm_api_key is set without llm_endpoint: there is no judge to send it to")
        return self

    @model_validator(mode="after")
    def _tls_complete(self) -> Settings:
        self._set_together("api_tls_cert_file", "api_tls_key_file", "a certificate is served with its key")
        self._set_together("client_cert_file", "client_key_file", "a certificate is presented with its key")
        if self.api_tls_client_ca_file is not None and self.api_tls_cert_file is None:
            raise ValueError(
                "api_tls_client_ca_file is set without api_tls_cert_file: mutual TLS needs the API on HTTPS"
            )
        return self

    @model_validator(mode="after")
    def _credentials_usable(self) -> Settings:
        """A blank secret is a mistake, not "no credential"; one token may not serve two roles."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and not value.get_secret_value().strip():
                raise ValueError(
                    f'{name} is set but blank (BACKOUT_{name.upper()}=""): unset it for no credential'
                )
        seen: dict[str, str] = {}
        for field_name in ROLE_TOKENS.values():
            token = getattr(self, field_name)
            if token is None:
                continue
            secret = token.get_secret_value()
            if len(secret) < MIN_TOKEN_CHARS:
                raise ValueError(f"{field_name} is shorter than {MIN_TOKEN_CHARS} characters")
            if secret in seen:
                raise ValueError(f"{field_name} equals {seen[secret]}: every role needs its own token")
            seen[secret] = field_name
        return self

    # --- what the settings allow ----------------------------------------------------------------

    @property
    def every_namespace(self) -> bool:
        return self.allowed_namespaces == [ALL_NAMESPACES]

    def namespace_allowed(self, namespace: str | None) -> bool:
        """Whether backout may look at and act in `namespace` (an empty allow list allows nothing)."""
        if not namespace:
            return False
        return self.every_namespace or namespace in self.allowed_namespaces

    def listed_namespaces(self) -> list[str] | None:
        """The namespaces to list cluster-wide reads over (None: every namespace)."""
        return None if self.every_namespace else list(self.allowed_namespaces)

    def role_token(self, role: str) -> SecretStr | None:
        token: SecretStr | None = getattr(self, ROLE_TOKENS[role])
        return token

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
        """Effective values for `backout config show`: secrets masked, and credentials inside URLs."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown[name] = "********" if value.get_secret_value() else ""
            elif isinstance(value, BaseModel):  # a section: its secrets dump masked
                shown[name] = _redacted(value.model_dump(mode="json"))
            elif isinstance(value, Path):
                shown[name] = str(value)
            elif isinstance(value, str):
                shown[name] = redact_url(value)
            elif isinstance(value, list | dict):
                shown[name] = _redacted(
                    [item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in value]
                    if isinstance(value, list)
                    else {
                        k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v
                        for k, v in value.items()
                    }
                )
            else:
                shown[name] = value
        return shown


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    return value


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
