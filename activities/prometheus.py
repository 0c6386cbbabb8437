"""Prometheus HTTP API reads: range queries for metric evidence.

Every way a query can fail is a PrometheusError whose `kind` says which (unreachable, timeout,
invalid answer, query refused), never another exception: evidence is optional, so a broken
Prometheus costs at most its timeout and is noted, and the incident decides on what is known.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from config.redact import redact_text

FailureKind = Literal["unreachable", "timeout", "invalid", "failed"]


class PrometheusError(RuntimeError):
    def __init__(self, message: str, kind: FailureKind = "failed") -> None:
        super().__init__(message)
        self.kind: FailureKind = kind

    @property
    def outage(self) -> bool:
        """Prometheus itself is away or too slow: asking it again now would only wait again."""
        return self.kind in ("unreachable", "timeout")


class RangeSeries(BaseModel):
    labels: dict[str, str]
    points: list[tuple[datetime, float]]


def query_range(
    base_url: str, query: str, start: datetime, end: datetime, step_s: float = 15.0, timeout_s: float = 10.0
) -> list[RangeSeries]:
    """`/api/v1/query_range`; NaN and Inf samples are dropped. Raises PrometheusError only."""
    params: dict[str, str | float] = {
        "query": query,
        "start": start.timestamp(),
        "end": end.timestamp(),
        "step": step_s,
    }
    url = f"{base_url.rstrip('/')}/api/v1/query_range"
    try:
        # One deadline for connecting, sending and reading: a server that trickles bytes is slow too.
        response = httpx.get(url, params=params, timeout=httpx.Timeout(timeout_s))
    except httpx.TimeoutException as exc:
        raise PrometheusError(
            f"prometheus at {base_url} did not answer within {timeout_s:g}s ({type(exc).__name__})", "timeout"
        ) from exc
    except httpx.HTTPError as exc:
        raise PrometheusError(f"prometheus at {base_url} unreachable: {exc}", "unreachable") from exc
    try:
        body = response.json()
    except ValueError:
        raise PrometheusError(
            f"prometheus at {base_url} answered HTTP {response.status_code} that is not JSON: "
            f"{response.text[:80]!r}",
            "invalid",
        ) from None
    if not isinstance(body, dict):
        raise PrometheusError(f"prometheus at {base_url} answered JSON that is not an object", "invalid")
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(
            f"prometheus query {query!r} failed: {body.get('error') or f'HTTP {response.status_code}'}"
        )
    try:
        return _series(body)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise PrometheusError(
            f"prometheus at {base_url} answered a matrix backout cannot read ({type(exc).__name__}: {exc})",
            "invalid",
        ) from None


def _series(body: dict[str, Any]) -> list[RangeSeries]:
    data = body["data"]
    if data.get("resultType", "matrix") != "matrix":
        raise ValueError(f"resultType {data.get('resultType')!r}, not matrix")
    series: list[RangeSeries] = []
    for item in data["result"]:
        points = []
        for stamp, value in item.get("values", []):
            number = float(value)
            if math.isfinite(number):
                points.append((datetime.fromtimestamp(float(stamp), tz=UTC), number))
        series.append(
            RangeSeries(labels={str(k): str(v) for k, v in item.get("metric", {}).items()}, points=points)
        )
    return series


class QueryBudget:
    """How long one incident's evidence may wait on Prometheus, and what it did not get.

    Each query waits at most `timeout_s`, all of them together at most `budget_s`; once
    Prometheus is found away or too slow the remaining queries are not sent (asking again now
    would only wait again). Every query that brought nothing is in `missing` with its reason.
    """

    def __init__(
        self, timeout_s: float, budget_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout_s = timeout_s
        self.budget_s = budget_s
        self._clock = clock
        self._started = clock()
        self._outage: PrometheusError | None = None
        self.missing: dict[str, str] = {}

    def range(
        self, base_url: str, name: str, query: str, start: datetime, end: datetime, step_s: float
    ) -> list[RangeSeries] | None:
        """The query's series, or None (noted in `missing`) when it failed or was not sent."""
        if self._outage is not None:
            self.missing[name] = f"not sent: {self._outage}"
            return None
        left = self.budget_s - (self._clock() - self._started)
        if left < 0.5:
            self.missing[name] = f"not sent: the evidence budget of {self.budget_s:g}s is spent"
            return None
        try:
            return query_range(
                base_url, query, start, end, step_s=step_s, timeout_s=min(self.timeout_s, left)
            )
        except PrometheusError as exc:
            if exc.outage:
                self._outage = exc
            self.missing[name] = str(exc)
            return None

    def notes(self) -> list[str]:
        """One line per missing query; credentials in URLs masked."""
        return [redact_text(f"evidence {name} missing: {why}") for name, why in self.missing.items()]
