"""`backout incidents watch`: the open incidents and their current step, refreshed in place.

One frame is a snapshot of the API (the listing, then each open incident's view) laid out by
`render`; `watch` redraws it with rich Live until Ctrl-C. A frame never raises for an
unreachable API: it says so and the next refresh tries again.
"""

from __future__ import annotations

import io
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from incidents.models import TERMINAL_STATES, IncidentView

MAX_DETAILED = 20  # open incidents whose view is fetched each refresh; the rest are listed only
STATE_STYLES = {
    "awaiting_approval": "bold yellow",
    "remediating": "bold cyan",
    "verifying": "cyan",
    "needs_human": "bold red",
    "recovered": "green",
}


class ApiError(RuntimeError):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def client_tls(ca_file: Path | None, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    """A client's TLS to the API: trusts `ca_file` (else the system's CAs), presents `cert`
    (certificate, key) if given."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


class ApiClient:
    """The backout API over HTTP, with its bearer token."""

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout_s: float = 10.0,
        ca_file: Path | None = None,
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        """`ca_file`: the CA the API's certificate is checked against (else the system's); `cert`:
        (certificate, key) presented to an API that requires client certificates."""
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify = client_tls(ca_file, cert) if ca_file is not None or cert is not None else True
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, verify=verify)

    def call(self, method: str, path: str, body: Any | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ApiError(f"backout API at {self.url} unreachable: {exc}", 1) from exc
        if response.status_code >= 400:
            raise ApiError(f"{response.status_code}: {response.text}", 2 if response.status_code < 500 else 1)
        return response.json()

    def close(self) -> None:
        self._http.close()


@dataclass
class Snapshot:
    url: str
    taken_at: datetime
    open: list[IncidentView] = field(default_factory=list)
    listed_only: list[dict[str, Any]] = field(default_factory=list)  # open, without their view
    finished: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _is_open(item: dict[str, Any]) -> bool:
    """Running, and either still being worked on or handed to a human (needs_human is final for
    backout, not for the person on call)."""
    state = item.get("state")
    return item.get("status") in (None, "RUNNING") and (
        state not in TERMINAL_STATES or state == "needs_human"
    )


def take_snapshot(api: ApiClient, finished: int = 5) -> Snapshot:
    """The listing, then every open incident's view, fetched side by side: one slow incident (its
    worker gone, a query waiting) costs its own row, never the frame."""
    snapshot = Snapshot(url=api.url, taken_at=datetime.now(UTC))
    try:
        listing = api.call("GET", "/v1/incidents")["incidents"]
    except ApiError as exc:
        snapshot.error = str(exc)
        return snapshot
    open_items = [item for item in listing if _is_open(item)]
    detailed = open_items[:MAX_DETAILED]
    with ThreadPoolExecutor(max_workers=8) as pool:
        views = list(pool.map(lambda item: _view(api, item), detailed))
    snapshot.open = [view for view in views if isinstance(view, IncidentView)]
    snapshot.listed_only = [
        {**item, "problem": view} for item, view in zip(detailed, views, strict=True) if isinstance(view, str)
    ] + open_items[MAX_DETAILED:]
    snapshot.finished = [item for item in listing if not _is_open(item)][:finished]
    return snapshot


def _view(api: ApiClient, item: dict[str, Any]) -> IncidentView | str:
    try:
        return IncidentView.model_validate(api.call("GET", f"/v1/incidents/{item['id']}"))
    except ApiError as exc:
        return f"view unavailable: {exc}"


def _age(since: datetime, now: datetime) -> str:
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _in_state_since(view: IncidentView) -> datetime:
    """When the incident entered its current state (its last state change on the timeline)."""
    entered = [entry.at for entry in view.timeline if entry.kind == "step" and entry.step == view.state]
    return entered[-1] if entered else view.opened_at


def _step_detail(view: IncidentView, now: datetime) -> str:
    if view.state == "awaiting_approval" and view.approval is not None:
        who = ", ".join(view.approval.approvers) or "anyone allowed"
        return f"approval by {who}, expires in {_age(now, view.approval.expires_at)}"
    latest = view.timeline_for_people()
    if view.state == "needs_human":
        reasons = [entry.message for entry in latest if entry.kind == "error"]
        if reasons:
            return f"needs a human: {reasons[-1]}"
    return latest[-1].message if latest else ""


def render(snapshot: Snapshot) -> RenderableType:
    now = snapshot.taken_at
    title = f"backout: {len(snapshot.open) + len(snapshot.listed_only)} open incident(s)"
    table = Table(title=title, expand=True, title_justify="left")
    for column, options in (
        ("incident", {"no_wrap": True}),
        ("service", {"no_wrap": True}),
        ("step", {"no_wrap": True}),
        ("for", {"no_wrap": True, "justify": "right"}),
        ("culprit", {}),
        ("latest", {"ratio": 1}),
    ):
        table.add_column(column, **options)
    for view in snapshot.open:
        culprit = "-"
        if view.attribution and view.attribution.ranking:
            top = view.attribution.ranking[0]
            culprit = f"{top.change_id} p={top.probability:.2f}"
        table.add_row(
            view.id,
            (view.service or "-") + (f" ({view.namespace})" if view.namespace else ""),
            Text(view.state, style=STATE_STYLES.get(view.state, "")),
            _age(_in_state_since(view), now),
            culprit,
            _step_detail(view, now),
        )
    for item in snapshot.listed_only:
        table.add_row(
            item["id"],
            item.get("service") or "-",
            item.get("state") or "-",
            "",
            "",
            Text(item.get("problem") or "(not fetched: too many open incidents)", style="dim"),
        )
    if not snapshot.open and not snapshot.listed_only:
        table.add_row("-", "", Text("no open incidents", style="green"), "", "", "")
    parts: list[RenderableType] = [table]
    if snapshot.finished:
        done = Table(title="recently finished", expand=True, title_justify="left", style="dim")
        for column in ("incident", "service", "outcome", "opened", "closed"):
            done.add_column(column, no_wrap=column != "service")
        for item in snapshot.finished:
            done.add_row(
                item["id"],
                item.get("service") or "-",
                Text(item.get("state") or "-", style=STATE_STYLES.get(item.get("state") or "", "")),
                _clock(item.get("opened_at")),
                _clock(item.get("closed_at")) or "cooling down",
            )
        parts.append(done)
    if snapshot.error:
        parts.append(Text(f"error: {snapshot.error}", style="bold red"))
    parts.append(Text(f"{snapshot.url} at {now:%H:%M:%S} UTC; Ctrl-C to leave", style="dim"))
    return Group(*parts)


def _clock(stamp: str | None) -> str:
    if not stamp:
        return ""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC).strftime("%H:%M:%S")


def render_text(snapshot: Snapshot, width: int = 160) -> str:
    """One frame as plain text (no colour codes)."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(render(snapshot))
    return buffer.getvalue()


def watch(api: ApiClient, console: Console, interval_s: float, finished: int, once: bool) -> None:
    """Redraw in place on a terminal; elsewhere (a pipe, a log) print one frame per refresh."""
    if once or not console.is_terminal:
        while True:
            console.print(render(take_snapshot(api, finished)))
            if once:
                return
            time.sleep(interval_s)
    with Live(render(take_snapshot(api, finished)), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(interval_s)
            live.update(render(take_snapshot(api, finished)), refresh=True)
