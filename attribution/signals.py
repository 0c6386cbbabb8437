"""Signal families: what a metric's name says it measures, and how much it may weigh as evidence.

A symptom is an error, latency, quality or resource symptom. Evidence in the symptom's
own family counts fully, other health families at reduced weight; resource signals
(CPU, memory, GPU cache) only break ties unless the symptom is itself a resource
symptom, because every fresh pod differs from an old one there. Traffic is context
(load), never evidence against a change.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

Family = Literal["errors", "latency", "quality", "resource", "traffic", "other"]
HEALTH_FAMILIES: tuple[Family, ...] = ("errors", "latency", "quality", "other")

_PATTERNS: tuple[tuple[Family, re.Pattern[str]], ...] = (
    (
        "quality",
        re.compile(
            r"eval|quality|precision|recall|hallucinat|faithful|grounded|relevan|accuracy|judge|rouge|bleu|"
            r"toxicity|refusal|score"
        ),
    ),
    (
        "errors",
        re.compile(r"error|fail|fault|5xx|4xx|exception|success|availab|timeout|reject|crash|restart"),
    ),
    ("resource", re.compile(r"cpu|mem|gpu|heap|rss|kv_cache|cache_usage|util|disk|threads|(^|_)gc_|oom")),
    (
        "latency",
        re.compile(r"latency|ttft|duration|response_time|elapsed|(^|_)p\d\d|_ms$|_seconds$|wait|delay"),
    ),
    ("traffic", re.compile(r"(^|_)(requests?|throughput|rps|qps|calls|traffic|invocations)($|_)")),
)

# Weight of evidence in a family given the symptom's family (rows: symptom, columns: evidence).
_SAME = 1.0
_OTHER_HEALTH = 0.5
_RESOURCE_TIE_BREAK = 0.08


@lru_cache(maxsize=4096)
def family_of(name: str | None) -> Family:
    if not name:
        return "other"
    text = name.lower().replace("-", "_").replace(".", "_").replace(":", "_")
    for family, pattern in _PATTERNS:
        if pattern.search(text):
            return family
    return "other"


def symptom_family(metric: str | None) -> Family:
    """The symptom's family; an unnamed or unknown symptom counts as 'other' (any health signal)."""
    family = family_of(metric)
    return "other" if family == "traffic" else family


def family_weight(evidence: Family, symptom: Family) -> float:
    """How much a shift in an `evidence` series counts for a symptom of family `symptom`."""
    if evidence == "traffic":
        return 0.0
    if evidence == "resource":
        return _SAME if symptom == "resource" else _RESOURCE_TIE_BREAK
    if symptom in ("other", "resource"):
        return _SAME if symptom == "other" else _OTHER_HEALTH
    if evidence == symptom:
        return _SAME
    return _OTHER_HEALTH
