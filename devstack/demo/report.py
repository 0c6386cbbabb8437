"""The incident report at the end of a demo (or of any incident): data, terminal view, HTML with plots.

The report shows its case in two plots over the same time axis, each with the change, detection,
rollback and recovery markers: first the symptom that opened the incident (the golden-set pass
rate for an eval trigger, the alert's own expression for an alert), then the per-version evidence
that decided the culprit (the culprit service's metric, old version against new). The terminal
report names the same two series. Timelines read in time order, without deliveries that sent
nothing.
"""

from __future__ import annotations

import html
import io
import itertools
import re
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, Field
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from devstack.demo.gitops_report import GitOpsReport, gitops_html, gitops_text
from incidents.bundle import Change, IncidentBundle, MetricSeries
from incidents.models import IncidentView, TimelineEntry

MarkerKind = Literal["change", "bad_change", "detected", "rollback", "recovered"]
SeriesRole = Literal["symptom", "old_version", "new_version", "series"]
MARKER_COLOURS: dict[str, str] = {
    "change": "#888888",
    "bad_change": "#c0392b",
    "detected": "#e67e22",
    "rollback": "#27ae60",
    "recovered": "#16a085",
}
MARKER_LABEL_CHARS = 40  # longer labels would run off the plot's height
SERIES_COLOURS: dict[str, str] = {
    "symptom": "#1f5fa8",
    "old_version": "#5b8c3a",
    "new_version": "#c0392b",
    "series": "#6c5b7b",
}


class Marker(BaseModel):
    at: datetime
    label: str
    kind: MarkerKind


class PlotSeries(BaseModel):
    label: str
    role: SeriesRole = "series"
    points: list[tuple[datetime, float]] = Field(default_factory=list)


class PlotPanel(BaseModel):
    """One plot: what it shows (in the words the summary uses), its series, where the numbers came from."""

    title: str
    y_label: str
    series: list[PlotSeries] = Field(default_factory=list)
    source: str = ""

    def has_points(self) -> bool:
        return any(series.points for series in self.series)


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
    symptom: PlotPanel | None = Field(default=None, description="the series that opened the incident")
    evidence: PlotPanel | None = Field(
        default=None, description="the per-version evidence behind the culprit"
    )
    markers: list[Marker] = Field(default_factory=list)
    gitops: GitOpsReport | None = Field(default=None, description="`backout demo --gitops`: the handshake")


# --- what to plot -------------------------------------------------------------------------------


def _where(view: IncidentView) -> str:
    return (view.service or "an unknown service") + (f" ({view.namespace})" if view.namespace else "")


def alert_expression(view: IncidentView) -> tuple[str, str] | None:
    """(alert name, PromQL expression) of the incident's first alert whose rule names one."""
    for alert in view.alerts:
        query = parse_qs(urlsplit(alert.generator_url or "").query)
        expressions = query.get("g0.expr") or query.get("expr")
        if expressions:
            return alert.labels.get("alertname", alert.fingerprint), expressions[0]
    return None


def symptom_panel(view: IncidentView, points: list[tuple[datetime, float]], source: str) -> PlotPanel:
    """The series that opened the incident, titled as the root-cause summary names it."""
    if view.eval is not None:
        metric = view.eval.metric
        return PlotPanel(
            title=f"golden-set {metric} of {_where(view)}: the eval that opened the incident",
            y_label=f"{metric} ({view.eval.manifest})",
            series=[PlotSeries(label=f"golden-set {metric}", role="symptom", points=points)],
            source=source,
        )
    named = alert_expression(view)
    name, expression = named if named else ("alert", "(the alert's rule names no expression)")
    return PlotPanel(
        title=f"{name} on {_where(view)}: {expression}",
        y_label="value of the alert's expression",
        series=[PlotSeries(label=expression, role="symptom", points=points)],
        source=source,
    )


class EvidenceChoice(BaseModel):
    """Which series decided the culprit: the culprit's metric on its service, per version."""

    change: Change
    metric: str
    old_version: str | None
    new_version: str | None


def evidence_choice(view: IncidentView, bundle: IncidentBundle | None) -> EvidenceChoice | None:
    """The culprit and the metric its reasons cite, with the versions the bundle compared."""
    if bundle is None or view.attribution is None or not view.attribution.ranking:
        return None
    top = view.attribution.ranking[0]
    change = next((item for item in bundle.changes if item.id == top.change_id), None)
    if change is None:
        return None
    own = [series for series in bundle.metrics if series.service == change.service]
    if not own:
        return None
    per_version = [series for series in own if series.version is not None]
    candidates = per_version or own
    reasons = " ".join(top.reasons)
    cited = [series.name for series in candidates if re.search(rf"\b{re.escape(series.name)}\b", reasons)]
    metric = cited[0] if cited else candidates[0].name
    return EvidenceChoice(
        change=change, metric=metric, old_version=change.from_version, new_version=change.to_version
    )


def _version_role(choice: EvidenceChoice, version: str | None) -> SeriesRole:
    if version is not None and version == choice.new_version:
        return "new_version"
    if version is not None and version == choice.old_version:
        return "old_version"
    return "series"


def evidence_panel(
    choice: EvidenceChoice, by_version: dict[str | None, list[tuple[datetime, float]]], source: str
) -> PlotPanel:
    """The culprit's metric, one line per version (new version first)."""
    order = {"new_version": 0, "old_version": 1, "series": 2}
    series = [
        PlotSeries(
            label=f"{choice.metric}, version {version}" if version else f"{choice.metric}, all versions",
            role=_version_role(choice, version),
            points=points,
        )
        for version, points in by_version.items()
    ]
    series.sort(key=lambda item: (order.get(item.role, 3), item.label))
    versions = f"{choice.old_version or '?'} against {choice.new_version or '?'}"
    return PlotPanel(
        title=f"{choice.metric} of {choice.change.service} per version ({versions}): the culprit's evidence",
        y_label=choice.metric,
        series=series,
        source=source,
    )


def bundle_evidence(choice: EvidenceChoice, bundle: IncidentBundle) -> PlotPanel:
    """The evidence as the attribution saw it: the bundle's series (up to detection)."""
    chosen: list[MetricSeries] = [
        series
        for series in bundle.metrics
        if series.service == choice.change.service and series.name == choice.metric
    ]
    by_version: dict[str | None, list[tuple[datetime, float]]] = {}
    for series in chosen:
        by_version.setdefault(series.version, []).extend(series.points)
    if any(version is not None for version in by_version):
        by_version.pop(None, None)  # the all-versions line adds nothing beside the versions
    return evidence_panel(choice, by_version, "the incident bundle (what the attribution saw)")


# --- phases and timeline --------------------------------------------------------------------------


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 1)


def first_entry(view: IncidentView, predicate: str) -> datetime | None:
    """Time of the first timeline entry whose step matches `predicate`."""
    return next((entry.at for entry in view.timeline_for_people() if entry.step == predicate), None)


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


def timeline_of(doc: IncidentReportDoc) -> list[TimelineEntry]:
    return doc.incident.timeline_for_people()


def describe_panel(panel: PlotPanel | None) -> str:
    """A plot in one line for the terminal: its title, and each series' first, lowest and last value."""
    if panel is None or not panel.has_points():
        return "no data" if panel is None else f"{panel.title} (no data)"
    parts = []
    for series in panel.series:
        if not series.points:
            continue
        values = [value for _, value in series.points]
        parts.append(
            f"{series.label}: {values[0]:.3f} -> min {min(values):.3f} -> {values[-1]:.3f} ({len(values)} points)"
        )
    return f"{panel.title}\n  " + "\n  ".join(parts) + f"\n  source: {panel.source}"


# --- terminal -------------------------------------------------------------------------------------


def render_terminal(doc: IncidentReportDoc, console: Console) -> None:
    view = doc.incident
    timeline = Table(title="Timeline", show_lines=False, expand=True)
    timeline.add_column("time (UTC)", no_wrap=True)
    timeline.add_column("kind")
    timeline.add_column("what")
    for entry in timeline_of(doc):
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
    plotted = (
        f"[bold]Symptom[/] (plot 1): {describe_panel(doc.symptom)}\n"
        f"[bold]Evidence[/] (plot 2): {describe_panel(doc.evidence)}"
    )
    pages = "\n".join(
        f"{channel}: {len(events)} ({', '.join(events)})" for channel, events in doc.pages.items()
    )
    console.print(
        Panel(
            Group(verdict, plotted, timeline, ranking, actions, pages or "no pages"),
            title=f"Incident {view.id}",
        )
    )
    if doc.gitops is not None:
        console.print(
            Panel(gitops_text(doc.gitops), title="GitOps: suspend, roll back, revert in Git, resume")
        )
    if view.summary:
        console.print(Panel(view.summary, title="Root-cause summary"))


# --- plots and HTML -------------------------------------------------------------------------------


def _time_range(doc: IncidentReportDoc) -> tuple[datetime, datetime] | None:
    stamps = [marker.at for marker in doc.markers]
    for panel in (doc.symptom, doc.evidence):
        if panel is not None:
            stamps += [point[0] for series in panel.series for point in series.points]
    return (min(stamps), max(stamps)) if stamps else None


def render_plot(doc: IncidentReportDoc, panel: PlotPanel, image_format: str) -> bytes:
    """One panel with every marker, over the report's common time range, as an image file's bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import DateFormatter, date2num

    figure, axis = plt.subplots(figsize=(10.5, 3.5), dpi=100)
    for series in panel.series:
        if not series.points:
            continue
        times, values = with_gaps(
            [date2num(point[0]) for point in series.points], [p[1] for p in series.points]
        )
        axis.plot(
            times,
            values,
            color=SERIES_COLOURS[series.role],
            linewidth=1.8,
            marker="o" if len(series.points) < 40 else None,
            markersize=3,
            label=series.label,
        )
    if not panel.has_points():
        axis.text(0.5, 0.5, "no data", transform=axis.transAxes, ha="center", va="center", color="#888888")
    for marker in doc.markers:
        colour = MARKER_COLOURS[marker.kind]
        axis.axvline(date2num(marker.at), color=colour, linestyle="--", linewidth=1.1)
        axis.annotate(
            marker.label
            if len(marker.label) <= MARKER_LABEL_CHARS
            else marker.label[: MARKER_LABEL_CHARS - 1] + "…",
            xy=(date2num(marker.at), 0.98),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7.5,
            color=colour,
        )
    span = _time_range(doc)
    if span is not None:
        axis.set_xlim(date2num(span[0]), date2num(span[1]))
    axis.set_title(panel.title, fontsize=10, loc="left")
    axis.set_ylabel(panel.y_label, fontsize=8.5)
    axis.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
    axis.set_xlabel("time (UTC)", fontsize=8.5)
    axis.grid(alpha=0.3)
    if any(series.points for series in panel.series):
        axis.legend(loc="lower left", fontsize=8, framealpha=0.85)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format)
    plt.close(figure)
    return buffer.getvalue()


def with_gaps(
    times: list[float], values: list[float], factor: float = 3.0
) -> tuple[list[float], list[float]]:
    """The points with a break (NaN) wherever samples stop for over `factor` times the usual spacing:
    a version that stopped reporting is drawn as absent, not as a straight line across."""
    if len(times) < 3:
        return times, values
    spacings = sorted(later - earlier for earlier, later in itertools.pairwise(times))
    usual = spacings[len(spacings) // 2]
    out_times, out_values = [times[0]], [values[0]]
    for index in range(1, len(times)):
        if usual > 0 and times[index] - times[index - 1] > factor * usual:
            out_times.append((times[index] + times[index - 1]) / 2)
            out_values.append(float("nan"))
        out_times.append(times[index])
        out_values.append(values[index])
    return out_times, out_values


def plot_svg(doc: IncidentReportDoc, panel: PlotPanel) -> str:
    """A panel as inline SVG."""
    svg = render_plot(doc, panel, "svg").decode("utf-8")
    return svg[svg.index("<svg") :]


def _figure(doc: IncidentReportDoc, panel: PlotPanel | None, figure_id: str, missing: str) -> str:
    if panel is None:
        return f'<p class="missing">{html.escape(missing)}</p>'
    return (
        f'<figure id="{figure_id}">{plot_svg(doc, panel)}'
        f"<figcaption>{html.escape(panel.title)}. Source: {html.escape(panel.source)}.</figcaption></figure>"
    )


def render_html(doc: IncidentReportDoc) -> str:
    view = doc.incident
    esc = html.escape
    rows = "".join(
        f"<tr><td>{entry.at:%H:%M:%S}</td><td>{esc(entry.kind)}</td><td>{esc(entry.message)}</td></tr>"
        for entry in timeline_of(doc)
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
    verdict = "" if doc.culprit_correct is None else (" (correct)" if doc.culprit_correct else " (wrong)")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>backout incident {esc(view.id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;width:100%;margin:1em 0}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}}pre{{margin:0;white-space:pre-wrap}}
.state{{font-size:1.3em}}figure{{margin:0.5em 0}}figcaption{{font-size:12px;color:#555}}svg{{max-width:100%;height:auto}}
.missing{{color:#888}}</style></head><body>
<h1>Incident {esc(view.id)}</h1>
<p class="state">State: <b>{esc(view.state)}</b> &middot; service {esc(view.service or "-")} in {esc(view.namespace or "-")}
&middot; culprit <b>{esc(doc.culprit or "-")}</b>{verdict}</p>
<p>Time to recovery: {phases.time_to_recovery_s}s (detection {phases.detection_s}s, attribution {phases.attribution_s}s,
remediation {phases.remediation_s}s, verification {phases.verification_s}s)</p>
<h2>What opened the incident</h2>{_figure(doc, doc.symptom, "symptom", "no symptom series")}
<h2>What decided the culprit</h2>{_figure(doc, doc.evidence, "evidence", "no per-version evidence in the bundle")}
{gitops_html(doc.gitops) if doc.gitops is not None else ""}
<h2>Root-cause summary</h2><pre>{esc(view.summary)}</pre>
<h2>Ranked culprits</h2><table><tr><th>change</th><th>probability</th><th>evidence</th></tr>{ranking}</table>
<h2>Actions</h2><table><tr><th>action</th><th>mode</th><th>outcome</th><th>target</th><th>diff</th></tr>{actions}</table>
<h2>Pages</h2><ul>{pages}</ul>
<h2>Timeline</h2><table><tr><th>time</th><th>kind</th><th>what</th></tr>{rows}</table>
</body></html>
"""
