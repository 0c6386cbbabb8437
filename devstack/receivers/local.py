"""Both paging receivers together, for `make demo`: start, point backout's settings at them, report.

    paging = start_local_paging(state_dir / "paging")
    settings = settings.model_copy(update=paging.settings_overrides())
    ...
    print("\\n".join(paging.describe()))
    paging.stop()

`python -m devstack.receivers` runs them until Ctrl-C and prints
the BACKOUT_* variables to export and every event they receive.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import TlsFiles, make_loopback_tls
from devstack.receivers.slack import SlackReceiver

DEMO_SLACK_TOKEN = "xoxb-backout-demo"
DEMO_ROUTING_KEY = "backout-demo-routing-key-0000001"
DEMO_SIGNING_SECRET = "backout-demo-signing-secret"
DEMO_CHANNEL = "#backout-demo"


@dataclass
class LocalPaging:
    pagerduty: PagerDutyReceiver
    slack: SlackReceiver
    tls: TlsFiles

    def settings_overrides(self) -> dict[str, Any]:
        """Settings fields that send backout's pages and chat to these receivers."""
        return {
            "pagerduty_routing_key": SecretStr(DEMO_ROUTING_KEY),
            "pagerduty_events_url": self.pagerduty.url,
            "pagerduty_ca_file": self.tls.ca_file,
            "slack_token": SecretStr(self.slack.token),
            "slack_signing_secret": SecretStr(DEMO_SIGNING_SECRET),
            "slack_api_url": f"{self.slack.url}/api/",
            "slack_channel": DEMO_CHANNEL,
        }

    def environment(self) -> dict[str, str]:
        """The same as BACKOUT_* variables, for a worker started as a separate process."""
        return {
            "BACKOUT_PAGERDUTY_ROUTING_KEY": DEMO_ROUTING_KEY,
            "BACKOUT_PAGERDUTY_EVENTS_URL": self.pagerduty.url,
            "BACKOUT_PAGERDUTY_CA_FILE": str(self.tls.ca_file),
            "BACKOUT_SLACK_TOKEN": self.slack.token,
            "BACKOUT_SLACK_SIGNING_SECRET": DEMO_SIGNING_SECRET,
            "BACKOUT_SLACK_API_URL": f"{self.slack.url}/api/",
            "BACKOUT_SLACK_CHANNEL": DEMO_CHANNEL,
        }

    def describe(self) -> list[str]:
        """What PagerDuty and Slack received, one line each, oldest first."""
        lines = [f"pagerduty {action} dedup_key={key}" for action, key in self.pagerduty.actions()]
        lines += [
            f"pagerduty change event: {c['payload']['summary']}" for c in list(self.pagerduty.change_events)
        ]
        for message in self.slack.heads():
            lines.append(f"slack head {message.channel} ts={message.ts}: {message.text}")
            lines += [f"  reply: {reply.text}" for reply in self.slack.thread(message.channel, message.ts)]
        return lines

    def stop(self) -> None:
        self.pagerduty.stop()
        self.slack.stop()


def start_local_paging(directory: Path, slack_token: str = DEMO_SLACK_TOKEN) -> LocalPaging:
    tls = make_loopback_tls(directory)
    pagerduty = PagerDutyReceiver(tls).start()
    try:
        slack = SlackReceiver(token=slack_token).start()
    except Exception:
        pagerduty.stop()
        raise
    return LocalPaging(pagerduty=pagerduty, slack=slack, tls=tls)


def main() -> None:
    parser = argparse.ArgumentParser(description="Local PagerDuty and Slack receivers for a backout demo")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the CA (default: a temp dir)")
    args = parser.parse_args()
    paging = start_local_paging(args.dir or Path(tempfile.mkdtemp(prefix="backout-paging-")))
    for name, value in paging.environment().items():
        print(f"export {name}={value}")
    print("# receiving; Ctrl-C to stop", flush=True)
    last: list[str] = []
    try:
        while True:
            time.sleep(0.5)
            lines = paging.describe()
            if lines != last:  # replies land inside their thread: reprint the whole picture
                print("---\n" + "\n".join(lines), flush=True)
                last = lines
    except KeyboardInterrupt:
        pass
    finally:
        paging.stop()


if __name__ == "__main__":
    main()
