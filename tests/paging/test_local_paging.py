from __future__ import annotations

from pathlib import Path

from activities.paging.channels.pagerduty import PagerDutyChannel
from activities.paging.channels.slack import SlackChannel
from config import Settings
from devstack.receivers.local import start_local_paging
from incidents.models import NotifyRequest
from tests.paging.conftest import make_report


def test_demo_receivers_take_a_page_and_a_thread(tmp_path: Path) -> None:
    paging = start_local_paging(tmp_path / "paging")
    try:
        settings = Settings(state_dir=tmp_path, **paging.settings_overrides())
        report = make_report("incident-demo", team=None)
        PagerDutyChannel(settings).send(NotifyRequest(event="opened", report=report))
        thread = SlackChannel(settings).send(NotifyRequest(event="opened", report=report)).thread
        SlackChannel(settings).send(
            NotifyRequest(event="update", report=report, thread=thread, detail="collecting")
        )
        lines = paging.describe()
        assert lines[0] == "pagerduty trigger dedup_key=backout/incident-demo"
        assert lines[1].startswith("slack head C") and "[investigating]" in lines[1]
        assert lines[2] == "  reply: collecting"
        assert set(paging.environment()) >= {"BACKOUT_PAGERDUTY_EVENTS_URL", "BACKOUT_SLACK_API_URL"}
    finally:
        paging.stop()
