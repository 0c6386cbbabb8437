"""What the incident report plots: the series that opened the incident, and the per-version
evidence the culprit's reasons cite (pure: models in, panels out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devstack.demo.report import bundle_evidence, evidence_choice, symptom_panel, with_gaps
from incidents.bundle import AttributionOutput, ModelInfo, RankedChange, parse_bundle
from incidents.models import Alert, EvalSymptom, IncidentView

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _view(**fields: object) -> IncidentView:
    base: dict[str, object] = {
        "id": "incident-prod-rag-api-1",
        "state": "recovered",
        "source": "alertmanager",
        "service": "rag-api",
        "namespace": "prod",
        "group": "g",
        "opened_at": NOW,
        "updated_at": NOW,
    }
    return IncidentView.model_validate({**base, **fields})


def _points(*values: float) -> list[list[object]]:
    return [[(NOW - timedelta(minutes=len(values) - i)).isoformat(), v] for i, v in enumerate(values)]


def _bundle() -> dict[str, object]:
    return {
        "version": 1,
        "incident": {"id": "incident-prod-rag-api-1", "detected_at": NOW.isoformat(), "service": "rag-api"},
        "changes": [
            {
                "id": "prompt-v2",
                "service": "rag-api",
                "kind": "prompt",
                "started_at": (NOW - timedelta(minutes=3)).isoformat(),
                "from_version": "p1",
                "to_version": "p2",
            },
            {"id": "image-9", "service": "gateway", "kind": "image", "started_at": NOW.isoformat()},
        ],
        "metrics": [
            {"name": "latency_ms", "service": "rag-api", "version": "p1", "points": _points(100, 101)},
            {"name": "latency_ms", "service": "rag-api", "version": "p2", "points": _points(100, 102)},
            {
                "name": "answer_quality",
                "service": "rag-api",
                "version": "p1",
                "bad_direction": "down",
                "points": _points(0.9, 0.9),
            },
            {
                "name": "answer_quality",
                "service": "rag-api",
                "version": "p2",
                "bad_direction": "down",
                "points": _points(0.9, 0.4),
            },
            {
                "name": "answer_quality",
                "service": "rag-api",
                "bad_direction": "down",
                "points": _points(0.9, 0.6),
            },
        ],
    }


def _ranked(reasons: list[str]) -> AttributionOutput:
    return AttributionOutput(
        incident_id="incident-prod-rag-api-1",
        ranking=[RankedChange(change_id="prompt-v2", probability=0.9, reasons=reasons)],
        model=ModelInfo(name="m", version="1"),
    )


def test_the_evidence_is_the_metric_the_culprits_reasons_cite_per_version() -> None:
    bundle = parse_bundle(_bundle())
    view = _view(attribution=_ranked(["answer_quality of rag-api version p2 fell 55% over the old version"]))
    choice = evidence_choice(view, bundle)
    assert choice is not None and (choice.metric, choice.old_version, choice.new_version) == (
        "answer_quality",
        "p1",
        "p2",
    )
    panel = bundle_evidence(choice, bundle)
    assert [(s.label, s.role) for s in panel.series] == [
        ("answer_quality, version p2", "new_version"),
        ("answer_quality, version p1", "old_version"),
    ]
    assert "answer_quality of rag-api per version (p1 against p2)" in panel.title
    assert [value for _, value in panel.series[0].points] == [0.9, 0.4]


def test_without_a_cited_metric_the_first_per_version_series_is_shown() -> None:
    view = _view(attribution=_ranked(["prompt change on rag-api, 3 min before detection"]))
    choice = evidence_choice(view, parse_bundle(_bundle()))
    assert choice is not None and choice.metric == "latency_ms"


def test_no_culprit_means_no_evidence_plot() -> None:
    assert evidence_choice(_view(), parse_bundle(_bundle())) is None


def test_an_eval_incident_plots_the_golden_set_metric_named_like_the_summary() -> None:
    symptom = EvalSymptom(
        manifest="orbitdesk",
        service="rag-api",
        run_id="r1",
        baseline=0.99,
        candidate=0.64,
        delta=-0.35,
        observed_at=NOW,
    )
    panel = symptom_panel(_view(source="eval", eval=symptom), [(NOW, 0.64)], "eval store")
    assert panel.title.startswith("golden-set pass_rate of rag-api (prod)")
    assert panel.series[0].role == "symptom" and panel.series[0].points == [(NOW, 0.64)]


def test_an_alert_incident_plots_the_alerts_own_expression() -> None:
    alert = Alert(
        fingerprint="f1",
        status="firing",
        labels={"alertname": "RagErrorRateHigh"},
        starts_at=NOW,
        generator_url="http://prometheus:9090/graph?g0.expr=rate%28errors_total%5B1m%5D%29+%3E+0.1&g0.tab=1",
    )
    panel = symptom_panel(_view(alerts=[alert]), [], "prometheus")
    assert panel.title == "RagErrorRateHigh on rag-api (prod): rate(errors_total[1m]) > 0.1"
    assert panel.series[0].label == "rate(errors_total[1m]) > 0.1"


def test_a_series_that_stops_reporting_is_drawn_with_a_break() -> None:
    times = [0.0, 2.0, 4.0, 6.0, 20.0, 22.0]
    drawn_times, drawn_values = with_gaps(times, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert len(drawn_times) == 7 and drawn_values[4] != drawn_values[4]  # one NaN, between 6 and 20
    assert 6.0 < drawn_times[4] < 20.0
    assert with_gaps([0.0, 2.0, 4.0], [1.0, 2.0, 3.0]) == ([0.0, 2.0, 4.0], [1.0, 2.0, 3.0])
