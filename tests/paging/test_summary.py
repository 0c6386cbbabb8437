from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi import FastAPI

from activities.paging.base import RewriteRequest
from activities.paging.rewrite import evidence_for, rewrite_summary_text, unsupported_claims
from activities.paging.summary import build_summary
from devstack.receivers.server import ReceiverServer
from incidents.models import ActionRecord
from tests.paging.conftest import DETECTED, make_report, rollback_record
from worker.settings import Settings

SUMMARY_MODULE = Path(__file__).resolve().parents[2] / "activities" / "paging" / "summary.py"


def test_summary_states_symptom_start_culprit_runner_up_action_and_result() -> None:
    report = make_report(state="recovered", actions=[rollback_record()])
    text = build_summary(report)
    assert "RagPrecisionLow on rag-api (prod)" in text
    assert "Began: 2026-11-27 10:05:00 UTC" in text
    assert "p=0.82" in text and "chg-17" in text and "ingest-pipeline" in text
    assert "corpus-2026-11-20 -> corpus-2026-11-27" in text
    assert "at 2026-11-27 09:41:00 UTC" in text
    assert "Runner-up (p=0.11)" in text and "chg-12" in text
    assert "rollback deployment/retriever: Successful" in text
    assert text.endswith("Recovery verified.")


def test_summary_is_deterministic_and_reflects_state() -> None:
    assert build_summary(make_report()) == build_summary(make_report())
    assert "needs a human" in build_summary(make_report(state="needs_human"))
    assert "Done: nothing yet" in build_summary(make_report())


def test_summary_without_attribution_or_runner_up() -> None:
    report = make_report(attribution=None, changes=[])
    assert "no candidate change" in build_summary(report)
    single = make_report()
    assert single.attribution is not None
    single.attribution.ranking = single.attribution.ranking[:1]
    assert "Runner-up: none" in build_summary(single)


def test_shadow_action_reads_as_would_have() -> None:
    shadow = ActionRecord(
        at=DETECTED, action="rollback", mode="shadow", outcome="would_have", target="deployment/x"
    )
    assert "would have run rollback deployment/x" in build_summary(
        make_report(state="shadowed", actions=[shadow])
    )


def test_summary_module_imports_only_stdlib_pydantic_and_models() -> None:
    tree = ast.parse(SUMMARY_MODULE.read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "datetime", "incidents"}


def test_unsupported_claims_flags_invented_numbers_and_changes() -> None:
    evidence = evidence_for(make_report())
    assert unsupported_claims("chg-17 is likely (p=0.82).", evidence, ["chg-17"]) == []
    problems = unsupported_claims("chg-99 raised errors by 37%", evidence, ["chg-17"])
    assert "number 37" in problems and "change chg-99" in problems


async def test_rewrite_is_off_by_default() -> None:
    result = await rewrite_summary_text(RewriteRequest(report=make_report()), Settings(llm_endpoint=None))
    assert result.rewritten is None
    assert result.deterministic == build_summary(make_report())


@pytest.fixture(scope="module")
def fake_llm() -> object:
    """An OpenAI-compatible endpoint whose answer the test chooses."""
    app = FastAPI()
    app.state.answer = ""
    app.state.requests = []

    @app.post("/v1/chat/completions")
    async def complete(body: dict) -> dict:  # type: ignore[type-arg]
        app.state.requests.append(body)
        return {"choices": [{"message": {"role": "assistant", "content": app.state.answer}}]}

    server = ReceiverServer(app).start()
    yield app, server.url
    server.stop()


async def test_rewrite_keeps_faithful_text_and_drops_invented_facts(fake_llm: tuple[FastAPI, str]) -> None:
    app, url = fake_llm
    settings = Settings(llm_endpoint=f"{url}/v1", llm_model="tiny")
    request = RewriteRequest(report=make_report())

    app.state.answer = "The nightly re-index chg-17 (p=0.82) most likely broke rag-api."
    kept = await rewrite_summary_text(request, settings)
    assert kept.rewritten == app.state.answer
    assert kept.deterministic == build_summary(request.report)
    sent = app.state.requests[-1]["messages"][-1]["content"]
    assert "chg-17" in sent and "0.82" in sent

    app.state.answer = "chg-17 (p=0.97) broke rag-api for 45 minutes."
    dropped = await rewrite_summary_text(request, settings)
    assert dropped.rewritten is None
    assert "0.97" in dropped.note and "45" in dropped.note


async def test_rewrite_failure_keeps_deterministic_text() -> None:
    settings = Settings(llm_endpoint="http://127.0.0.1:9/v1")
    result = await rewrite_summary_text(RewriteRequest(report=make_report()), settings)
    assert result.rewritten is None and "failed" in result.note
