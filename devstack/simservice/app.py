"""The simulated OpenAI-compatible service: chat completions (plain and streaming) and vLLM-style metrics."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field

from devstack.simservice.behaviour import (
    Answer,
    Profile,
    QualityKnobs,
    generate_answer,
    load_corpus,
    profile_for,
)
from devstack.simservice.versions import DeployedVersions, VersionSource

# 1.5 s and 30 s are the SLO thresholds the shipped burn-rate rules count against (TTFT, end to end).
_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str = ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = "orbitdesk-assistant"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        self.gpu_cache = Gauge(
            "vllm:gpu_cache_usage_perc", "GPU KV-cache usage (1 = 100%).", labels, registry=self.registry
        )
        self.waiting = Gauge("vllm:num_requests_waiting", "Requests waiting.", labels, registry=self.registry)
        self.running = Gauge("vllm:num_requests_running", "Requests running.", labels, registry=self.registry)
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.success = Counter(
            "vllm:request_success", "Finished requests.", [*labels, "finished_reason"], registry=self.registry
        )
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prompt tokens.", labels, registry=self.registry)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generated tokens.", labels, registry=self.registry
        )
        self.requests = Counter(
            "simservice_requests",
            "Chat completion requests.",
            ["model_version", "prompt_version", "corpus_version"],
            registry=self.registry,
        )
        self.errors = Counter(
            "simservice_request_errors",
            "Failed chat completion requests.",
            ["model_version", "reason"],
            registry=self.registry,
        )
        self.retrieval_precision = Gauge(
            "simservice_retrieval_precision",
            "Share of recent requests whose retrieval found the right passage.",
            ["corpus_version", "prompt_version"],
            registry=self.registry,
        )
        self.info = Gauge(
            "simservice_deployed_version_info",
            "Currently deployed versions (value 1).",
            ["model_version", "prompt_version", "corpus_version"],
            registry=self.registry,
        )


class _Precision:
    """Exponentially weighted share of retrieval hits, so the gauge follows deployments quickly."""

    def __init__(self, weight: float = 0.1) -> None:
        self.value = 1.0
        self._weight = weight

    def add(self, hit: bool) -> float:
        self.value = (1 - self._weight) * self.value + self._weight * (1.0 if hit else 0.0)
        return self.value


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def create_app(
    source: VersionSource, knobs: QualityKnobs | None = None, seed: int | None = None, error_rate: float = 0.0
) -> FastAPI:
    knobs = knobs or QualityKnobs()
    corpus = load_corpus()
    metrics = ServiceMetrics()
    rng = random.Random(seed)
    rng_lock = threading.Lock()
    precision = _Precision()
    in_flight = {"count": 0}
    deployed: dict[str, DeployedVersions | None] = {"versions": None}
    app = FastAPI(title="simservice", docs_url=None, redoc_url=None)

    def _answer(request: ChatCompletionRequest, profile: Profile) -> tuple[Answer, bool]:
        messages = [m.model_dump(include={"role", "content"}) for m in request.messages]
        with rng_lock:
            answer = generate_answer(messages, profile, corpus, rng)
            failed = rng.random() < error_rate
        return answer, failed

    def _observe_gauges(model: str, profile: Profile) -> None:
        metrics.running.labels(model).set(in_flight["count"])
        metrics.waiting.labels(model).set(max(0, in_flight["count"] - 4))
        metrics.gpu_cache.labels(model).set(min(1.0, profile.cache_pressure + 0.04 * in_flight["count"]))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "versions": source.current().model_dump(), **source.describe()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        current = source.current()
        return {
            "object": "list",
            "data": [
                {
                    "id": "orbitdesk-assistant",
                    "object": "model",
                    "owned_by": "simservice",
                    "version": current.model_version,
                }
            ],
        }

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: ChatCompletionRequest) -> Response:
        versions = source.current()
        profile = profile_for(versions, knobs)
        model = versions.model_version
        metrics.requests.labels(
            versions.model_version, versions.prompt_version, versions.corpus_version
        ).inc()
        if versions != deployed["versions"]:
            # A new deployment: drop the old versions' gauges so no alert keeps firing on stale series.
            deployed["versions"] = versions
            for gauge in (
                metrics.info,
                metrics.retrieval_precision,
                metrics.gpu_cache,
                metrics.waiting,
                metrics.running,
            ):
                gauge.clear()
            precision.value = 1.0
            metrics.info.labels(versions.model_version, versions.prompt_version, versions.corpus_version).set(
                1
            )
        answer, failed = _answer(request, profile)
        metrics.retrieval_precision.labels(versions.corpus_version, versions.prompt_version).set(
            precision.add(answer.retrieval_hit)
        )
        prompt_tokens = sum(_count_tokens(m.content) for m in request.messages)
        words = answer.text.split(" ")
        if request.max_tokens is not None:
            words = words[: request.max_tokens]
        text = " ".join(words)
        completion_tokens = len(words)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        started = time.perf_counter()
        in_flight["count"] += 1
        _observe_gauges(model, profile)
        if failed:
            await asyncio.sleep(profile.ttft_s)
            in_flight["count"] -= 1
            _observe_gauges(model, profile)
            metrics.errors.labels(model, "injected").inc()
            raise HTTPException(status_code=500, detail="simulated inference failure")

        def _finish() -> None:
            in_flight["count"] -= 1
            _observe_gauges(model, profile)
            metrics.e2e.labels(model).observe(time.perf_counter() - started)
            metrics.success.labels(model, "stop").inc()
            metrics.prompt_tokens.labels(model).inc(prompt_tokens)
            metrics.generation_tokens.labels(model).inc(completion_tokens)

        if not request.stream:
            await asyncio.sleep(profile.ttft_s + profile.per_token_s * completion_tokens)
            metrics.ttft.labels(model).observe(time.perf_counter() - started)
            _finish()
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": request.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": model,
                }
            )

        include_usage = bool(request.stream_options and request.stream_options.include_usage)

        async def events() -> AsyncIterator[str]:
            base = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": request.model,
                "system_fingerprint": model,
            }
            try:
                await asyncio.sleep(profile.ttft_s)
                metrics.ttft.labels(model).observe(time.perf_counter() - started)
                yield _sse(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                        ],
                    }
                )
                for position, word in enumerate(words):
                    piece = word if position == 0 else " " + word
                    yield _sse(
                        {
                            **base,
                            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                        }
                    )
                    await asyncio.sleep(profile.per_token_s)
                yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if include_usage:
                    yield _sse({**base, "choices": [], "usage": usage})
                yield "data: [DONE]\n\n"
            finally:
                _finish()

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"
