"""What a bench reports beside its timings: how loaded the shared machine was, and how much memory
the API and worker processes held."""

from __future__ import annotations

import os

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

# The API's /metrics: its own process metrics, and the worker's resident memory under `backout up`.
API_RSS_METRIC = "process_resident_memory_bytes"
WORKER_RSS_METRIC = "backout_worker_resident_memory_bytes"


class Load(BaseModel):
    """The load average (1 and 5 minutes) when the measurement started and when it ended, and the
    CPUs it is shared between: a ratio measured at load 4 on 2 CPUs means little."""

    cpus: int
    load_1m_start: float
    load_5m_start: float
    load_1m_end: float | None = None
    load_5m_end: float | None = None

    @classmethod
    def now(cls) -> Load:
        one, five, _ = os.getloadavg()
        return cls(cpus=os.cpu_count() or 0, load_1m_start=round(one, 2), load_5m_start=round(five, 2))

    def ended(self) -> Load:
        one, five, _ = os.getloadavg()
        return self.model_copy(update={"load_1m_end": round(one, 2), "load_5m_end": round(five, 2)})


class Memory(BaseModel):
    """Resident memory of the API and the worker process (MiB), as the API's /metrics reports it."""

    api_rss_mib: float | None = None
    worker_rss_mib: float | None = None


def memory_from_metrics(text: str) -> Memory:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in (API_RSS_METRIC, WORKER_RSS_METRIC):
            for sample in family.samples:
                found[family.name] = found.get(family.name, 0.0) + sample.value
    api, worker = found.get(API_RSS_METRIC), found.get(WORKER_RSS_METRIC)
    return Memory(
        api_rss_mib=round(api / 2**20, 1) if api is not None else None,
        worker_rss_mib=round(worker / 2**20, 1) if worker is not None else None,
    )


async def read_memory(client: httpx.AsyncClient) -> Memory:
    """The API's and worker's RSS from GET /metrics (the client carries the operator token); empty
    when /metrics does not answer."""
    try:
        response = await client.get("/metrics")
    except httpx.HTTPError:
        return Memory()
    if response.status_code != 200:
        return Memory()
    return memory_from_metrics(response.text)
