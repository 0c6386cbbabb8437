"""Who may decide a pending approval, from a verified identity (never from a request body).

Identities are what runbook `approvers` and the ownership file's team `approvers` list: a Slack
user id (U.../W...), a Slack user group id (S...), an email, or a team name of the ownership file.
A Slack click is the verified Slack user (its email and groups looked up through the Slack API
when an approver list names emails or groups); an API call is the operator credential's identity
(`operator_identity`). A runbook that names no approvers (or a `mode: approve` action without a
`request_approval` step) is decided by the approvers of the incident's owning team; with no
owning team, nobody may decide it.

The workflow's `approve` validator checks the decision's names against the approvers it asked
for; this module is where those names come from.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.paging.channel import DeliveryError
from activities.paging.channels.slack import SlackClient
from activities.paging.owners import (
    OwnerRequest,
    OwnershipError,
    OwnershipFile,
    load_ownership,
    resolve_owner,
)
from api.common import ApiError, temporal_call
from config import Settings
from incidents.models import ApprovalScope

SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")


@dataclass(frozen=True)
class Verdict:
    """Either the names the approver answers to (allowed) or why not."""

    names: frozenset[str]
    refusal: str | None = None


def _ownership(settings: Settings) -> OwnershipFile | None:
    if settings.ownership_file is None:
        return None
    try:
        return load_ownership(settings.ownership_file)
    except OwnershipError as exc:
        raise ApiError(503, "ownership_unusable", f"the ownership file cannot be read: {exc}") from exc


def owning_team(scope: ApprovalScope, ownership: OwnershipFile | None) -> str | None:
    """The incident's team (the runbook's, else the ownership file's for its service)."""
    if ownership is None:
        return scope.team
    if scope.team and scope.team in ownership.teams:
        return scope.team
    found = resolve_owner(OwnerRequest(service=scope.service, namespace=scope.namespace), ownership).team
    return found if found in ownership.teams else scope.team


def required_approvers(scope: ApprovalScope, ownership: OwnershipFile | None) -> list[str] | str:
    """The names one of which must decide, or why nobody can."""
    if scope.approval is None:
        return "no approval is pending for this incident"
    if scope.approval.approvers:
        return list(scope.approval.approvers)
    team = owning_team(scope, ownership)
    if team is None:
        return (
            "the runbook names no approvers and the incident's service has no owning team in the "
            "ownership file: nobody may approve it (name approvers in the runbook or the team)"
        )
    return [team]


def _slack_names(settings: Settings, user: str, wanted: set[str]) -> set[str]:
    """The user's email and the wanted Slack groups it belongs to, asked of Slack (best effort)."""
    if settings.slack_token is None or not SLACK_USER.match(user):
        return set()
    slack = SlackClient(settings.slack_token.get_secret_value(), settings.slack_api_url)
    found: set[str] = set()
    try:
        if any("@" in name for name in wanted):
            email = slack.user_email(user)
            if email:
                found.add(email.lower())
        for group in sorted(name for name in wanted if SLACK_GROUP.match(name)):
            if user in slack.group_members(group):
                found.add(group)
    except DeliveryError:
        pass  # Slack unreachable: the user id alone still counts
    return found


def names_of(settings: Settings, ownership: OwnershipFile | None, user: str, required: list[str]) -> set[str]:
    """Every name `user` answers to among those `required` could mean (teams expanded)."""
    teams = ownership.teams if ownership is not None else {}
    wanted = set(required)
    for name in required:
        if name in teams:
            wanted.update(teams[name].approvers)
    names = {_norm(user)} | _slack_names(settings, user, wanted)
    for team, entry in teams.items():
        if names & {_norm(approver) for approver in entry.approvers}:
            names.add(_norm(team))
    return names


def _norm(name: str) -> str:
    """Slack ids are case-sensitive upper case; emails and team names compare case-insensitively."""
    return name if SLACK_USER.match(name) or SLACK_GROUP.match(name) else name.lower()


def judge(settings: Settings, scope: ApprovalScope, user: str) -> Verdict:
    """May `user` decide the pending approval of `scope`? (Blocking: Slack and file I/O.)"""
    ownership = _ownership(settings)
    required = required_approvers(scope, ownership)
    if isinstance(required, str):
        return Verdict(frozenset({user}), required)
    names = names_of(settings, ownership, user, required)
    matched = [name for name in required if _norm(name) in names]
    if matched:
        # The approvers' own spelling too, so the workflow's check of its list sees them.
        return Verdict(frozenset({user, *names, *matched}))
    return Verdict(frozenset({user, *names}), f"{user} is not an approver for {', '.join(required)}")


async def approval_scope(client: Client, incident_id: str) -> ApprovalScope:
    handle = client.get_workflow_handle(incident_id)
    try:
        scope: ApprovalScope = await temporal_call(handle.query("approval_scope", result_type=ApprovalScope))
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise ApiError(404, "not_found", f"no incident {incident_id}") from exc
        raise
    return scope


async def verdict_for(settings: Settings, client: Client, incident_id: str, user: str) -> Verdict:
    scope = await approval_scope(client, incident_id)
    return await asyncio.to_thread(judge, settings, scope, user)
