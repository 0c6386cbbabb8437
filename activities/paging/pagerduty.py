"""PagerDuty Events API v2 through the `pagerduty` package (7.x, HTTP via httpx2)."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

import httpx2
import pagerduty

from activities.paging.base import DeliveryError, Pager, PagerAlert, PagerChange

# The client sleeps with time.sleep between its own attempts; keep them few and short
# so the activity's retry policy (with Temporal's backoff) owns real retries.
_CLIENT_ATTEMPTS_PER_STATUS = 1
_CLIENT_SLEEP_S = 0.2
_REQUEST_TIMEOUT_S = 10.0

DEDUP_PREFIX = "backout/"


def dedup_key_for(incident_id: str) -> str:
    """Stable PagerDuty dedup key from the incident id alone (never from a title)."""
    key = f"{DEDUP_PREFIX}{incident_id}"
    if len(key) <= 255:
        return key
    digest = hashlib.sha256(incident_id.encode("utf-8")).hexdigest()
    return f"{DEDUP_PREFIX}{incident_id[:180]}~{digest[:32]}"


def _status_error(exc: pagerduty.HttpError, action: str) -> DeliveryError:
    status = exc.response.status_code if exc.response is not None else None
    body = exc.response.text[:300] if exc.response is not None else ""
    if status is None:
        return DeliveryError("pagerduty", f"{action} failed: {exc}", retryable=True)
    retryable = status == 429 or status >= 500
    hint = "rate limited" if status == 429 else ("server error" if status >= 500 else "rejected")
    return DeliveryError(
        "pagerduty", f"{action} {hint} (HTTP {status}): {body}", retryable=retryable, status=status
    )


class PagerDutyPager(Pager):
    name = "pagerduty"

    def __init__(self, routing_key: str, base_url: str, ca_file: Path | None = None) -> None:
        if not base_url.startswith("https://"):
            raise ValueError(f"pagerduty_events_url must be https, got {base_url!r}")
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._client = pagerduty.EventsApiV2Client(routing_key, base_url=base_url.rstrip("/"), verify=verify)
        self._client.timeout = _REQUEST_TIMEOUT_S  # type: ignore[assignment]
        self._client.sleep_timer = _CLIENT_SLEEP_S
        self._client.sleep_timer_base = 1
        self._client.max_network_attempts = 0
        # A status with retry 0 is retried forever when it is 429: cap every retried status.
        for status in (429, 500, 502, 503, 504):
            self._client.retry[status] = _CLIENT_ATTEMPTS_PER_STATUS

    def close(self) -> None:
        self._client.close()

    def _call(self, action: str, fn: object, *args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except pagerduty.HttpError as exc:
            raise _status_error(exc, action) from exc
        except (pagerduty.Error, httpx2.HTTPError) as exc:
            raise DeliveryError("pagerduty", f"{action} failed: {exc}", retryable=True) from exc

    def trigger(self, alert: PagerAlert) -> str:
        payload: dict[str, object] = {}
        for field, value in (
            ("component", alert.component),
            ("group", alert.group),
            ("timestamp", alert.timestamp),
        ):
            if value:
                payload[field] = value
        if alert.alert_class:
            payload["class"] = alert.alert_class
        key = self._call(
            "trigger",
            self._client.trigger,
            summary=alert.summary,
            source=alert.source,
            dedup_key=alert.dedup_key,
            severity=alert.severity,
            payload=payload or None,
            custom_details=alert.custom_details,
            links=alert.links or None,
        )
        return str(key)

    def acknowledge(self, dedup_key: str) -> None:
        self._call("acknowledge", self._client.acknowledge, dedup_key)

    def resolve(self, dedup_key: str) -> None:
        self._call("resolve", self._client.resolve, dedup_key)

    def change_event(self, change: PagerChange) -> None:
        # send_change_event, not submit(): submit() without a timestamp crashes in 7.2.0.
        self._call(
            "change event",
            self._client.send_change_event,
            payload={
                "summary": change.summary,
                "source": change.source,
                "timestamp": change.timestamp,
                "custom_details": change.custom_details,
            },
            links=change.links or None,
        )
