"""Paging channels, one module each, found here by module and ordered by `position`.

Adding a channel is one module in this package (and its settings in the settings model).
"""

from __future__ import annotations

import importlib
import pkgutil

from activities.paging.channel import PagingChannel
from config import Settings


def _discover() -> dict[str, type[PagingChannel]]:
    found: list[type[PagingChannel]] = []
    for module in pkgutil.iter_modules(__path__):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        found.extend(
            value
            for value in vars(loaded).values()
            if isinstance(value, type)
            and issubclass(value, PagingChannel)
            and value.__module__ == loaded.__name__
        )
    return {channel.name: channel for channel in sorted(found, key=lambda c: (c.position, c.name))}


CHANNELS: dict[str, type[PagingChannel]] = _discover()
# What an incident started before channels were listed in its input calls (replays stay the same).
DEFAULT_CHANNELS: tuple[str, ...] = ("pagerduty", "slack")


def enabled_channels(settings: Settings) -> list[str]:
    """The channels a new incident calls, in order."""
    return [name for name, channel in CHANNELS.items() if channel.enabled(settings)]
