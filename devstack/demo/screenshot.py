"""A PNG of an HTML page from headless Chromium (Debian's `chromium`): the incident report's picture.

Chromium runs offline and leaves nothing behind: a new empty profile directory per shot, no
first-run, sync, component updates or background networking.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ScreenshotError(RuntimeError):
    """Chromium is missing, failed, or wrote no image; the message says which (with its output)."""


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise ScreenshotError("no chromium on PATH (Debian: apt-get install chromium; make system-deps)")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    if len(header) < 24 or not header.startswith(PNG_SIGNATURE) or header[12:16] != b"IHDR":
        raise ScreenshotError(f"{path}: not a PNG")
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 1500, timeout_s: float = 90.0) -> Path:
    """Render `page` (a local HTML file) in a `width` x `height` window and write it to `out` as PNG."""
    binary = chromium_binary()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="backout-chromium-") as profile:
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={out.absolute()}",
            f"--window-size={width},{height}",
            page.absolute().as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ScreenshotError(f"chromium did not finish within {timeout_s:.0f}s") from exc
    if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise ScreenshotError(
            f"chromium exited {done.returncode} without an image at {out}: {(done.stderr or done.stdout)[-2000:]}"
        )
    return out
