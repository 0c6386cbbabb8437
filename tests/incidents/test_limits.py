"""incidents.limits: the shortcuts taken for an alert already inside its bounds give exactly what the
full computation gives, and the size bound is never below the real size."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest

from incidents import limits
from incidents.limits import (
    MAX_LABEL_CHARS,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    MAX_SIGNAL_BYTES,
    alert_json_bound,
    bounded_alert,
    within_signal_budget,
)
from incidents.models import Alert

# Characters JSON escapes (to 2 or 6 characters), multi-byte ones, and plain ones.
NASTY = '"\\\n\t\x00\x1f\u2028é€😀' + string.ascii_letters


def _text(rng: random.Random, longest: int) -> str:
    return "".join(rng.choice(NASTY) for _ in range(rng.randint(0, longest)))


def _alert(rng: random.Random, labels: int, value_chars: int) -> Alert:
    starts = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randint(0, 10**12))
    return Alert(
        fingerprint=_text(rng, 140),
        status=rng.choice(["firing", "resolved"]),
        labels={f"l{i}{_text(rng, 6)}": _text(rng, value_chars) for i in range(labels)},
        annotations={f"a{i}": _text(rng, value_chars) for i in range(rng.randint(0, 4))},
        starts_at=starts,
        ends_at=rng.choice([None, starts.astimezone(timezone(timedelta(hours=-9, minutes=-30)))]),
        generator_url=rng.choice([None, "http://prometheus/graph?g0.expr=" + _text(rng, 80)]),
    )


@pytest.mark.parametrize("seed", range(40))
def test_the_size_bound_is_never_below_the_real_size(seed: int) -> None:
    rng = random.Random(seed)
    alert = _alert(rng, rng.randint(0, 12), rng.choice([8, 64, 300]))
    assert alert_json_bound(alert) >= len(alert.model_dump_json())
    empty = Alert(fingerprint="", status="resolved", starts_at=alert.starts_at, ends_at=alert.ends_at)
    assert alert_json_bound(empty) >= len(empty.model_dump_json())


def _full_mapping(items: dict[str, str], first: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """_bounded_mapping with its shortcut disabled."""
    original = limits._within
    limits._within = lambda *args: False  # type: ignore[assignment]
    try:
        return limits._bounded_mapping(items, first, MAX_LABELS, MAX_LABEL_VALUE_CHARS, MAX_LABEL_CHARS)
    finally:
        limits._within = original


@pytest.mark.parametrize("seed", range(40))
def test_the_shortcut_keeps_what_the_full_bounding_keeps(seed: int) -> None:
    rng = random.Random(seed)
    # Some inside every bound, some over the count, a value or the total.
    alert = _alert(rng, rng.choice([3, 10, MAX_LABELS + 2]), rng.choice([20, 120, MAX_LABEL_VALUE_CHARS + 5]))
    labels = {**alert.labels, "service": "chat", "alertname": "Burn"}
    shortcut = limits._bounded_mapping(
        labels, limits._FIRST_LABELS, MAX_LABELS, MAX_LABEL_VALUE_CHARS, MAX_LABEL_CHARS
    )
    full = _full_mapping(labels, limits._FIRST_LABELS)
    assert shortcut == full
    assert list(shortcut[0]) == list(full[0])  # the same order too
    assert list(shortcut[0])[:2] == ["alertname", "service"]


def test_within_budget_alerts_are_all_carried_as_before() -> None:
    rng = random.Random(7)
    alerts = [_alert(rng, 6, 40) for _ in range(30)]
    carried, dropped = within_signal_budget(alerts)
    assert dropped == 0
    assert carried == sorted((bounded_alert(a) for a in alerts), key=lambda a: a.status != "firing")
    assert sum(len(a.model_dump_json()) for a in carried) <= MAX_SIGNAL_BYTES


def test_over_budget_alerts_are_still_slimmed_then_counted() -> None:
    big = Alert(
        fingerprint="fp",
        status="firing",
        labels={"alertname": "Big"},
        annotations={f"a{i}": "x" * 2000 for i in range(2)},
        starts_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    alerts = [big.model_copy(update={"fingerprint": f"fp{i}"}) for i in range(200)]
    carried, dropped = within_signal_budget(alerts)
    whole = [a for a in carried if limits.TRUNCATED_ANNOTATION not in a.annotations]
    assert 0 < len(whole) < len(carried) <= len(alerts)
    assert dropped == len(alerts) - len(carried)
