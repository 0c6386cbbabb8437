"""The optional LLM-as-judge scorer against a local OpenAI-compatible judge server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from evals.models import EvalManifest, GoldenItem, JudgeConfig, ScorerSpec
from evals.runner import run_items
from tests.fixtures.simservice import SimService, free_port


def _judge_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def grade(body: dict[str, Any]) -> dict[str, Any]:
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
