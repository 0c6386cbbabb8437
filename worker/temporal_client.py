"""Temporal client construction: one data converter (pydantic) everywhere."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config import Settings


async def connect(settings: Settings, attempts: int = 1, delay_s: float = 0.5) -> Client:
    last: Exception | None = None
    for attempt in range(max(1, attempts)):
        try:
            return await Client.connect(
                settings.effective_temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
            )
        except Exception as exc:  # connection refused while the server starts
            last = exc
            if attempt + 1 < attempts:
                await asyncio.sleep(delay_s)
    raise ConnectionError(f"cannot reach Temporal at {settings.effective_temporal_address}: {last}")
