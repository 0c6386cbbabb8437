"""The runbook loader re-reads a set only when one of its files changes, and never caches a broken set."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from runbooks.loader import LIBRARY_DIR, RunbookLoadError, load_runbooks_cached


def _copy_library(tmp_path: Path) -> Path:
    target = tmp_path / "runbooks"
    shutil.copytree(LIBRARY_DIR, target)
    return target


def test_an_edited_runbook_is_read_again(tmp_path: Path) -> None:
    folder = _copy_library(tmp_path)
    first = load_runbooks_cached([folder])
    assert load_runbooks_cached([folder]) == first
    edited = folder / "gpu-health.yaml"
    text = edited.read_text(encoding="utf-8")
    edited.write_text(text.replace("description:", "description: edited,", 1), encoding="utf-8")
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = load_runbooks_cached([folder])
    assert second != first
    assert [r.name for r in second] == [r.name for r in first]
    changed = [r for r in second if r.description and r.description.startswith("edited,")]
    assert len(changed) == 1


def test_a_new_file_joins_and_a_broken_set_is_refused_every_time(tmp_path: Path) -> None:
    folder = _copy_library(tmp_path)
    count = len(load_runbooks_cached([folder]))
    (folder / "zz-broken.yaml").write_text("name: broken\nmode: auto\nstart: nowhere\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(RunbookLoadError, match=r"zz-broken\.yaml"):
            load_runbooks_cached([folder])
    (folder / "zz-broken.yaml").unlink()
    assert len(load_runbooks_cached([folder])) == count


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(RunbookLoadError, match="no such file"):
        load_runbooks_cached([tmp_path / "absent"])
