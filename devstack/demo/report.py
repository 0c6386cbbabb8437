"""The incident report at the end of a demo (or of any incident): data, terminal view, HTML with a plot."""

from __future__ import annotations

import html
import io
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from incidents.bundle import Change, IncidentBundle
from incidents.models import IncidentView

MarkerKind = Literal["change", "bad_change", "detected", "rollback", "recovered"]


class Marker(BaseModel):
    at: datetime
    label: str
    kind: MarkerKind


class SymptomSeries(BaseModel):
    name: str
    points: list[tuple[datetime, float]] = Field(default_factory=list)


class Phases(BaseModel):
    """Seconds spent in each phase, from the first bad sample to verified recovery."""

    detection_s: float | None = None
    attribution_s: float | None = None
    remediation_s: float | None = None
    verification_s: float | None = None
    time_to_recovery_s: float | None = None


class IncidentReportDoc(BaseModel):
    incident: IncidentView
    changes: list[Change] = Field(default_factory=list)
    bundle: IncidentBundle | None = Field(
        default=None,
        description="the evidence the attribution saw (spec v1): replay it with `backout attribute`",
    )
    expected_culprit: str | None = None
    culprit: str | None = None
    culprit_correct: bool | None = None
    rolled_back: list[str] = Field(default_factory=list)
    recovered: bool = False
    pages: dict[str, list[str]] = Field(default_factory=dict)
    phases: Phases = Field(default_factory=Phases)
    symptom: SymptomSeries | None = None
    markers: list[Marker] = Field(default_factory=list)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 1)


def first_entry(view: IncidentView, predicate: str) -> datetime | None:
    """Time of the first timeline entry whose step matches `predicate`."""
    return next((entry.at for entry in view.timeline if entry.step == predicate), None)


def phases_for(view: IncidentView, first_bad_sample: datetime | None) -> Phases:
    opened = view.opened_at
    attributed = first_entry(view, "attribute")
    remediated = next((record.at for record in view.actions if record.action == "rollback"), None)
    recovered = first_entry(view, "recovered") if view.state == "recovered" else None
    return Phases(
        detection_s=_seconds(first_bad_sample, opened),
        attribution_s=_seconds(opened, attributed),
        remediation_s=_seconds(attributed, remediated),
        verification_s=_seconds(remediated, recovered),
        time_to_recovery_s=_seconds(first_bad_sample, recovered),
    )


def render_terminal(doc: IncidentReportDoc, console: Console) -> None:
    view = doc.incident
    timeline = Table(title="Timeline", show_lines=False, expand=True)
    timeline.add_column("time (UTC)", no_wrap=True)
    timeline.add_column("kind")
    timeline.add_column("what")
    for entry in view.timeline:
        timeline.add_row(entry.at.strftime("%H:%M:%S"), entry.kind, entry.message)
    ranking = Table(title="Ranked culprits", expand=True)
    ranking.add_column("#")
    ranking.add_column("change")
    ranking.add_column("p", justify="right")
    ranking.add_column("evidence")
    by_id = {change.id: change for change in doc.changes}
    for index, ranked in enumerate((view.attribution.ranking if view.attribution else [])[:5], start=1):
        change = by_id.get(ranked.change_id)
        label = f"{ranked.change_id}" + (f" ({change.kind} on {change.service})" if change else "")
        ranking.add_row(str(index), label, f"{ranked.probability:.2f}", "; ".join(ranked.reasons[:2]))
    actions = Table(title="Actions", expand=True)
    actions.add_column("action")
    actions.add_column("mode")
    actions.add_column("outcome")
    actions.add_column("target / message")
    for record in view.actions:
        actions.add_row(record.action, record.mode, str(record.outcome), record.target or record.message)
    phases = doc.phases
    verdict = (
        f"state [bold]{view.state}[/]; culprit {doc.culprit or '-'}"
        + ("" if doc.culprit_correct is None else (" (correct)" if doc.culprit_correct else " (WRONG)"))
        + f"; time to recovery {phases.time_to_recovery_s}s (detection {phases.detection_s}s, attribution "
        f"{phases.attribution_s}s, remediation {phases.remediation_s}s, verification {phases.verification_s}s)"
    )
    pages = "\n".join(
        f"{channel}: {len(events)} ({', '.join(events)})" for channel, events in doc.pages.items()
    )
    console.print(
        Panel(Group(verdict, timeline, ranking, actions, pages or "no pages"), title=f"Incident {view.id}")
    )
    if view.summary:
        console.print(Panel(view.summary, title="Root-cause summary"))


def plot_svg(doc: IncidentReportDoc) -> str:
    """The symptom series with change, detection and rollback markers, as inline SVG."""
    svg = render_plot(doc, "svg").decode("utf-8")
    return svg[svg.index("<svg") :]


def render_plot(doc: IncidentReportDoc, image_format: str) -> bytes:
    """The plot as an image file's bytes ("svg", "png", ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import DateFormatter, date2num

    figure, axis = plt.subplots(figsize=(10, 3.6), dpi=100)
    if doc.symptom and doc.symptom.points:
        times = [date2num(point[0]) for point in doc.symptom.points]
        values = [point[1] for point in doc.symptom.points]
        axis.plot(times, values, color="#1f5fa8", linewidth=1.8, label=doc.symptom.name)
        axis.set_ylabel(doc.symptom.name)
    colours = {
        "change": "#888888",
        "bad_change": "#c0392b",
        "detected": "#e67e22",
        "rollback": "#27ae60",
        "recovered": "#16a085",
    }
    for marker in doc.markers:
        axis.axvline(date2num(marker.at), color=colours[marker.kind], linestyle="--", linewidth=1.2)
        axis.annotate(
            marker.label,
            xy=(date2num(marker.at), 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color=colours[marker.kind],
        )
    axis.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
    axis.set_xlabel("time (UTC)")
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format)
    plt.close(figure)
    return buffer.getvalue()


def render_html(doc: IncidentReportDoc) -> str:
    view = doc.incident
    esc = html.escape
    rows = "".join(
        f"<tr><td>{entry.at:%H:%M:%S}</td><td>{esc(entry.kind)}</td><td>{esc(entry.message)}</td></tr>"
        for entry in view.timeline
    )
    ranking = "".join(
        f"<tr><td>{esc(r.change_id)}</td><td>{r.probability:.2f}</td><td>{esc('; '.join(r.reasons))}</td></tr>"
        for r in (view.attribution.ranking if view.attribution else [])
    )
    actions = "".join(
        f"<tr><td>{esc(a.action)}</td><td>{esc(a.mode)}</td><td>{esc(str(a.outcome))}</td>"
        f"<td>{esc(a.target or '')}</td><td><pre>{esc(a.diff)}</pre></td></tr>"
        for a in view.actions
    )
    phases = doc.phases
    pages = "".join(
        f"<li>{esc(channel)}: {esc('; '.join(lines))}</li>" for channel, lines in doc.pages.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>backout incident {esc(view.id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;width:100%;margin:1em 0}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}}pre{{margin:0;white-space:pre-wrap}}
.state{{font-size:1.3em}}</style></head><body>
<h1>Incident {esc(view.id)}</h1>
<p class="state">State: <b>{esc(view.state)}</b> &middot; service {esc(view.service or "-")} in {esc(view.namespace or "-")}
&middot; culprit <b>{esc(doc.culprit or "-")}</b>{"" if doc.culprit_correct is None else (" (correct)" if doc.culprit_correct else " (wrong)")}</p>
<p>Time to recovery: {phases.time_to_recovery_s}s (detection {phases.detection_s}s, attribution {phases.attribution_s}s,
remediation {phases.remediation_s}s, verification {phases.verification_s}s)</p>
<h2>Symptom</h2>{plot_svg(doc)}
<h2>Root-cause summary</h2><pre>{esc(view.summary)}</pre>
<h2>Ranked culprits</h2><table><tr><th>change</th><th>probability</th><th>evidence</th></tr>{ranking}</table>
<h2>Actions</h2><table><tr><th>action</th><th>mode</th><th>outcome</th><th>target</th><th>diff</th></tr>{actions}</table>
<h2>Pages</h2><ul>{pages}</ul>
<h2>Timeline</h2><table><tr><th>time</th><th>kind</th><th>what</th></tr>{rows}</table>
</body></html>
"""
