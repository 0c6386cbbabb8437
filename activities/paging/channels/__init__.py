"""Paging channels, one module each, found here by module and ordered by `position`.

Adding a channel is one module in this package (and its settings in the settings model).
"""

from __future__ import annotations

from activities.paging.channel import PagingChannel
from config import Settings
from incidents.discovery import classes_in, modules_of


def _discover() -> dict[str, type[PagingChannel]]:
    found = classes_in(modules_of(__name__, __path__), PagingChannel)  # type: ignore[type-abstract]
    return {channel.name: channel for channel in sorted(found, key=lambda c: (c.position, c.name))}


CHANNELS: dict[str, type[PagingChannel]] = _discover()
# What an incident started before channels were listed in its input calls (replays stay the same).
DEFAULT_CHANNELS: tuple[str, ...] = ("pagerduty", "slack")


def enabled_channels(settings: Settings) -> list[str]:
    """The channels a new incident calls, in order."""
    return [name for name, channel in CHANNELS.items() if channel.enabled(settings)]
