from __future__ import annotations

import ast
from pathlib import Path

from incidents.models import ActionRecord
from tests.paging.conftest import DETECTED, make_report, rollback_record
from workflows.summary import build_summary, render_report

SUMMARY_MODULE = Path(__file__).resolve().parents[2] / "workflows" / "summary.py"


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


def test_the_report_carries_the_words_every_channel_shows() -> None:
    report = render_report(make_report(state="recovered", actions=[rollback_record()]))
    assert report.summary == build_summary(report)
    assert report.symptom == "RagPrecisionLow on rag-api (prod)"
    assert [(c.change_id, c.probability) for c in report.culprits] == [("chg-17", 0.82), ("chg-12", 0.11)]
    assert report.culprits[0].change.startswith("corpus change chg-17 to retriever by ingest-pipeline")
    assert report.done == ["rollback deployment/retriever: Successful (rolled back to revision 3)"]
    assert report.last_rollback() == (report.actions[0], report.done[0])
