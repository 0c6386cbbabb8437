"""Who owns a service: the ownership YAML file and the workload's `backout.dev/team` annotation.

File format (see deploy/owners.yaml):

    teams:
      ml-platform:
        pagerduty_routing_key: R0123...      # or pagerduty_routing_key_env: PD_KEY_ML
        pagerduty_service_id: PABC123        # optional, for the REST API
        slack_channel: "#ml-incidents"
        approvers: [U012ABCDEF, S0ONCALL, oncall@example.com]   # Slack user or group ids, emails
    services:
      - {service: rag-api, namespace: prod, team: ml-platform}   # namespace optional
    namespaces:
      prod: ml-platform                      # default team for a namespace

Lookup order: the workload's `backout.dev/team` annotation or label, then an exact
service+namespace entry, then a service entry without namespace, then the namespace default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from temporalio.exceptions import ApplicationError

from config import Settings
from incidents.bundle import describe_validation_error
from incidents.models import IncidentReport

TEAM_ANNOTATION = "backout.dev/team"

# Who may approve: a Slack user id (U/W...), a Slack user group id (S...) or an email; the same
# identities runbook `approvers` name (api/approvers.py resolves them).
_APPROVER_ID = re.compile(r"^(?:[UWS][A-Z0-9]{2,}|[^@\s]+@[^@\s]+\.[^@\s]+)$")
_LABEL_KEYS = (TEAM_ANNOTATION, "team")


class OwnerRequest(BaseModel):
    service: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class Owner(BaseModel):
    """Who answers for a service. Empty fields mean "fall back to the global settings"."""

    team: str | None = None
    pagerduty_routing_key: str | None = None
    slack_channel: str | None = None
    approvers: list[str] = Field(default_factory=list)
    source: Literal["ownership_file", "annotation", "label", "default", "none"] = "none"


class OwnershipError(ValueError):
    """An ownership file that cannot be used; the message names the file and field."""


class TeamEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pagerduty_routing_key: str | None = None
    pagerduty_routing_key_env: str | None = None
    pagerduty_service_id: str | None = None
    slack_channel: str | None = None
    approvers: list[str] = Field(default_factory=list)

    @field_validator("approvers")
    @classmethod
    def _identities(cls, approvers: list[str]) -> list[str]:
        bad = [user for user in approvers if not _APPROVER_ID.match(user)]
        if bad:
            raise ValueError(
                f"approvers must be Slack user ids (U.../W...), Slack user group ids (S...) or emails, "
                f"not {', '.join(bad)}"
            )
        return approvers

    def routing_key(self) -> str | None:
        if self.pagerduty_routing_key:
            return self.pagerduty_routing_key
        if self.pagerduty_routing_key_env:
            return os.environ.get(self.pagerduty_routing_key_env) or None
        return None


class ServiceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1)
    namespace: str | None = None
    team: str = Field(min_length=1)


class OwnershipFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    teams: dict[str, TeamEntry] = Field(default_factory=dict)
    services: list[ServiceEntry] = Field(default_factory=list)
    namespaces: dict[str, str] = Field(default_factory=dict)

    def team_for(self, service: str | None, namespace: str | None) -> str | None:
        if service:
            for entry in self.services:
                if entry.service == service and entry.namespace == namespace and namespace is not None:
                    return entry.team
            for entry in self.services:
                if entry.service == service and entry.namespace is None:
                    return entry.team
        if namespace and namespace in self.namespaces:
            return self.namespaces[namespace]
        return None

    def owner_of_team(self, team: str, source: Literal["ownership_file", "annotation", "label"]) -> Owner:
        entry = self.teams.get(team)
        if entry is None:
            return Owner(team=team, source=source)
        return Owner(
            team=team,
            pagerduty_routing_key=entry.routing_key(),
            slack_channel=entry.slack_channel,
            approvers=list(entry.approvers),
            source=source,
        )


def load_ownership(path: Path) -> OwnershipFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise OwnershipError(f"{path}: no such file") from exc
    except OSError as exc:
        raise OwnershipError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise OwnershipError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise OwnershipError(f"{path}: top level must be a mapping with teams/services/namespaces")
    try:
        return OwnershipFile.model_validate(data)
    except ValidationError as exc:
        raise OwnershipError(f"{path}: {describe_validation_error(exc)}") from exc


def read_workload_team(service: str, namespace: str, kubeconfig: Path | None) -> str | None:
    """The `backout.dev/team` annotation (or label) on the Deployment named like the service."""
    try:
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)
        deployment = client.AppsV1Api(api_client).read_namespaced_deployment(service, namespace)
    except Exception:  # optional source: no cluster, no access or no such workload
        return None
    metadata = deployment.metadata
    if metadata is None:
        return None
    for mapping in (metadata.annotations or {}, metadata.labels or {}):
        team = mapping.get(TEAM_ANNOTATION)
        if team:
            return str(team)
    return None


def resolve_owner(
    request: OwnerRequest, ownership: OwnershipFile | None, workload_team: str | None = None
) -> Owner:
    file = ownership or OwnershipFile()
    if workload_team:
        return file.owner_of_team(workload_team, "annotation")
    for key in _LABEL_KEYS:
        if request.labels.get(key):
            return file.owner_of_team(request.labels[key], "label")
    team = file.team_for(request.service, request.namespace)
    if team is None:
        return Owner(source="none")
    return file.owner_of_team(team, "ownership_file")


class ServiceRef(BaseModel):
    service: str
    namespace: str | None = None
    team_annotation: str | None = None

    def label(self) -> str:
        return f"{self.namespace}/{self.service}" if self.namespace else self.service


def parse_service_refs(text: str) -> list[ServiceRef]:
    """`a,prod/b` -> [a, b in namespace prod]."""
    refs: list[ServiceRef] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        namespace, _, service = item.rpartition("/")
        if not service or (item.count("/") > 1):
            raise ValueError(f"service {item!r} must be NAME or NAMESPACE/NAME")
        refs.append(ServiceRef(service=service, namespace=namespace or None))
    return refs


class OwnershipReport(BaseModel):
    checked: list[str] = Field(default_factory=list)
    owned: dict[str, str] = Field(default_factory=dict)
    unowned: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def check_ownership(ownership: OwnershipFile, extra: list[ServiceRef]) -> OwnershipReport:
    """Validate team references and report every service (listed or given) without an owner."""
    report = OwnershipReport()
    for name, entry in sorted(ownership.teams.items()):
        if not (entry.routing_key() or entry.slack_channel):
            report.warnings.append(f"team {name}: no PagerDuty routing key and no Slack channel")
        if entry.pagerduty_routing_key_env and not entry.routing_key():
            report.warnings.append(f"team {name}: ${entry.pagerduty_routing_key_env} is not set")
    for index, service_entry in enumerate(ownership.services):
        if service_entry.team not in ownership.teams:
            report.problems.append(
                f"services[{index}] ({service_entry.service}): unknown team {service_entry.team!r}"
            )
    for namespace, team in sorted(ownership.namespaces.items()):
        if team not in ownership.teams:
            report.problems.append(f"namespaces.{namespace}: unknown team {team!r}")
    refs = [ServiceRef(service=entry.service, namespace=entry.namespace) for entry in ownership.services]
    refs.extend(extra)
    seen: set[str] = set()
    for ref in refs:
        label = ref.label()
        if label in seen:
            continue
        seen.add(label)
        report.checked.append(label)
        owner = resolve_owner(
            OwnerRequest(service=ref.service, namespace=ref.namespace), ownership, ref.team_annotation
        )
        if owner.team and owner.team in ownership.teams:
            report.owned[label] = owner.team
        else:
            report.unowned.append(label)
            if owner.team:
                report.problems.append(f"{label}: team {owner.team!r} is not defined under teams")
    return report


def discover_workloads(kubeconfig: Path | None, namespaces: list[str]) -> list[ServiceRef]:
    """Deployments in the cluster (in `namespaces`, or all), with their team annotation if any."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)
    apps = client.AppsV1Api(api_client)
    if namespaces:
        items = [
            item for namespace in namespaces for item in apps.list_namespaced_deployment(namespace).items
        ]
    else:
        items = apps.list_deployment_for_all_namespaces().items
    refs: list[ServiceRef] = []
    for item in items:
        metadata = item.metadata
        if metadata is None or not metadata.name:
            continue
        marks = {**(metadata.labels or {}), **(metadata.annotations or {})}
        refs.append(
            ServiceRef(
                service=metadata.name,
                namespace=metadata.namespace,
                team_annotation=marks.get(TEAM_ANNOTATION),
            )
        )
    return refs


class OwnerLookup:
    """The owner of an incident's service for the paging channels, from the settings' ownership file
    and the workload's `backout.dev/team` annotation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def ownership(self) -> OwnershipFile | None:
        path = self.settings.ownership_file
        if path is None:
            return None
        try:
            return load_ownership(path)
        except OwnershipError as exc:
            raise ApplicationError(str(exc), type="OwnershipError", non_retryable=True) from exc

    def _kubeconfig(self) -> Path | None:
        if self.settings.kubeconfig is not None:
            return self.settings.kubeconfig
        env = os.environ.get("KUBECONFIG")
        return Path(env) if env else None

    def owner(self, request: OwnerRequest, ownership: OwnershipFile | None = None) -> Owner:
        workload_team = None
        kubeconfig = self._kubeconfig()
        if kubeconfig is not None and request.service and request.namespace:
            workload_team = read_workload_team(request.service, request.namespace, kubeconfig)
        return resolve_owner(request, ownership if ownership is not None else self.ownership(), workload_team)

    def for_report(self, report: IncidentReport) -> tuple[Owner, str]:
        """The team named in the report wins (the runbook chose it); else look the service up.

        A broken ownership file must not silence a page: it falls back to the global settings
        and says so in the returned note.
        """
        try:
            ownership = self.ownership()
        except ApplicationError as exc:
            return Owner(source="none"), f"ownership file unusable, used the global settings: {exc}"
        if report.team and ownership is not None and report.team in ownership.teams:
            return ownership.owner_of_team(report.team, "ownership_file"), ""
        request = OwnerRequest(service=report.service, namespace=report.namespace, labels=report.labels)
        return self.owner(request, ownership or OwnershipFile()), ""
