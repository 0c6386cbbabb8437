"""The optional LLM-as-judge scorer against a local OpenAI-compatible judge server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from pydantic import SecretStr, ValidationError

from config import Settings
from evals.golden import EvalInputError
from evals.judge import deployment_judge
from evals.models import EvalManifest, GoldenItem, JudgeConfig, ScorerSpec
from evals.runner import RunFailed, run_items, validate_items
from tests.fixtures.simservice import SimService, free_port

JUDGE_KEY = "judge-key-0123456789abcdef"
# What the judge server was called with: (model, Authorization header).
CALLS: list[tuple[str, str | None]] = []


def _judge_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def grade(body: dict[str, Any], request: Request) -> dict[str, Any]:
        CALLS.append((body["model"], request.headers.get("authorization")))
        if body["model"] == "judge-down":
            raise HTTPException(status_code=503, detail="judge overloaded")
        prompt = body["messages"][0]["content"]
        reference = prompt.split("Reference answer:\n", 1)[1].split("\n", 1)[0]
        candidate = prompt.split("Candidate answer:\n", 1)[1].split("\n\nReply", 1)[0]
        verdict = "Score: 1" if reference.lower() in candidate.lower() else "Score: 0"
        return {"choices": [{"message": {"role": "assistant", "content": verdict}}]}

    return app


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_judge_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


async def test_llm_judge_scores_through_the_judge_endpoint(simservice: SimService, judge_url: str) -> None:
    simservice.deploy(model_version="llm-v1", prompt_version="prompt-v1", corpus_version="corpus-v1")
    manifest = EvalManifest(
        name="judge-test",
        service="rag-api",
        scorers=[ScorerSpec(name="llm_judge"), ScorerSpec(name="contains")],
        judge=JudgeConfig(endpoint=judge_url, model="judge"),
    )
    items = [
        GoldenItem(id="right", input="How long is the Orbitdesk free trial?", expected="14 days"),
        GoldenItem(id="wrong", input="How long is the Orbitdesk free trial?", expected="400 days"),
    ]
    results = {result.id: result for result in await run_items(manifest, items, simservice.url)}
    right = results["right"]
    assert right.scorer == "llm_judge"
    # The judge agrees with the independent contains scorer (a good model rarely flakes, so no fixed 1.0).
    assert set(right.scores) == {"llm_judge", "contains"}
    assert right.scores["llm_judge"] == right.scores["contains"] and right.passed == (
        right.scores["contains"] == 1
    )
    assert not results["wrong"].passed and results["wrong"].scores["llm_judge"] == 0.0


ITEMS = [
    GoldenItem(id="right", input="How long is the Orbitdesk free trial?", expected="14 days"),
    GoldenItem(id="wrong", input="How long is the Orbitdesk free trial?", expected="400 days"),
]


async def test_the_deployments_judge_grades_a_manifest_without_one(
    simservice: SimService, judge_url: str, tmp_path: Path
) -> None:
    simservice.deploy(model_version="llm-v1", prompt_version="prompt-v1", corpus_version="corpus-v1")
    settings = Settings(
        state_dir=tmp_path, llm_endpoint=judge_url, llm_model="house-judge", llm_api_key=SecretStr(JUDGE_KEY)
    )
    manifest = EvalManifest(name="judge-default", service="rag-api", scorers=[ScorerSpec(name="llm_judge")])
    CALLS.clear()
    results = {
        result.id: result
        for result in await run_items(
            manifest, ITEMS, simservice.url, default_judge=deployment_judge(settings)
        )
    }
    assert results["right"].passed and not results["wrong"].passed
    assert CALLS and all(call == ("house-judge", f"Bearer {JUDGE_KEY}") for call in CALLS), CALLS


async def test_a_judge_outage_fails_the_run_instead_of_scoring_zero(
    simservice: SimService, judge_url: str
) -> None:
    simservice.deploy(model_version="llm-v1", prompt_version="prompt-v1", corpus_version="corpus-v1")
    manifest = EvalManifest(
        name="judge-down",
        service="rag-api",
        scorers=[ScorerSpec(name="llm_judge")],
        judge=JudgeConfig(endpoint=judge_url, model="judge-down"),
    )
    with pytest.raises(RunFailed, match=r"the judge could not grade 2 item\(s\).*503"):
        await run_items(manifest, ITEMS, simservice.url)
    # A judge that only adds a score beside the deciding scorer leaves that score out.
    beside = manifest.model_copy(
        update={"scorers": [ScorerSpec(name="contains"), ScorerSpec(name="llm_judge")]}
    )
    results = {result.id: result for result in await run_items(beside, ITEMS, simservice.url)}
    assert results["right"].passed and "llm_judge" not in results["right"].scores


def test_llm_judge_without_any_judge_names_both_ways_to_give_one(tmp_path: Path) -> None:
    manifest = EvalManifest(name="no-judge", service="rag-api", scorers=[ScorerSpec(name="llm_judge")])
    with pytest.raises(EvalInputError, match="BACKOUT_LLM_ENDPOINT and BACKOUT_LLM_MODEL"):
        validate_items(manifest, ITEMS, deployment_judge(Settings(state_dir=tmp_path)))


def test_a_half_configured_judge_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"llm_endpoint is set without llm_model.*BACKOUT_LLM_MODEL"):
        Settings(state_dir=tmp_path, llm_endpoint="http://127.0.0.1:1")
    with pytest.raises(ValidationError, match="llm_api_key is set without llm_endpoint"):
        Settings(state_dir=tmp_path, llm_api_key=SecretStr(JUDGE_KEY))
