from __future__ import annotations

from pathlib import Path

import pytest

from evals.golden import EvalInputError, golden_path, load_golden_set, load_manifest
from evals.runner import validate_items

SHIPPED = Path(__file__).resolve().parents[2] / "evals" / "sets" / "orbitdesk" / "manifest.yaml"


def test_shipped_set_is_valid_and_large_enough() -> None:
    manifest = load_manifest(SHIPPED)
    items = load_golden_set(golden_path(SHIPPED, manifest))
    assert len(items) >= 50
    assert len({item.id for item in items}) == len(items)
    assert set(manifest.critical_tags) <= {tag for item in items for tag in item.tags}
    validate_items(manifest, items)
    used = {item.scorer.name for item in items if item.scorer}
    assert {"exact", "regex", "token_f1", "json_field", "semantic"} <= used


def test_golden_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text(
        '{"id": "a", "input": "q?", "expected": "x"}\n{"id": "b", "input": "", "expected": "x"}\n'
    )
    with pytest.raises(EvalInputError, match=r"golden.jsonl:2: input"):
        load_golden_set(path)
    path.write_text('{"id": "a", "input": "q?", "expected": "x"}\n{"id": "a", "input": "q", "expected": 1}\n')
    with pytest.raises(EvalInputError, match=r":2: id 'a' appears more than once"):
        load_golden_set(path)
    path.write_text('{"id": "a", "input": "q?", "expected": "x"}\nnot json\n')
    with pytest.raises(EvalInputError, match=r":2: invalid JSON"):
        load_golden_set(path)


def test_manifest_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("name: x\nservice: rag\nscorers: [nonsense]\n")
    with pytest.raises(EvalInputError, match=r"scorers.0.name"):
        load_manifest(path)
    path.write_text("name: x\n")
    with pytest.raises(EvalInputError, match=r"service: Field required"):
        load_manifest(path)
    with pytest.raises(EvalInputError, match="no such file"):
        load_manifest(tmp_path / "missing.yaml")


def test_json_field_item_needs_object_expected(tmp_path: Path) -> None:
    manifest_path = tmp_path / "m.yaml"
    manifest_path.write_text("name: x\nservice: rag\n")
    (tmp_path / "golden.jsonl").write_text(
        '{"id": "a", "input": "q?", "expected": "x", "scorer": {"name": "json_field"}}\n'
    )
    manifest = load_manifest(manifest_path)
    with pytest.raises(EvalInputError, match="item 'a': json_field needs"):
        validate_items(manifest, load_golden_set(golden_path(manifest_path, manifest)))
