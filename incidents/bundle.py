"""The incident bundle, version 1 (see shared/specs/incident-bundle.md).

One document, three uses: the running pipeline assembles it, `backout attribute`
reads it from a file, and recorded scenarios are stored in it. Readers accept every
field, ignore unknown ones, and reject MUST violations with a message naming the field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ChangeKind = Literal[
    "image", "config", "secret", "prompt", "model", "corpus", "flag", "scale", "infra", "other"
]
CHANGE_KINDS: tuple[str, ...] = ChangeKind.__args__  # type: ignore[attr-defined]

# The author backout's own changes (rollbacks, restores) carry: never a candidate cause.
BACKOUT_AUTHOR = "backout"
# Change ids of backout's own change ledger (activities/kube/ledger.py): a reported change may not
# take one (it would shadow the cluster's record of that change).
RESERVED_CHANGE_ID_PREFIXES: tuple[str, ...] = ("k8s:", "backout:")
# Unix times this large or small are not times of changes (and overflow datetime).
_EARLIEST_UNIX = 0.0
_LATEST_UNIX = 253402300799.0  # 9999-12-31T23:59:59Z

# Well-known metric names and the direction in which they get worse.
WELL_KNOWN_BAD_DIRECTION: dict[str, str] = {
    "error_rate": "up",
    "success_rate": "down",
    "availability": "down",
    "latency_ms": "up",
    "latency_p99_ms": "up",
    "ttft_ms": "up",
    "eval_score": "down",
    "retrieval_precision": "down",
    "gpu_cache_usage": "up",
    "cpu": "up",
    "memory": "up",
}


def parse_timestamp(value: Any) -> datetime:
    """RFC 3339 string or unix seconds (int or float) -> aware UTC datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a UTC offset (RFC 3339)")
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError(f"timestamp {value.isoformat()} is out of range") from exc
    if isinstance(value, bool):
        raise ValueError("timestamp must be an RFC 3339 string or unix seconds, not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
        if not (_EARLIEST_UNIX <= seconds <= _LATEST_UNIX):  # also NaN and +-Infinity
            raise ValueError(f"unix time {value!r} is out of range")
        return datetime.fromtimestamp(seconds, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if "T" not in text and " " not in text:
            raise ValueError(f"timestamp {value!r} is not RFC 3339 (expected date and time)")
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError as exc:
            raise ValueError(f"timestamp {value!r} is not RFC 3339") from exc
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no UTC offset (RFC 3339 needs Z or +hh:mm)")
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError(f"timestamp {value!r} is out of range") from exc
    raise ValueError(f"timestamp must be an RFC 3339 string or unix seconds, got {type(value).__name__}")


Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Symptom(_Lenient):
    metric: str | None = None
    bad_direction: Literal["up", "down"] | None = None


class BundleIncident(_Lenient):
    id: str = Field(min_length=1)
    detected_at: Timestamp
    service: str | None = None
    namespace: str | None = None
    source: str = "manual"
    labels: dict[str, str] = Field(default_factory=dict)
    symptom: Symptom | None = None

    @field_validator("id")
    @classmethod
    def _non_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value


class Topology(_Lenient):
    edges: list[tuple[str, str]] = Field(default_factory=list)


class RollbackHandle(_Lenient):
    """Opaque to ranking; tells remediation what to undo.

    type: "deployment" (name, namespace, revision = the revision this change created),
    "configmap" / "secret" (name, namespace, version = the recorded version this
    change wrote), or anything a plug-in understands.
    """

    model_config = ConfigDict(extra="allow")
    type: str
    name: str | None = None
    namespace: str | None = None
    revision: int | None = None
    version: str | None = None


class GitCommitRef(_Lenient):
    """The Git commit that introduced a change's content (docs/gitops.md, "The bundle")."""

    sha: str = Field(min_length=1)
    author: str | None = None
    author_email: str | None = None
    committed_at: Timestamp | None = None
    message: str | None = Field(default=None, description="the commit's subject line")
    files: list[str] = Field(default_factory=list)


class GitOrigin(_Lenient):
    """Where a GitOps-managed object's desired state lives, and the commit behind the change.

    An optional extension of spec v1 (readers that do not know it ignore it)."""

    tool: str = Field(description="the reconciler: flux or argocd")
    reconciler: str = Field(
        description="Kind/namespace/name of the Kustomization, HelmRelease or Application"
    )
    repository: str
    branch: str | None = None
    path: str = ""
    revision: str | None = Field(default=None, description="the commit the reconciler had applied")
    manifest: str | None = Field(default=None, description="the file that declares the object")
    commit: GitCommitRef | None = None
    note: str | None = Field(default=None, description="why no commit is named, when none is")


class Change(_Lenient):
    id: str = Field(min_length=1)
    service: str = Field(min_length=1)
    namespace: str | None = None
    kind: str = "other"
    started_at: Timestamp
    completed_at: Timestamp | None = None
    from_version: str | None = None
    to_version: str | None = None
    author: str | None = None
    description: str | None = None
    rollback: RollbackHandle | None = None
    # Who reported it through POST /v1/changes (the reporter credential's identity); None for
    # changes backout read from the cluster.
    reported_by: str | None = None
    # Flux or Argo CD applies the object: its Git source and the commit (None: not GitOps-managed).
    gitops: GitOrigin | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> str:
        if value is None:
            return "other"
        text = str(value)
        return text if text in CHANGE_KINDS else "other"


class MetricPoint(BaseModel):
    time: datetime
    value: float


def _parse_points(value: Any) -> list[tuple[datetime, float]]:
    if not isinstance(value, list):
        raise ValueError("points must be a list of [time, number] pairs")
    points: list[tuple[datetime, float]] = []
    for index, item in enumerate(value):
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise ValueError(f"points[{index}] must be a [time, number] pair")
        number = item[1]
        if isinstance(number, bool) or not isinstance(number, int | float | str):
            raise ValueError(f"points[{index}][1] must be a number")
        try:
            numeric = float(number)
        except ValueError as exc:
            raise ValueError(f"points[{index}][1] must be a number") from exc
        try:
            when = parse_timestamp(item[0])
        except ValueError as exc:
            raise ValueError(f"points[{index}][0]: {exc}") from exc
        points.append((when, numeric))
    return points


class MetricSeries(_Lenient):
    name: str
    service: str = Field(min_length=1)
    version: str | None = None
    pod: str | None = None
    peer: str | None = None
    bad_direction: Literal["up", "down"] | None = None
    points: Annotated[list[tuple[datetime, float]], BeforeValidator(_parse_points)] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _default_direction(self) -> MetricSeries:
        if self.bad_direction is None:
            default = WELL_KNOWN_BAD_DIRECTION.get(self.name)
            if default is None:
                raise ValueError(f"bad_direction is required: metric {self.name!r} is not a well-known name")
            self.bad_direction = default  # type: ignore[assignment]
        return self


class IncidentBundle(_Lenient):
    version: Literal[1]
    incident: BundleIncident
    topology: Topology | None = None
    changes: list[Change]
    metrics: list[MetricSeries] = Field(default_factory=list)

    @field_validator("changes")
    @classmethod
    def _unique_ids(cls, changes: list[Change]) -> list[Change]:
        seen: set[str] = set()
        for change in changes:
            if change.id in seen:
                raise ValueError(f"change id {change.id!r} appears more than once")
            seen.add(change.id)
        return changes


class RankedChange(BaseModel):
    change_id: str
    probability: float = Field(ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)


class ModelInfo(BaseModel):
    name: str
    version: str


class AttributionOutput(BaseModel):
    """Output of `backout attribute --json`: every input change once, best first."""

    incident_id: str
    ranking: list[RankedChange]
    model: ModelInfo


class BundleError(ValueError):
    """A bundle that cannot be read; the message names the field at fault."""


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(piece) for piece in item["loc"]) or "(document)"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    return "; ".join(parts)


def parse_bundle(data: Any) -> IncidentBundle:
    """Validate a decoded JSON document as a bundle, raising BundleError on MUST violations."""
    if not isinstance(data, dict):
        raise BundleError("bundle must be a JSON object")
    if "version" not in data:
        raise BundleError("version: field required (must be 1)")
    if data.get("version") != 1 or isinstance(data.get("version"), bool):
        raise BundleError(f"version: must be 1, got {data.get('version')!r}")
    try:
        return IncidentBundle.model_validate(data)
    except ValidationError as exc:
        raise BundleError(describe_validation_error(exc)) from exc


def load_bundle(path: str | Path) -> IncidentBundle:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BundleError(f"{file}: no such file") from exc
    except OSError as exc:
        raise BundleError(f"{file}: cannot read ({exc.strerror})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{file}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    try:
        return parse_bundle(data)
    except BundleError as exc:
        raise BundleError(f"{file}: {exc}") from exc


def bundle_to_json(bundle: IncidentBundle) -> dict[str, Any]:
    """Serialise back to the spec's wire form (RFC 3339 times, [time, value] points)."""
    data = bundle.model_dump(mode="json", exclude_none=False)
    for series in data.get("metrics", []):
        series["points"] = [[point[0], point[1]] for point in series["points"]]
    data["topology"] = data.get("topology") or {"edges": []}
    return data
