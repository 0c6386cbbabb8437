"""The incident report a demo writes, rendered from a recorded one (data/demo-incident-report.json,
written by `backout demo` on this repository): HTML, terminal, and a picture from headless Chromium."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console

from devstack.demo.report import IncidentReportDoc, render_html, render_terminal
from devstack.demo.screenshot import PNG_SIGNATURE, png_size, screenshot
from incidents.models import DeliveryRecord

RECORDED = Path(__file__).parent / "data" / "demo-incident-report.json"
WIDTH, HEIGHT = 1200, 1500


def _recorded() -> IncidentReportDoc:
    return IncidentReportDoc.model_validate_json(RECORDED.read_text(encoding="utf-8"))


def _scrambled() -> IncidentReportDoc:
    """The recorded report with its timeline reversed and a delivery that sent nothing added."""
    doc = _recorded()
    view = doc.incident
    view.timeline.reverse()
    view.deliveries.append(
        DeliveryRecord(
            at=view.opened_at + timedelta(seconds=1),
            event="update",
            channel="pagerduty",
            outcome="Successful",
            sent=False,
            message="nothing to send for update",
        )
    )
    return doc


def _timeline_times(page: str) -> list[str]:
    table = page[page.index("<h2>Timeline</h2>") :]
    return re.findall(r"<tr><td>(\d\d:\d\d:\d\d)</td>", table)


def test_the_recorded_report_is_an_eval_incident_that_recovered() -> None:
    doc = _recorded()
    assert doc.incident.source == "eval" and doc.recovered and doc.culprit_correct
    assert doc.symptom is not None and doc.symptom.has_points()
    assert doc.evidence is not None and doc.evidence.has_points()


def test_the_first_plot_is_the_symptom_that_opened_the_incident() -> None:
    doc = _recorded()
    page = render_html(doc)
    figures = re.findall(r'<figure id="(\w+)"><svg', page)
    assert figures == ["symptom", "evidence"]
    symptom = page[page.index('<figure id="symptom">') : page.index('<figure id="evidence">')]
    assert "golden-set pass_rate of rag-api (demo)" in symptom
    assert doc.incident.summary.startswith("Symptom: golden-set pass_rate of rag-api (demo)")
    evidence = page[page.index('<figure id="evidence">') :]
    assert "per version (prompt-v1 against prompt-v7-terse)" in evidence[: evidence.index("</figure>")]


def test_the_html_timeline_reads_in_time_order_without_deliveries_that_sent_nothing() -> None:
    page = render_html(_scrambled())
    times = _timeline_times(page)
    assert len(times) >= 10
    assert times == sorted(times)
    assert "nothing to send" not in page


def test_the_terminal_report_names_the_plotted_series_in_time_order() -> None:
    doc = _scrambled()
    console = Console(record=True, width=200, color_system=None)
    render_terminal(doc, console)
    text = console.export_text()
    assert doc.symptom is not None and doc.evidence is not None
    assert f"Symptom (plot 1): {doc.symptom.title}" in text
    assert f"Evidence (plot 2): {doc.evidence.title[:60]}" in text
    assert "nothing to send" not in text
    stamps = re.findall(r"│ (\d\d:\d\d:\d\d) +│", text)
    assert len(stamps) >= 10 and stamps == sorted(stamps)


def test_a_screenshot_of_the_report_from_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "incident-report.html"
    page.write_text(render_html(_recorded()), encoding="utf-8")
    started = datetime.now()
    picture = screenshot(page, tmp_path / "incident-report.png", WIDTH, HEIGHT)
    assert picture.exists() and picture.stat().st_mtime >= started.timestamp() - 1
    assert picture.stat().st_size > 20_000  # a blank page is a few kB: this one has two plots and tables
    assert picture.read_bytes().startswith(PNG_SIGNATURE)
    assert png_size(picture) == (WIDTH, HEIGHT)
