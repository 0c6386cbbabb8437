"""The incident state as data: one serializable model, changed by plain functions with an explicit clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incidents.key import IncidentKey
from incidents.models import Alert, IncidentInput, IncidentSignal
from workflows.state import IncidentState

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _alert(fingerprint: str, status: str = "firing", **labels: str) -> Alert:
    return Alert(fingerprint=fingerprint, status=status, labels=labels, starts_at=NOW)  # type: ignore[arg-type]


def _state() -> IncidentState:
    params = IncidentInput(
        incident_id="incident-prod-rag-api-1",
        key=IncidentKey(namespace="prod", service="rag-api", group="g"),
        source="alertmanager",
    )
    return IncidentState.opened(params, NOW)


def test_signals_merge_alerts_count_duplicates_and_mark_refires() -> None:
    state = _state()
    first = IncidentSignal(
        source="alertmanager", received_at=NOW, alerts=[_alert("a", alertname="Burn", severity="critical")]
    )
    state.add_signal(NOW, first)
    state.add_signal(NOW, first)
    assert (state.signals, state.duplicates, list(state.alerts)) == (2, 1, ["a"])
    assert state.labels() == {"alertname": "Burn", "severity": "critical"}
    state.in_cooldown = True
    resolved = IncidentSignal(
        source="alertmanager", received_at=NOW, alerts=[_alert("a", "resolved", alertname="Burn")]
    )
    state.add_signal(NOW + timedelta(seconds=5), resolved)
    assert state.all_alerts_resolved() and not state.refired
    state.add_signal(NOW + timedelta(seconds=9), first)
    assert state.refired
    assert [entry.message for entry in state.view.timeline] == [
        "alert Burn firing",
        "alert Burn firing -> resolved",
        "alert Burn resolved -> firing",
    ]


def test_state_changes_are_logged_once_and_the_report_carries_its_words() -> None:
    state = _state()
    state.add_signal(
        NOW, IncidentSignal(source="alertmanager", received_at=NOW, alerts=[_alert("a", alertname="Burn")])
    )
    assert state.move_to(NOW, "collecting") and not state.move_to(NOW, "collecting")
    state.record(NOW, "page", "auto", "Successful", message="paged")
    report = state.report()
    assert report.title == "Burn on rag-api (prod)" and report.state == "collecting"
    assert report.done == ["page: Successful (paged)"] and state.view.summary == report.summary
    assert report.links["backout"].endswith("/v1/incidents/incident-prod-rag-api-1")


def test_the_state_round_trips_through_json() -> None:
    state = _state()
    state.add_signal(
        NOW, IncidentSignal(source="alertmanager", received_at=NOW, alerts=[_alert("a", alertname="Burn")])
    )
    state.move_to(NOW, "deciding")
    restored = IncidentState.model_validate_json(state.model_dump_json())
    assert restored == state


def test_alerts_about_a_metric_by_symptom_label_or_rule_expression() -> None:
    named = _alert("n", backout_metric="vllm:gpu_cache_usage_perc")
    ruled = Alert(
        fingerprint="r",
        status="firing",
        starts_at=NOW,
        generator_url="http://prom:9090/graph?g0.expr=avg%28vllm%3Agpu_cache_usage_perc%29+%3E+0.9&g0.tab=1",
    )
    other = Alert(
        fingerprint="o", status="firing", starts_at=NOW, generator_url="http://prom/graph?g0.expr=up+%3D%3D+0"
    )
    metric = "vllm:gpu_cache_usage_perc"
    assert named.is_about(metric) and ruled.is_about(metric) and not other.is_about(metric)
    assert not ruled.is_about("vllm:gpu_cache")  # a whole metric name, not a prefix
    state = _state()
    state.add_signal(NOW, IncidentSignal(source="alertmanager", received_at=NOW, alerts=[named, other]))
    assert not state.alerts_about_resolved(metric)
    state.add_signal(
        NOW,
        IncidentSignal(
            source="alertmanager", received_at=NOW, alerts=[named.model_copy(update={"status": "resolved"})]
        ),
    )
    assert state.alerts_about_resolved(metric) and not state.all_alerts_resolved()
