"""The paging channels' behaviour against the local receivers, called directly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities.paging.channels.pagerduty import PagerDutyChannel, dedup_key_for
from activities.paging.channels.slack import APPROVE_ACTION_ID, REJECT_ACTION_ID, SlackChannel
from config import Settings
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.slack import SlackReceiver
from incidents.models import ApprovalRequest, ChatThread, NotifyRequest
from tests.fixtures.receivers import PD_TEAM_ROUTING_KEY, PD_TEST_ROUTING_KEY
from tests.paging.conftest import DETECTED, make_report, rollback_record


def test_dedup_key_comes_from_the_incident_id_only() -> None:
    first = make_report(title="one title")
    second = make_report(title="another title", state="recovered")
    assert (
        dedup_key_for(first.incident_id)
        == dedup_key_for(second.incident_id)
        == f"backout/{first.incident_id}"
    )
    assert len(dedup_key_for("x" * 400)) <= 255
    assert dedup_key_for("x" * 400) != dedup_key_for("x" * 399 + "y")


def test_trigger_carries_owner_key_severity_culprits_actions_and_links(
    paging_settings: Settings, pagerduty_receiver: PagerDutyReceiver
) -> None:
    report = make_report(actions=[rollback_record()])
    result = PagerDutyChannel(paging_settings).send(NotifyRequest(event="opened", report=report))
    assert result.outcome == "Successful" and result.dedup_key == dedup_key_for(report.incident_id)
    [event] = pagerduty_receiver.events
    assert event["routing_key"] == PD_TEAM_ROUTING_KEY
    assert event["dedup_key"] == result.dedup_key
    assert event["payload"]["severity"] == "error"
    assert event["payload"]["timestamp"] == "2026-11-27T10:05:00+00:00"
    assert event["payload"]["summary"] == "RagPrecisionLow on rag-api (prod) - likely chg-17 (p=0.82)"
    details = event["payload"]["custom_details"]
    assert [c["change_id"] for c in details["ranked_culprits"]] == ["chg-17", "chg-12"]
    assert details["ranked_culprits"][0]["probability"] == 0.82
    assert details["ranked_culprits"][0]["reasons"] == ["started 24 min before the symptom"]
    assert details["actions_taken"] == [
        "rollback deployment/retriever: Successful (rolled back to revision 3)"
    ]
    assert details["links"]["temporal"].startswith("http://127.0.0.1:8233")
    assert {link["text"] for link in event["links"]} == {"backout", "temporal"}


def test_event_mapping_uses_one_dedup_key(
    paging_settings: Settings, pagerduty_receiver: PagerDutyReceiver
) -> None:
    pagerduty = PagerDutyChannel(paging_settings)
    report = make_report(actions=[rollback_record()])
    for event in ("opened", "update", "approval_requested", "approved", "rollback_performed", "recovered"):
        pagerduty.send(NotifyRequest(event=event, report=report))
    key = dedup_key_for(report.incident_id)
    assert pagerduty_receiver.actions() == [("trigger", key), ("acknowledge", key), ("resolve", key)]
    pagerduty.send(NotifyRequest(event="shadowed", report=report))
    assert pagerduty_receiver.actions()[-1] == ("resolve", key)
    [change] = pagerduty_receiver.change_events
    assert "deployment/retriever" in change["payload"]["summary"]
    assert change["payload"]["timestamp"].startswith("2026-11-27T10:08")


def test_needs_human_pages_critical_with_the_reason(
    paging_settings: Settings, pagerduty_receiver: PagerDutyReceiver
) -> None:
    request = NotifyRequest(event="needs_human", report=make_report(), detail="rollout did not complete")
    PagerDutyChannel(paging_settings).send(request)
    [event] = pagerduty_receiver.events
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["custom_details"]["reason"] == "rollout did not complete"


def test_pagerduty_rejection_is_not_retryable(
    paging_settings: Settings, pagerduty_receiver: PagerDutyReceiver
) -> None:
    pagerduty_receiver.faults.push(400)
    with pytest.raises(ApplicationError) as caught:
        PagerDutyChannel(paging_settings).send(NotifyRequest(event="opened", report=make_report()))
    assert caught.value.non_retryable and "HTTP 400" in str(caught.value)
    assert pagerduty_receiver.attempts == 1


def test_pagerduty_rate_limit_is_capped_and_retryable(
    paging_settings: Settings, pagerduty_receiver: PagerDutyReceiver
) -> None:
    pagerduty_receiver.faults.push(429, 50)
    with pytest.raises(ApplicationError) as caught:
        PagerDutyChannel(paging_settings).send(NotifyRequest(event="opened", report=make_report()))
    assert not caught.value.non_retryable and "429" in str(caught.value)
    assert pagerduty_receiver.attempts == 2  # one bounded retry inside the client, then Temporal owns it
    assert pagerduty_receiver.events == []


def test_unknown_routing_key_is_rejected_by_the_receiver(
    paging_settings: Settings, pagerduty_receiver: PagerDutyReceiver
) -> None:
    settings = paging_settings.model_copy(
        update={"pagerduty_routing_key": SecretStr("unknown"), "ownership_file": None}
    )
    with pytest.raises(ApplicationError, match="invalid routing key"):
        PagerDutyChannel(settings).send(NotifyRequest(event="opened", report=make_report(team=None)))


def test_unconfigured_channels_answer_inconclusive(paging_settings: Settings) -> None:
    bare = paging_settings.model_copy(
        update={"pagerduty_routing_key": None, "slack_token": None, "ownership_file": None}
    )
    request = NotifyRequest(event="opened", report=make_report())
    assert PagerDutyChannel(bare).send(request).outcome == "Inconclusive"
    assert SlackChannel(bare).send(request).outcome == "Inconclusive"


def test_slack_head_replies_in_thread_and_edits_in_place(
    paging_settings: Settings, slack_receiver: SlackReceiver
) -> None:
    slack = SlackChannel(paging_settings)
    report = make_report()
    opened = slack.send(NotifyRequest(event="opened", report=report))
    assert opened.thread is not None
    [head] = slack_receiver.heads()
    assert head.channel == slack_receiver.channel_id("#ml-incidents")
    assert (head.channel, head.ts) == (opened.thread.channel, opened.thread.ts)
    assert "[investigating]" in head.text

    report = make_report(state="remediating", actions=[rollback_record()])
    slack.send(NotifyRequest(event="rollback_performed", report=report, thread=opened.thread))
    report = make_report(state="recovered", actions=[rollback_record()])
    slack.send(NotifyRequest(event="recovered", report=report, thread=opened.thread))

    assert len(slack_receiver.heads()) == 1
    replies = slack_receiver.thread(head.channel, head.ts)
    assert [r.text.split(" ")[0] for r in replies] == [":rewind:", ":white_check_mark:"]
    assert all(
        call.arguments["thread_ts"] == head.ts for call in slack_receiver.calls_of("chat.postMessage")[1:]
    )
    assert "[recovered]" in head.text
    assert [text.split("]")[0] for text in head.edits] == [":mag: [investigating", ":rewind: [rolling back"]


def test_approval_message_has_buttons_in_thread(
    paging_settings: Settings, slack_receiver: SlackReceiver
) -> None:
    slack = SlackChannel(paging_settings)
    report = make_report(
        state="awaiting_approval",
        approval=ApprovalRequest(request_id="req-1", expires_at=DETECTED, proposed=["rollback"]),
    )
    thread = slack.send(NotifyRequest(event="opened", report=report)).thread
    slack.send(NotifyRequest(event="approval_requested", report=report, thread=thread))
    assert thread is not None
    [message] = slack_receiver.thread(thread.channel, thread.ts)
    [actions] = [block for block in message.blocks if block["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [APPROVE_ACTION_ID, REJECT_ACTION_ID]
    [head] = slack_receiver.heads()
    assert any("*backout wants to*: rollback" in str(block) for block in head.blocks)
    assert '"r":"req-1"' in actions["elements"][0]["value"]


def test_slack_rate_limit_then_success_delivers_once(
    paging_settings: Settings, slack_receiver: SlackReceiver
) -> None:
    slack_receiver.faults.push(429, 1, {"Retry-After": "1"})
    result = SlackChannel(paging_settings).send(NotifyRequest(event="opened", report=make_report()))
    assert result.outcome == "Successful"
    assert slack_receiver.attempts == 2
    assert len(slack_receiver.heads()) == 1


def test_slack_bad_token_is_not_retryable(paging_settings: Settings, slack_receiver: SlackReceiver) -> None:
    settings = paging_settings.model_copy(update={"slack_token": SecretStr("xoxb-wrong")})
    with pytest.raises(ApplicationError, match="invalid_auth") as caught:
        SlackChannel(settings).send(NotifyRequest(event="opened", report=make_report()))
    assert caught.value.non_retryable
    assert slack_receiver.heads() == []


def test_reply_without_thread_opens_a_head_first(
    paging_settings: Settings, slack_receiver: SlackReceiver
) -> None:
    result = SlackChannel(paging_settings).send(
        NotifyRequest(event="needs_human", report=make_report(state="needs_human"), detail="rollback failed")
    )
    assert result.thread is not None
    [head] = slack_receiver.heads()
    [reply] = slack_receiver.thread(head.channel, head.ts)
    assert "[needs human]" in head.text and "rollback failed" in reply.text
    assert ChatThread(channel=head.channel, ts=head.ts) == result.thread


def test_broken_ownership_file_never_silences_the_page(
    paging_settings: Settings,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("teams: [not, a, mapping]\n")
    settings = paging_settings.model_copy(update={"ownership_file": broken})
    request = NotifyRequest(event="opened", report=make_report())
    paged = PagerDutyChannel(settings).send(request)
    posted = SlackChannel(settings).send(request)
    assert paged.outcome == posted.outcome == "Successful"
    assert "ownership file unusable" in paged.message and "broken.yaml" in paged.message
    assert pagerduty_receiver.events[0]["routing_key"] == PD_TEST_ROUTING_KEY
    assert slack_receiver.heads()[0].channel == slack_receiver.channel_id("#fallback")


def test_plain_http_events_url_is_a_permanent_error(paging_settings: Settings) -> None:
    settings = paging_settings.model_copy(update={"pagerduty_events_url": "http://127.0.0.1:1"})
    with pytest.raises(ApplicationError, match="must be https") as caught:
        PagerDutyChannel(settings).send(NotifyRequest(event="opened", report=make_report()))
    assert caught.value.non_retryable


def test_pagerduty_rate_limit_then_success_delivers_once(
    paging_settings: Settings, pagerduty_receiver: PagerDutyReceiver
) -> None:
    pagerduty_receiver.faults.push(429)
    result = PagerDutyChannel(paging_settings).send(NotifyRequest(event="opened", report=make_report()))
    assert result.outcome == "Successful"
    assert pagerduty_receiver.attempts == 2
    assert pagerduty_receiver.actions() == [("trigger", result.dedup_key)]


def test_slack_long_retry_after_fails_the_attempt_instead_of_sleeping(
    paging_settings: Settings, slack_receiver: SlackReceiver
) -> None:
    slack_receiver.faults.push(429, 1, {"Retry-After": "60"})
    with pytest.raises(ApplicationError, match=r"chat\.postMessage") as caught:
        SlackChannel(paging_settings).send(NotifyRequest(event="opened", report=make_report()))
    assert not caught.value.non_retryable  # Temporal tries again later
    assert slack_receiver.attempts == 1 and slack_receiver.heads() == []


def test_a_notify_step_naming_a_channel_posts_there_outside_the_thread(
    paging_settings: Settings, slack_receiver: SlackReceiver
) -> None:
    slack = SlackChannel(paging_settings)
    thread = slack.send(NotifyRequest(event="opened", report=make_report())).thread
    request = NotifyRequest(
        event="update",
        report=make_report(),
        thread=thread,
        detail="quality team: have a look",
        chat_channel="#ml-quality",
    )
    result = slack.send(request)
    assert result.outcome == "Successful" and "#ml-quality" in result.message
    [posted] = [
        m for m in slack_receiver.messages.values() if m.channel == slack_receiver.channel_id("#ml-quality")
    ]
    assert posted.thread_ts is None and posted.text == "quality team: have a look"
    assert thread is not None and slack_receiver.thread(thread.channel, thread.ts) == []
