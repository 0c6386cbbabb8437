"""Activity used by other workflows (golden-set evals) to open or join an incident."""

from __future__ import annotations

from temporalio import activity

from incidents.models import OpenIncidentRequest
from incidents.service import IncidentBehaviour, open_or_join
from worker.settings import current_settings


@activity.defn(name="open_or_join_incident")
async def open_or_join_incident(request: OpenIncidentRequest) -> str:
    client = activity.client()
    behaviour = IncidentBehaviour(current_settings())
    handle = await open_or_join(client, behaviour, request)
    return handle.id


ACTIVITIES = [open_or_join_incident]
