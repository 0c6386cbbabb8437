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


def _bounded_mapping(
    items: dict[str, str], first: tuple[str, ...], count: int, value_chars: int, total_chars: int
) -> tuple[dict[str, str], list[str]]:
    """At most `count` entries and `total_chars` characters, names and values clipped; what was cut."""
    ordered = [name for name in first if name in items] + sorted(name for name in items if name not in first)
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


def bounded_alert(alert: Alert) -> Alert:
    """The alert within the per-alert limits; anything cut is listed in its truncated annotation."""
    labels, labels_cut = _bounded_mapping(
        alert.labels, _FIRST_LABELS, MAX_LABELS, MAX_LABEL_VALUE_CHARS, MAX_LABEL_CHARS
    )
    annotations_in = {k: v for k, v in alert.annotations.items() if k != TRUNCATED_ANNOTATION}
    annotations, annotations_cut = _bounded_mapping(
        annotations_in, (), MAX_ANNOTATIONS, MAX_ANNOTATION_VALUE_CHARS, MAX_ANNOTATION_CHARS
    )
    fingerprint = (
        alert.fingerprint if len(alert.fingerprint) <= MAX_FINGERPRINT_CHARS else alert.fingerprint[:64]
    )
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


def within_signal_budget(alerts: list[Alert]) -> tuple[list[Alert], int]:
    """Firing alerts first, each bounded, up to MAX_SIGNAL_BYTES whole and twice that slimmed; the
    number of alerts that did not fit."""
    ordered = sorted((bounded_alert(alert) for alert in alerts), key=lambda a: a.status != "firing")
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
