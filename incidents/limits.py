"""How much of what a sender says an incident keeps, so that no input can wedge one.

Temporal refuses a payload over 2 MB (and a gRPC message over 4 MB): an incident whose signals,
activity inputs, query answers or result grew past that would fail every workflow task and
never page anyone. Every number below is chosen so the worst case stays well inside it:

- one alert: at most MAX_LABELS labels and MAX_LABEL_CHARS of them in all, values clipped to
  MAX_LABEL_VALUE_CHARS; annotations likewise (MAX_ANNOTATIONS, MAX_ANNOTATION_CHARS); what is
  clipped or dropped is said in the alert's `backout.dev/truncated` annotation (about 7 KiB worst);
- one signal (one webhook notification): alerts up to MAX_SIGNAL_BYTES serialised; past that an
  alert keeps only its labels, and past twice that it is counted, not carried;
- one incident: MAX_INCIDENT_ALERTS alerts kept whole (about 700 KiB worst), the state of up to
  MAX_TRACKED_ALERTS more by fingerprint, a timeline of MAX_TIMELINE_ENTRIES entries (older alert
  signals fold into one line) with messages of MAX_MESSAGE_CHARS.

Pure: the API and the workflow state both apply these, and replays see the same results.
"""

from __future__ import annotations

from incidents.models import Alert

MAX_ALERTS_PER_NOTIFICATION = 1000
MAX_LABELS = 48
MAX_LABEL_NAME_CHARS = 128
MAX_LABEL_VALUE_CHARS = 256
MAX_LABEL_CHARS = 2048
MAX_ANNOTATIONS = 32
MAX_ANNOTATION_VALUE_CHARS = 2048
MAX_ANNOTATION_CHARS = 4096
MAX_FINGERPRINT_CHARS = 128
MAX_URL_CHARS = 2048
MAX_SIGNAL_BYTES = 256 * 1024
MAX_INCIDENT_ALERTS = 100
MAX_TRACKED_ALERTS = 5000
MAX_TIMELINE_ENTRIES = 300
MAX_DELIVERIES = 300
MAX_MESSAGE_CHARS = 1000
MAX_DIFF_CHARS = 16 * 1024

TRUNCATED_ANNOTATION = "backout.dev/truncated"
# Labels an incident reads first (its key, runbook matching, the report): kept before any other.
_FIRST_LABELS = (
    "alertname",
    "namespace",
    "service",
    "severity",
    "workload",
    "deployment",
    "app",
    "job",
    "team",
)


def clip(text: str, limit: int) -> str:
    """`text`, at most `limit` characters; a clipped text says how much it lost."""
    if len(text) <= limit:
        return text
    marker = f"…[+{len(text) - limit} chars]"
    return text[: max(0, limit - len(marker))] + marker


def _within(items: dict[str, str], count: int, value_chars: int, total_chars: int) -> bool:
    """Whether `items` is inside every bound already (nothing to clip or cut)."""
    if len(items) > count:
        return False
    used = 0
    for name, value in items.items():
        if len(name) > MAX_LABEL_NAME_CHARS or len(value) > value_chars:
            return False
        used += len(name) + len(value)
    return used <= total_chars


def _bounded_mapping(
    items: dict[str, str], first: tuple[str, ...], count: int, value_chars: int, total_chars: int
) -> tuple[dict[str, str], list[str]]:
    """At most `count` entries and `total_chars` characters, names and values clipped; what was cut."""
    ordered = [name for name in first if name in items]
    if len(ordered) < len(items):
        firsts = set(ordered)
        ordered += sorted(name for name in items if name not in firsts)
    if _within(items, count, value_chars, total_chars):
        return {name: items[name] for name in ordered}, []  # what the loop below keeps, without its work
    kept: dict[str, str] = {}
    cut: list[str] = []
    used = 0
    for name in ordered:
        value = items[name]
        short_name = clip(name, MAX_LABEL_NAME_CHARS)
        short_value = clip(value, value_chars)
        if len(kept) >= count or used + len(short_name) + len(short_value) > total_chars:
            cut.append(short_name)
            continue
        if short_name != name or short_value != value:
            cut.append(f"{short_name} (clipped)")
        kept[short_name] = short_value
        used += len(short_name) + len(short_value)
    return kept, cut


def bounded_fingerprint(fingerprint: str) -> str:
    """The fingerprint a bounded alert carries."""
    return fingerprint if len(fingerprint) <= MAX_FINGERPRINT_CHARS else fingerprint[:64]


def bounded_alert(alert: Alert) -> Alert:
    """The alert within the per-alert limits; anything cut is listed in its truncated annotation."""
    labels, labels_cut = _bounded_mapping(
        alert.labels, _FIRST_LABELS, MAX_LABELS, MAX_LABEL_VALUE_CHARS, MAX_LABEL_CHARS
    )
    annotations_in = {k: v for k, v in alert.annotations.items() if k != TRUNCATED_ANNOTATION}
    annotations, annotations_cut = _bounded_mapping(
        annotations_in, (), MAX_ANNOTATIONS, MAX_ANNOTATION_VALUE_CHARS, MAX_ANNOTATION_CHARS
    )
    fingerprint = bounded_fingerprint(alert.fingerprint)
    generator_url = (
        alert.generator_url if alert.generator_url and len(alert.generator_url) <= MAX_URL_CHARS else None
    )
    notes = [
        *(["labels: " + ", ".join(labels_cut)] if labels_cut else []),
        *(["annotations: " + ", ".join(annotations_cut)] if annotations_cut else []),
        *(["generatorURL dropped"] if alert.generator_url and generator_url is None else []),
    ]
    earlier = alert.annotations.get(TRUNCATED_ANNOTATION)
    if earlier:
        notes.insert(0, earlier)
    if notes:
        annotations[TRUNCATED_ANNOTATION] = clip("; ".join(notes), 512)
    unchanged = (
        labels == alert.labels
        and annotations == alert.annotations
        and fingerprint == alert.fingerprint
        and generator_url == alert.generator_url
    )
    if unchanged:
        return alert
    return alert.model_copy(
        update={
            "labels": labels,
            "annotations": annotations,
            "fingerprint": fingerprint,
            "generator_url": generator_url,
        }
    )


def slim_alert(alert: Alert) -> Alert:
    """The alert without its annotations (kept: identity, state, labels), for a signal over budget."""
    return alert.model_copy(
        update={
            "annotations": {TRUNCATED_ANNOTATION: "annotations dropped: the notification was over budget"}
        }
    )


# The most an alert's JSON (Alert.model_dump_json) adds to its text: field names, status, the two
# times (microseconds and any offset), nulls, and 6 characters per label or annotation (quotes, colon,
# comma), with room to spare.
_ALERT_JSON_OVERHEAD = 256
_ENTRY_JSON_OVERHEAD = 6
# A character of text is at most 6 in JSON (\u0000 escapes).
_JSON_ESCAPE = 6


def alert_json_bound(alert: Alert) -> int:
    """An upper bound on len(alert.model_dump_json()), from the lengths of its texts alone."""
    chars = len(alert.fingerprint) + len(alert.generator_url or "")
    for mapping in (alert.labels, alert.annotations):
        for name, value in mapping.items():
            chars += len(name) + len(value) + _ENTRY_JSON_OVERHEAD
    return _JSON_ESCAPE * chars + _ALERT_JSON_OVERHEAD


def within_signal_budget(alerts: list[Alert]) -> tuple[list[Alert], int]:
    """Firing alerts first, each bounded, up to MAX_SIGNAL_BYTES whole and twice that slimmed; the
    number of alerts that did not fit."""
    ordered = sorted((bounded_alert(alert) for alert in alerts), key=lambda a: a.status != "firing")
    if sum(alert_json_bound(alert) for alert in ordered) <= MAX_SIGNAL_BYTES:
        return ordered, 0  # all fit whole even at their largest: no need to serialise them to know
    kept: list[Alert] = []
    used = 0
    dropped = 0
    for alert in ordered:
        size = len(alert.model_dump_json())
        if used + size <= MAX_SIGNAL_BYTES:
            kept.append(alert)
            used += size
            continue
        slim = slim_alert(alert)
        slim_size = len(slim.model_dump_json())
        if used + slim_size <= 2 * MAX_SIGNAL_BYTES:
            kept.append(slim)
            used += slim_size
        else:
            dropped += 1
    return kept, dropped
