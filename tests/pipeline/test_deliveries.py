"""Twin notifications in flight share one delivery; failures reach every twin; nothing is remembered on failure."""

from __future__ import annotations

import asyncio

import pytest

from api.deliveries import Deliveries, IncidentThrottle

KEY = ("inc-1", '{}:{alertname="X"}', "digest-a")


async def test_twins_in_flight_share_one_delivery() -> None:
    deliveries = Deliveries(ttl_s=60)
    release = asyncio.Event()
    calls = 0

    async def deliver() -> dict[str, str]:
        nonlocal calls
        calls += 1
        await release.wait()
        deliveries.remember(KEY)
        return {"status": "accepted"}

    first = asyncio.create_task(deliveries.deliver_once(KEY, deliver))
    await asyncio.sleep(0)
    twin = asyncio.create_task(deliveries.deliver_once(KEY, deliver))
    await asyncio.sleep(0)
    assert deliveries.in_flight == 1
    release.set()
    assert await first == ({"status": "accepted"}, False)
    assert await twin == ({"status": "accepted"}, True)
    assert calls == 1
    assert deliveries.in_flight == 0 and deliveries.seen(KEY)


async def test_a_failed_delivery_fails_its_twins_and_is_not_remembered() -> None:
    deliveries = Deliveries(ttl_s=60)
    release = asyncio.Event()

    async def deliver() -> None:
        await release.wait()
        raise RuntimeError("temporal is unreachable")

    first = asyncio.create_task(deliveries.deliver_once(KEY, deliver))
    await asyncio.sleep(0)
    twin = asyncio.create_task(deliveries.deliver_once(KEY, deliver))
    await asyncio.sleep(0)
    release.set()
    for task in (first, twin):
        with pytest.raises(RuntimeError, match="unreachable"):
            await task
    assert not deliveries.seen(KEY) and deliveries.in_flight == 0


async def test_a_twin_delivers_itself_when_the_first_is_abandoned() -> None:
    deliveries = Deliveries(ttl_s=60)
    started = asyncio.Event()
    calls = 0

    async def stuck() -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    async def deliver() -> str:
        nonlocal calls
        calls += 1
        return "delivered"

    first = asyncio.create_task(deliveries.deliver_once(KEY, stuck))
    await started.wait()
    twin = asyncio.create_task(deliveries.deliver_once(KEY, deliver))
    await asyncio.sleep(0)
    first.cancel()
    assert await twin == ("delivered", False)
    assert calls == 1


def test_only_the_latest_notification_per_group_is_remembered() -> None:
    deliveries = Deliveries(ttl_s=60, capacity=2)
    deliveries.remember(KEY)
    newer = (KEY[0], KEY[1], "digest-b")
    deliveries.remember(newer)
    assert deliveries.seen(newer) and not deliveries.seen(KEY)
    for group in ("g2", "g3"):
        deliveries.remember(("inc-1", group, "d"))
    assert not deliveries.seen(newer)  # the oldest group went first
    assert Deliveries(ttl_s=0).seen(KEY) is False


def test_api_replicas_share_an_incidents_budgets() -> None:
    """Each of two API processes takes half of each budget: together they let through what one would."""
    one = IncidentThrottle(per_minute=4, bytes_per_hour=1000)
    replicas = [IncidentThrottle(per_minute=4, bytes_per_hour=1000, replicas=2) for _ in range(2)]
    alone = [one.refusal("inc-1", 10, now=0.0) is None for _ in range(6)]
    together = [replicas[i % 2].refusal("inc-1", 10, now=0.0) is None for i in range(6)]
    assert sum(alone) == sum(together) == 4
    refusal = replicas[0].refusal("inc-1", 10, now=0.0)
    assert refusal is not None and "share of 2" in refusal
    big = [replicas[i % 2].refusal("inc-2", 300, now=0.0) is None for i in range(4)]
    assert big == [True, True, False, False]  # 2 x 300 of each replica's 500 bytes
