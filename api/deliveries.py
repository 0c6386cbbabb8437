"""Webhook deliveries: what was delivered moments ago, and what is being delivered right now.

Two Alertmanager replicas (HA) flush the same group at the same tick, so their twin
notifications usually arrive while the first is still on its way to Temporal. A twin
of a delivery in flight waits for that delivery and shares its outcome (a 503 included,
so Alertmanager retries both); a twin of one delivered within the window is answered at
once. Only the incident's first notification of a kind costs a Temporal round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

DeliveryKey = tuple[str, str, str]
"""(incident id, Alertmanager group key, digest of the notification's content)."""


class Deliveries:
    """The last notification delivered per incident and alert group, for `ttl_s` seconds,
    and the deliveries in flight.

    Only the latest delivery per group is kept, so firing -> resolved -> firing is
    delivered in full; only successes are remembered, so a 503'd notification is
    delivered on Alertmanager's retry. Bounded: the oldest groups go first.
    """

    def __init__(self, ttl_s: float, capacity: int = 50_000) -> None:
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._latest: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._in_flight: dict[DeliveryKey, asyncio.Future[Any]] = {}

    def seen(self, key: DeliveryKey) -> bool:
        incident_id, group, digest = key
        latest = self._latest.get((incident_id, group))
        return latest is not None and latest[0] == digest and time.monotonic() - latest[1] < self._ttl_s

    def remember(self, key: DeliveryKey) -> None:
        if self._ttl_s <= 0:
            return
        incident_id, group, digest = key
        self._latest[(incident_id, group)] = (digest, time.monotonic())
        self._latest.move_to_end((incident_id, group))
        while len(self._latest) > self._capacity:
            self._latest.popitem(last=False)

    async def deliver_once(self, key: DeliveryKey, deliver: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """Run `deliver` unless an identical delivery is in flight; then share its outcome.

        Returns (result, True) for a twin that rode on another delivery, (result, False) otherwise.
        """
        while (running := self._in_flight.get(key)) is not None:
            try:
                return await asyncio.shield(running), True
            except asyncio.CancelledError:
                if running.cancelled():
                    continue  # the first delivery was abandoned: this one goes itself
                raise
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await deliver()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: no "never retrieved" warning when no twin waits
            raise
        finally:
            del self._in_flight[key]
        future.set_result(result)
        return result, False

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)


class IncidentThrottle:
    """What this API process delivers to one incident: at most `per_minute` notifications a minute
    and `bytes_per_hour` of signal payload an hour, or its share of them when `replicas` API
    processes run at once.

    Every signal is written into the incident's Temporal history, which Temporal ends (terminating
    the workflow: the incident never pages) past 50 MB. Duplicates never count (they are answered
    before); over either rate a notification is a 503, so the sender retries later and nothing is
    lost (Alertmanager's next notification carries the whole group), while one incident's history
    grows at a bounded pace however hard a sender pushes. Bounded memory: the least recently seen
    incidents are forgotten first.

    The counts are this process's own: with `replicas` API processes each takes 1/replicas of each
    budget, so the incident's history grows no faster than the budget whichever replicas the
    notifications reach (the bound is what matters; a replica that gets more than its share answers
    503 a little early and the sender comes back, possibly to another replica).
    """

    def __init__(
        self, per_minute: int, bytes_per_hour: int, replicas: int = 1, capacity: int = 50_000
    ) -> None:
        self.per_minute = max(1, per_minute // replicas)
        self.bytes_per_hour = max(1, bytes_per_hour // replicas)
        self._share = f" (this API replica's share of {replicas})" if replicas > 1 else ""
        self._capacity = capacity
        self._minutes: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._hours: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def refusal(self, incident_id: str, size: int, now: float | None = None) -> str | None:
        """None (and the notification counted) when it may be delivered now, else why not."""
        moment = time.monotonic() if now is None else now
        minute_start, count = self._window(self._minutes, incident_id, moment, 60.0)
        hour_start, sent = self._window(self._hours, incident_id, moment, 3600.0)
        if count >= self.per_minute:
            return f"more than {self.per_minute} notifications this minute{self._share}"
        if sent + size > self.bytes_per_hour:
            return f"more than {self.bytes_per_hour} bytes of alerts this hour{self._share}"
        self._remember(self._minutes, incident_id, (minute_start, count + 1))
        self._remember(self._hours, incident_id, (hour_start, sent + size))
        return None

    @staticmethod
    def _window(
        windows: OrderedDict[str, tuple[float, int]], key: str, moment: float, length_s: float
    ) -> tuple[float, int]:
        started, used = windows.get(key, (moment, 0))
        return (moment, 0) if moment - started >= length_s else (started, used)

    def _remember(
        self, windows: OrderedDict[str, tuple[float, int]], key: str, value: tuple[float, int]
    ) -> None:
        windows[key] = value
        windows.move_to_end(key)
        while len(windows) > self._capacity:
            windows.popitem(last=False)
