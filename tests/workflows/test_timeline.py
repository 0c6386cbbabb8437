"""The incident timeline as people read it: deliveries that sent nothing stay in the delivery
record, repeated deliveries fold into one line per channel and step, entries run in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incidents.key import IncidentKey
from incidents.models import IncidentInput, NotifyResult
from workflows.state import IncidentState

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _state() -> IncidentState:
    params = IncidentInput(
        incident_id="incident-prod-rag-api-1",
        key=IncidentKey(namespace="prod", service="rag-api", group="g"),
        source="eval",
    )
    return IncidentState.opened(params, NOW)


def _answer(channel: str, message: str, outcome: str = "Successful", sent: bool = True) -> NotifyResult:
    return NotifyResult(channel=channel, outcome=outcome, message=message, sent=sent)  # type: ignore[arg-type]


def _at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_a_delivery_that_sent_nothing_is_recorded_but_not_on_the_timeline() -> None:
    state = _state()
    state.move_to(_at(1), "remediating")
    state.delivered(
        _at(2),
        "pagerduty",
        "PagerDuty",
        "update",
        _answer("pagerduty", "nothing to send for update", sent=False),
    )
    assert [entry.step for entry in state.view.timeline] == ["remediating"]
    assert [(d.channel, d.event, d.sent) for d in state.view.deliveries] == [("pagerduty", "update", False)]
    verbose = state.view.timeline_for_people(verbose=True)
    assert "pagerduty update: Successful, nothing sent: nothing to send for update" in [
        e.message for e in verbose
    ]
    assert not any("nothing to send" in e.message for e in state.view.timeline_for_people())


def test_deliveries_of_one_step_fold_into_one_line_per_channel() -> None:
    state = _state()
    state.move_to(_at(1), "remediating")
    state.log(_at(2), "action", "rollback", "Successful: restored configmap/prod/rag-prompts")
    state.delivered(
        _at(3), "pagerduty", "PagerDuty", "opened", _answer("pagerduty", "trigger sent (critical)")
    )
    state.delivered(_at(3), "slack", "Slack", "opened", _answer("slack", "head message posted"))
    state.delivered(
        _at(4), "pagerduty", "PagerDuty", "rollback_performed", _answer("pagerduty", "change event sent")
    )
    state.delivered(
        _at(4),
        "slack",
        "Slack",
        "rollback_performed",
        _answer("slack", "rollback_performed posted in thread"),
    )
    state.delivered(
        _at(5),
        "pagerduty",
        "PagerDuty",
        "update",
        _answer("pagerduty", "nothing to send for update", sent=False),
    )
    state.delivered(_at(5), "slack", "Slack", "update", _answer("slack", "update posted in thread"))
    lines = [entry.message for entry in state.view.timeline if entry.step.startswith("notify_")]
    assert lines == [
        "PagerDuty: opened (trigger sent (critical)); rollback performed (change event sent)",
        "Slack: opened (head message posted); rollback performed, update (posted in thread)",
    ]
    assert len(state.view.deliveries) == 6
    slack = next(entry for entry in state.view.timeline if entry.step == "notify_slack")
    assert slack.at == _at(3) and [told["event"] for told in slack.data["events"]] == [
        "opened",
        "rollback_performed",
        "update",
    ]


def test_deliveries_fold_only_while_nothing_else_happens() -> None:
    """The opening page lands before the rollback; the rollback's own page after it: two lines, in order."""
    state = _state()
    state.move_to(_at(1), "remediating")
    state.delivered(_at(2), "slack", "Slack", "opened", _answer("slack", "head message posted"))
    state.log(_at(3), "action", "rollback", "Successful: restored configmap/prod/rag-prompts")
    state.delivered(
        _at(4),
        "slack",
        "Slack",
        "rollback_performed",
        _answer("slack", "rollback_performed posted in thread"),
    )
    assert [(entry.at, entry.message) for entry in state.view.timeline[1:]] == [
        (_at(2), "Slack: opened (head message posted)"),
        (_at(3), "Successful: restored configmap/prod/rag-prompts"),
        (_at(4), "Slack: rollback performed (posted in thread)"),
    ]


def test_a_new_step_starts_a_new_delivery_line() -> None:
    state = _state()
    state.move_to(_at(1), "remediating")
    state.delivered(_at(2), "slack", "Slack", "update", _answer("slack", "update posted in thread"))
    state.move_to(_at(3), "recovered")
    state.delivered(_at(4), "slack", "Slack", "recovered", _answer("slack", "recovered posted in thread"))
    assert [entry.message for entry in state.view.timeline] == [
        "state open -> remediating",
        "Slack: update (posted in thread)",
        "state remediating -> recovered",
        "Slack: recovered (posted in thread)",
    ]


def test_a_channel_that_could_not_send_says_why_once_per_step() -> None:
    state = _state()
    state.move_to(_at(1), "remediating")
    for second, event in ((2, "opened"), (3, "update")):
        state.delivered(
            _at(second),
            "slack",
            "Slack",
            event,  # type: ignore[arg-type]
            _answer("slack", "Slack not configured (no token): nothing sent", "Inconclusive", sent=False),
        )
    notes = [entry for entry in state.view.timeline if entry.kind == "note"]
    assert [note.message for note in notes] == [
        "Slack: opened, update (Slack not configured (no token): nothing sent)"
    ]


def test_the_timeline_for_people_runs_in_time_order() -> None:
    state = _state()
    state.log(_at(5), "step", "verify", "service recovered")
    state.log(_at(2), "signal", "alert", "alert Burn firing")  # e.g. merged from another source
    assert [entry.at for entry in state.view.timeline_for_people()] == [_at(2), _at(5)]


def test_results_recorded_before_the_sent_flag_are_read_by_their_words() -> None:
    recorded = {"channel": "pagerduty", "outcome": "Successful", "message": "nothing to send for update"}
    assert NotifyResult.model_validate(recorded).sent is False
    sent = {"channel": "slack", "outcome": "Successful", "message": "update posted in thread"}
    assert NotifyResult.model_validate(sent).sent is True
