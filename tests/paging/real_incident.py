"""The real IncidentWorkflow on real parts, for the paging and approval tests.

A Temporal dev server (the suite's), the real worker (every workflow and activity of
`worker.registry`, in this process), the local Kubernetes control plane with a Deployment whose
latest revision is the culprit, the local PagerDuty and Slack receivers, and `backout api` as
processes of their own: approvals arrive the way they do in production, as signed Slack clicks or
`POST /v1/incidents/{id}/approval` with the operator credential, at any API replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle

from activities.incidents import IncidentBehaviour, open_or_join
from activities.kube.client import KubeApis
from api.sources.alertmanager import AlertmanagerPayload
from config import Settings
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import TlsFiles
from devstack.receivers.slack import SlackMessage, SlackReceiver
from incidents.models import ApprovalRequest, IncidentView, OpenIncidentRequest
from tests.fixtures.receivers import PD_TEST_ROUTING_KEY, SLACK_TEST_TOKEN
from tests.fixtures.temporal import (
    backout_process,
    running_worker,
    stop_process,
    until_view,
    wait_healthy,
)
from tests.kube.helpers import create_deployment, current_images, set_image
from tests.paging.conftest import OWNERS_YAML, SIGNING_SECRET
from tests.pipeline.payloads import alert, notification
from worker.temporal_server import free_port

RUNBOOKS = Path(__file__).parent / "runbooks"
OPERATOR_TOKEN = "operator-token-for-the-approval-tests"
APPROVER = "U0ALICE01"  # a runbook approver and an approver of ml-platform in OWNERS_YAML
WAIT_S = 120.0


def signed(body: str, secret: str = SIGNING_SECRET, at: int | None = None) -> dict[str, str]:
    """Slack's request signing: v0=HMAC-SHA256(secret, "v0:<timestamp>:<body>")."""
    timestamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def button(message: SlackMessage, approve: bool) -> dict[str, Any]:
    [actions] = [block for block in message.blocks if block["type"] == "actions"]
    wanted = "backout_approve" if approve else "backout_reject"
    [element] = [e for e in actions["elements"] if e["action_id"] == wanted]
    return dict(element)


def click_body(message: SlackMessage, user: str, approve: bool = True) -> str:
    """The form body Slack posts when `user` clicks Approve (or Reject) on `message`."""
    element = button(message, approve)
    payload = {
        "type": "block_actions",
        "trigger_id": uuid.uuid4().hex,  # Slack gives every click its own trigger_id
        "user": {"id": user, "username": user.lower()},
        "channel": {"id": message.channel},
        "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
        "message": {"ts": message.ts, "thread_ts": message.thread_ts, "text": message.text},
        "actions": [{"action_id": element["action_id"], "value": element["value"], "type": "button"}],
    }
    return urlencode({"payload": json.dumps(payload)})


def operator_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@dataclass
class Api:
    """One `backout api` process."""

    url: str
    process: subprocess.Popen[bytes]

    async def approve(
        self, incident_id: str, request_id: str, approve: bool = True, **extra: Any
    ) -> httpx.Response:
        body = {"request_id": request_id, "approve": approve, **extra}
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            return await http.post(
                f"/v1/incidents/{incident_id}/approval", json=body, headers=operator_headers()
            )

    async def click(self, body: str, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            return await http.post("/v1/slack/interactions", content=body, headers=headers)


@dataclass
class RealStack:
    client: Client
    settings: Settings
    apis: KubeApis
    namespace: str
    slack: SlackReceiver
    pagerduty: PagerDutyReceiver
    apis_started: list[Api] = field(default_factory=list)

    # --- the cluster ---------------------------------------------------------------------------

    async def bad_deploy(self, service: str) -> None:
        """`service` at revision 1 (v1), then revision 2 (v2): the culprit."""
        await asyncio.to_thread(create_deployment, self.apis, self.namespace, service, f"{service}:v1")
        await asyncio.to_thread(set_image, self.apis, self.namespace, service, f"{service}:v2", "deploy v2")

    async def deploy(self, service: str, image: str) -> None:
        await asyncio.to_thread(set_image, self.apis, self.namespace, service, image, f"deploy {image}")

    def images(self, service: str) -> list[str]:
        return current_images(self.apis, self.namespace, service)

    # --- the incident --------------------------------------------------------------------------

    def _request(self, service: str, alertname: str, status: str = "firing") -> OpenIncidentRequest:
        starts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        fired = alert(
            name=alertname, service=service, namespace=self.namespace, status=status, starts_at=starts
        )
        payload = AlertmanagerPayload.model_validate(notification([fired], group=service))
        return OpenIncidentRequest(key=payload.incident_key(), signal=payload.to_signal(datetime.now(UTC)))

    async def open(
        self, service: str, alertname: str, cooldown_s: float | None = None
    ) -> WorkflowHandle[Any, IncidentView]:
        """Open the incident, with the stack's cool-down unless `cooldown_s` says otherwise."""
        settings = self.settings
        if cooldown_s is not None:
            settings = settings.model_copy(update={"incident_cooldown_s": cooldown_s})
        return await open_or_join(self.client, IncidentBehaviour(settings), self._request(service, alertname))

    async def resolve(self, handle: WorkflowHandle[Any, Any], service: str, alertname: str) -> None:
        await handle.signal("add_signal", self._request(service, alertname, status="resolved").signal)

    async def until(
        self,
        handle: WorkflowHandle[Any, Any],
        what: str,
        test: Callable[[IncidentView], bool],
        timeout_s: float = WAIT_S,
    ) -> IncidentView:
        return await until_view(handle, what, test, timeout_s)

    async def pending_approval(
        self, handle: WorkflowHandle[Any, Any], other_than: str | None = None
    ) -> ApprovalRequest:
        """The pending approval request (a new one, when `other_than` names the previous one)."""
        view = await self.until(
            handle,
            "awaiting approval",
            lambda v: (
                v.state == "awaiting_approval"
                and v.approval is not None
                and v.approval.request_id != other_than
            ),
        )
        assert view.approval is not None
        return view.approval

    async def finished(self, handle: WorkflowHandle[Any, Any]) -> IncidentView:
        return IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=WAIT_S))

    async def approval_message(self, request_id: str, timeout_s: float = 30) -> SlackMessage:
        """The Slack message with the buttons of `request_id` (a copy: the receiver edits its own)."""
        async with asyncio.timeout(timeout_s):
            while True:
                for message in list(self.slack.messages.values()):
                    blocks = [b for b in message.blocks if b.get("type") == "actions"]
                    if any(b.get("block_id") == f"approval:{request_id}" for b in blocks):
                        return copy.deepcopy(message)
                await asyncio.sleep(0.05)

    # --- the API -------------------------------------------------------------------------------

    async def api(self, **overrides: Any) -> Api:
        """One more `backout api` process (a replica), ready; `overrides` change its settings."""
        settings = self.settings.model_copy(update={"api_port": free_port(), **overrides})
        log_name = f"api-{settings.api_port}.log"
        process = backout_process(settings, "api", log_name=log_name)
        api = Api(f"http://127.0.0.1:{settings.api_port}", process)
        self.apis_started.append(api)
        await wait_healthy(api.url, process, settings.state_dir / log_name)
        return api


def stack_settings(
    base: Settings,
    kubeconfig: Path,
    namespace: str,
    owners: Path,
    tls: TlsFiles,
    pagerduty: PagerDutyReceiver,
    slack: SlackReceiver,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "kubeconfig": kubeconfig,
        "allowed_namespaces": [namespace],
        "runbook_dir": RUNBOOKS,
        "incident_settle_s": 0.5,
        "incident_cooldown_s": 0.0,
        "approval_recheck_s": 2.0,
        "pagerduty_routing_key": SecretStr(PD_TEST_ROUTING_KEY),
        "pagerduty_events_url": pagerduty.url,
        "pagerduty_ca_file": tls.ca_file,
        "slack_token": SecretStr(SLACK_TEST_TOKEN),
        "slack_api_url": f"{slack.url}/api/",
        "slack_channel": "#fallback",
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "ownership_file": owners,
        "operator_token": SecretStr(OPERATOR_TOKEN),
        "operator_identity": APPROVER,
    }
    values.update(overrides)
    return base.model_copy(update=values)


def write_owners(directory: Path) -> Path:
    path = directory / "owners.yaml"
    path.write_text(OWNERS_YAML, encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def real_stack(
    client: Client,
    settings: Settings,
    apis: KubeApis,
    namespace: str,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
) -> AsyncIterator[RealStack]:
    stack = RealStack(client, settings, apis, namespace, slack, pagerduty)
    try:
        async with running_worker(client, settings):
            yield stack
    finally:
        for api in stack.apis_started:
            stop_process(api.process)
