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
    """At most `per_minute` notifications delivered to one incident per minute by this API process.

    Duplicates never count (they are answered before); over the rate a notification is a 503, so
    the sender retries later and nothing is lost, while one incident's Temporal history grows at a
    bounded pace however hard a sender pushes. Bounded memory: incidents idle a minute are forgotten.
    """

    def __init__(self, per_minute: int, capacity: int = 50_000) -> None:
        self.per_minute = per_minute
        self._capacity = capacity
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def admit(self, incident_id: str, now: float | None = None) -> bool:
        moment = time.monotonic() if now is None else now
        started, count = self._windows.get(incident_id, (moment, 0))
        if moment - started >= 60.0:
            started, count = moment, 0
        if count >= self.per_minute:
            return False
        self._windows[incident_id] = (started, count + 1)
        self._windows.move_to_end(incident_id)
        while len(self._windows) > self._capacity:
            self._windows.popitem(last=False)
        return True
