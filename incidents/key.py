"""The incident key: one incident per namespace + service (the alert group when no service is known).

Built once where a signal comes in (an alert source, the eval workflow) and carried as it is to
the incident: the starter, the workflow input. Its `workflow_id()` is the incident's id.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, ConfigDict

_SLUG = re.compile(r"[^a-z0-9-]+")

SERVICE_LABELS: tuple[str, ...] = ("service", "workload", "deployment", "app", "job")


class IncidentKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespace: str | None = None
    service: str | None = None
    group: str

    def workflow_id(self) -> str:
        """One incident per namespace + service; the alert group stands in when no service is known.

        Keying on the service (not on the Alertmanager group) lets a second alert group, a
        golden-set regression or a second bad deploy on the same service join the running
        incident instead of opening a rival one that would remediate in parallel.
        """
        scope = f"service\x1f{self.service}" if self.service else f"group\x1f{self.group}"
        raw = f"{self.namespace or ''}\x1f{scope}"
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]
        readable = _SLUG.sub("-", f"{self.namespace or '_'}-{self.service or '_'}".lower()).strip("-")[:60]
        return f"incident-{readable}-{digest}"


def service_from_labels(labels: dict[str, str]) -> str | None:
    for name in SERVICE_LABELS:
        value = labels.get(name)
        if value:
            return value
    return None
