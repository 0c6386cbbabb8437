"""Run a golden set against an OpenAI-compatible /v1/chat/completions endpoint and score every item."""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from evals import semantic
from evals.golden import EvalInputError
from evals.judge import Judge, JudgeError, judge_of, judge_score
from evals.models import EvalManifest, GoldenItem, ItemResult, RunSummary, ScorerSpec
from evals.scorers import ScorerError, score_text

ProgressCallback = Callable[[int, int], None]
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class ServiceUnreachable(RuntimeError):
    """No connection could be made to the endpoint: the run is abandoned."""


class RunFailed(RuntimeError):
    """The endpoint answered, but not one item produced an output."""


class _ItemFailed(Exception):
    pass


@dataclass
class _Completion:
    text: str
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int


def item_scorers(manifest: EvalManifest, item: GoldenItem) -> list[ScorerSpec]:
    """The item's own scorer (or the manifest's first) decides pass; the rest are recorded too."""
    primary = item.scorer or manifest.scorers[0]
    return [primary, *(spec for spec in manifest.scorers if spec.name != primary.name)]


def validate_items(
    manifest: EvalManifest, items: list[GoldenItem], default_judge: Judge | None = None
) -> None:
    """Reject scorer/item combinations that cannot work before calling the service."""
    judge = judge_of(manifest, default_judge)
    for item in items:
        for spec in item_scorers(manifest, item):
            if spec.name == "json_field" and not isinstance(item.expected, dict):
                raise EvalInputError(f"item {item.id!r}: json_field needs `expected` to be a JSON object")
            if spec.name == "llm_judge" and judge is None:
                raise EvalInputError(
                    f"item {item.id!r}: llm_judge needs a judge: a `judge` section in the manifest, or "
                    "BACKOUT_LLM_ENDPOINT and BACKOUT_LLM_MODEL"
                )
            if spec.name == "regex":
                for pattern in [spec.pattern] if spec.pattern else [str(item.expected)]:
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        raise EvalInputError(f"item {item.id!r}: invalid regex {pattern!r}: {exc}") from exc


def _request_body(manifest: EvalManifest, item: GoldenItem) -> dict[str, object]:
    sampling = manifest.sampling
    body: dict[str, object] = {
        "model": manifest.model,
        "messages": item.messages(),
        "temperature": sampling.temperature,
        "max_tokens": sampling.max_tokens,
        "stream": sampling.stream,
    }
    if sampling.top_p is not None:
        body["top_p"] = sampling.top_p
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.stream:
        body["stream_options"] = {"include_usage": True}
    return body


async def _complete_once(
    client: httpx.AsyncClient, url: str, body: dict[str, object], headers: dict[str, str]
) -> tuple[str, float | None, dict[str, int] | None]:
    started = time.perf_counter()
    if not body.get("stream"):
        response = await client.post(url, json=body, headers=headers)
        if response.status_code >= 400:
            raise httpx.HTTPStatusError(
                f"HTTP {response.status_code}", request=response.request, response=response
            )
        data = response.json()
        return str(data["choices"][0]["message"]["content"] or ""), None, data.get("usage")
    pieces: list[str] = []
    first_token: float | None = None
    usage: dict[str, int] | None = None
    async with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code >= 400:
            await response.aread()
            raise httpx.HTTPStatusError(
                f"HTTP {response.status_code}", request=response.request, response=response
            )
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            chunk = json.loads(payload)
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if first_token is None:
                        first_token = (time.perf_counter() - started) * 1000
                    pieces.append(content)
    return "".join(pieces), first_token, usage


async def _complete(
    client: httpx.AsyncClient, url: str, body: dict[str, object], headers: dict[str, str], retries: int
) -> _Completion:
    problem = "no attempt made"
    connect_failures = 0
    for attempt in range(1, retries + 2):
        started = time.perf_counter()
        try:
            text, ttft_ms, usage = await _complete_once(client, url, body, headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            connect_failures += 1
            problem = f"cannot connect: {exc}"
        except httpx.TimeoutException:
            problem = "timed out"
        except httpx.HTTPStatusError as exc:
            problem = f"HTTP {exc.response.status_code}: {exc.response.text[:200]}"
            if exc.response.status_code not in _RETRY_STATUS:
                raise _ItemFailed(problem) from exc
        except (httpx.TransportError, json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            problem = f"bad response: {type(exc).__name__}: {exc}"
        else:
            latency_ms = (time.perf_counter() - started) * 1000
            prompt_tokens = int(usage["prompt_tokens"]) if usage and "prompt_tokens" in usage else None
            completion_tokens = (
                int(usage["completion_tokens"]) if usage and "completion_tokens" in usage else None
            )
            return _Completion(text, latency_ms, ttft_ms, prompt_tokens, completion_tokens, attempt)
        if attempt <= retries:
            await asyncio.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)))
    if connect_failures == retries + 1:
        raise ServiceUnreachable(f"{url}: {problem}")
    raise _ItemFailed(f"{problem} (after {retries + 1} attempts)")


async def _score(
    manifest: EvalManifest,
    items: list[GoldenItem],
    completions: dict[str, _Completion | str],
    client: httpx.AsyncClient,
    judge: Judge | None,
) -> list[ItemResult]:
    scores: dict[str, dict[str, float]] = {item.id: {} for item in items}
    semantic_wanted: list[tuple[str, str, str]] = []
    judge_wanted: list[tuple[GoldenItem, str]] = []
    for item in items:
        completion = completions[item.id]
        if isinstance(completion, str):
            continue
        for spec in item_scorers(manifest, item):
            if spec.name == "semantic":
                semantic_wanted.append((item.id, completion.text, str(item.expected)))
            elif spec.name == "llm_judge":
                judge_wanted.append((item, completion.text))
            else:
                try:
                    scores[item.id][spec.name] = score_text(spec, completion.text, item.expected)
                except ScorerError as exc:
                    raise EvalInputError(f"item {item.id!r}: {exc}") from exc
    if semantic_wanted:
        values = await asyncio.to_thread(
            semantic.similarities, [(out, exp) for _, out, exp in semantic_wanted]
        )
        for (item_id, _, _), value in zip(semantic_wanted, values, strict=True):
            scores[item_id]["semantic"] = value
    if judge_wanted and judge is not None:
        unjudged: list[str] = []
        for item, text in judge_wanted:
            try:
                scores[item.id]["llm_judge"] = await judge_score(
                    client, judge, item.question(), str(item.expected), text, manifest.timeout_s
                )
            except JudgeError as exc:
                # The judge's outage says nothing about the service: never a score of 0.
                if item_scorers(manifest, item)[0].name == "llm_judge":
                    unjudged.append(f"{item.id}: {exc}")
        if unjudged:
            raise RunFailed(
                f"the judge could not grade {len(unjudged)} item(s) it decides; no verdict from this run "
                f"(first: {unjudged[0]})"
            )
    results = []
    for item in items:
        primary = item_scorers(manifest, item)[0]
        completion = completions[item.id]
        if isinstance(completion, str):
            results.append(
                ItemResult(
                    id=item.id,
                    score=0.0,
                    passed=False,
                    tags=item.tags,
                    scorer=primary.name,
                    error=completion,
                    attempts=manifest.retries + 1,
                )
            )
            continue
        score = scores[item.id].get(primary.name, 0.0)
        results.append(
            ItemResult(
                id=item.id,
                score=round(score, 6),
                passed=score >= primary.pass_threshold,
                latency_ms=round(completion.latency_ms, 3),
                ttft_ms=round(completion.ttft_ms, 3) if completion.ttft_ms is not None else None,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                tags=item.tags,
                scorer=primary.name,
                scores={k: round(v, 6) for k, v in scores[item.id].items()},
                output=completion.text,
                attempts=completion.attempts,
            )
        )
    return results


async def run_items(
    manifest: EvalManifest,
    items: list[GoldenItem],
    endpoint: str | None = None,
    progress: ProgressCallback | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    default_judge: Judge | None = None,
) -> list[ItemResult]:
    """Call the endpoint for every item (bounded concurrency), then score. Raises ServiceUnreachable,
    and RunFailed when every item failed or the judge could not grade the items it decides.

    `default_judge` grades `llm_judge` for a manifest without a `judge` section of its own."""
    judge = judge_of(manifest, default_judge)
    validate_items(manifest, items, default_judge)
    base = (endpoint or manifest.endpoint).rstrip("/")
    url = base if base.endswith("/chat/completions") else f"{base}/v1/chat/completions"
    headers = {}
    if manifest.api_key_env and os.environ.get(manifest.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[manifest.api_key_env]}"
    limit = asyncio.Semaphore(manifest.concurrency)
    completions: dict[str, _Completion | str] = {}
    done = 0
    timeout = httpx.Timeout(manifest.timeout_s, connect=min(5.0, manifest.timeout_s))
    limits = httpx.Limits(max_connections=manifest.concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport) as client:

        async def one(item: GoldenItem) -> None:
            nonlocal done
            async with limit:
                try:
                    completions[item.id] = await _complete(
                        client, url, _request_body(manifest, item), headers, manifest.retries
                    )
                except _ItemFailed as exc:
                    completions[item.id] = str(exc)
            done += 1
            if progress is not None:
                progress(done, len(items))

        try:
            async with asyncio.TaskGroup() as group:
                for item in items:
                    group.create_task(one(item))
        except* ServiceUnreachable as failures:
            raise ServiceUnreachable(str(failures.exceptions[0])) from None
        if all(isinstance(value, str) for value in completions.values()):
            first = next(iter(completions.values()))
            raise RunFailed(f"every item failed against {url}; first error: {first}")
        return await _score(manifest, items, completions, client, judge)


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def summarize(
    run_id: str,
    manifest: EvalManifest,
    endpoint: str,
    started_at: datetime,
    finished_at: datetime,
    results: list[ItemResult],
) -> RunSummary:
    passed = sum(result.passed for result in results)
    by_tag: dict[str, list[bool]] = {}
    for result in results:
        for tag in result.tags:
            by_tag.setdefault(tag, []).append(result.passed)
    latencies = [r.latency_ms for r in results if r.latency_ms is not None]
    ttfts = [r.ttft_ms for r in results if r.ttft_ms is not None]
    return RunSummary(
        run_id=run_id,
        manifest=manifest.name,
        endpoint=endpoint,
        model=manifest.model,
        started_at=started_at,
        finished_at=finished_at,
        n=len(results),
        passed=passed,
        pass_rate=round(passed / len(results), 6),
        mean_score=round(statistics.fmean(r.score for r in results), 6),
        errors=sum(r.error is not None for r in results),
        latency_p50_ms=_percentile(latencies, 0.5),
        latency_p95_ms=_percentile(latencies, 0.95),
        ttft_p50_ms=_percentile(ttfts, 0.5),
        tags={tag: round(sum(flags) / len(flags), 6) for tag, flags in sorted(by_tag.items())},
    )
