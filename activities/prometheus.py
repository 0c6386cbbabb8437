"""Prometheus HTTP API reads: range queries for metric evidence."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from pydantic import BaseModel


class PrometheusError(RuntimeError):
    pass


class RangeSeries(BaseModel):
    labels: dict[str, str]
    points: list[tuple[datetime, float]]


def query_range(
    base_url: str, query: str, start: datetime, end: datetime, step_s: float = 15.0, timeout_s: float = 10.0
) -> list[RangeSeries]:
    """`/api/v1/query_range`; NaN and Inf samples are dropped."""
    params: dict[str, str | float] = {
        "query": query,
        "start": start.timestamp(),
        "end": end.timestamp(),
        "step": step_s,
    }
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/api/v1/query_range", params=params, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise PrometheusError(f"prometheus at {base_url} unreachable: {exc}") from exc
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(
            f"prometheus query {query!r} failed: {body.get('error') or response.status_code}"
        )
    series: list[RangeSeries] = []
    for item in body["data"]["result"]:
        points = []
        for stamp, value in item.get("values", []):
            number = float(value)
            if number == number and abs(number) != float("inf"):
                points.append((datetime.fromtimestamp(float(stamp), tz=UTC), number))
        series.append(RangeSeries(labels=item.get("metric", {}), points=points))
    return series
