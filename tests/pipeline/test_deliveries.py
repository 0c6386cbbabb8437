"""Twin notifications in flight share one delivery; failures reach every twin; nothing is remembered on failure."""

from __future__ import annotations

import asyncio

import pytest

from api.deliveries import Deliveries

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
