"""Typed shapes of golden sets, manifests, per-item results and run summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ScorerName = Literal[
    "exact", "normalized", "token_f1", "contains", "regex", "json_field", "semantic", "llm_judge"
]

# Default pass thresholds for scorers whose score is continuous.
DEFAULT_THRESHOLDS: dict[str, float] = {"token_f1": 0.5, "semantic": 0.7, "llm_judge": 0.5, "json_field": 1.0}


class ScorerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ScorerName
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    pattern: str | None = None
    fields: list[str] | None = None

    @property
    def pass_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        return DEFAULT_THRESHOLDS.get(self.name, 1.0)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "developer"]
    content: str


class GoldenItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    input: str | list[ChatMessage]
    expected: Any
    tags: list[str] = Field(default_factory=list)
    scorer: ScorerSpec | None = None

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value: str | list[ChatMessage]) -> str | list[ChatMessage]:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a non-empty prompt")
        if isinstance(value, list) and not any(m.role == "user" for m in value):
            raise ValueError("chat input needs at least one user message")
        return value

    def messages(self) -> list[dict[str, str]]:
        if isinstance(self.input, str):
            return [{"role": "user", "content": self.input}]
        return [message.model_dump() for message in self.input]

    def question(self) -> str:
        return next(m["content"] for m in reversed(self.messages()) if m["role"] == "user")


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, gt=0)
    seed: int | None = None
    stream: bool = False


class JudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str
    model: str
    api_key_env: str | None = None


class EvalManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    golden: str = "golden.jsonl"
    endpoint: str = "http://127.0.0.1:8000"
    model: str = "orbitdesk-assistant"
    api_key_env: str | None = None
    scorers: list[ScorerSpec] = Field(default_factory=lambda: [ScorerSpec(name="contains")], min_length=1)
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    critical_tags: list[str] = Field(default_factory=list)
    service: str = Field(min_length=1)
    namespace: str | None = None
    incident_group: str | None = None
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    # Regression statistics (see evals/README.md).
    metric: Literal["pass_rate", "score"] = "pass_rate"
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    min_effect: float = Field(default=0.02, ge=0.0, le=1.0)
    horizon_looks: int = Field(default=100, ge=1)
    window_runs: int = Field(default=4, ge=1, le=50)
    baseline_runs: int = Field(default=3, ge=1, le=20)
    judge: JudgeConfig | None = None

    @property
    def group(self) -> str:
        return self.incident_group or f"eval:{self.name}"


class ItemResult(BaseModel):
    """One line of a results file."""

    model_config = ConfigDict(extra="ignore")

    id: str
    score: float
    passed: bool
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tags: list[str] = Field(default_factory=list)
    scorer: str | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    output: str | None = None
    error: str | None = None
    attempts: int = 1


class RunSummary(BaseModel):
    run_id: str
    manifest: str
    endpoint: str
    model: str
    started_at: datetime
    finished_at: datetime
    n: int
    passed: int
    pass_rate: float
    mean_score: float
    errors: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    ttft_p50_ms: float | None = None
    tags: dict[str, float] = Field(default_factory=dict)
    results_path: str | None = None
