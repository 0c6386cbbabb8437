"""Reading manifests, golden sets and results files, with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from evals.models import EvalManifest, GoldenItem, ItemResult

Record = TypeVar("Record", bound=BaseModel)


class EvalInputError(ValueError):
    """Input that cannot be used; the message names the file (and line) at fault."""


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(piece) for piece in item["loc"]) or "(document)"
        parts.append(f"{location}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise EvalInputError(f"{what} {path}: no such file") from exc
    except IsADirectoryError as exc:
        raise EvalInputError(f"{what} {path}: is a directory") from exc
    except UnicodeDecodeError as exc:
        raise EvalInputError(f"{what} {path}: not UTF-8 text") from exc
    except OSError as exc:
        raise EvalInputError(f"{what} {path}: cannot read ({exc.strerror})") from exc


def load_manifest(path: str | Path) -> EvalManifest:
    file = Path(path)
    try:
        data = yaml.safe_load(_read_text(file, "manifest"))
    except yaml.YAMLError as exc:
        raise EvalInputError(f"manifest {file}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise EvalInputError(f"manifest {file}: top level must be a mapping")
    try:
        return EvalManifest.model_validate(data)
    except ValidationError as exc:
        raise EvalInputError(f"manifest {file}: {_describe(exc)}") from exc


def golden_path(manifest_path: str | Path, manifest: EvalManifest) -> Path:
    candidate = Path(manifest.golden)
    return candidate if candidate.is_absolute() else Path(manifest_path).parent / candidate


def _read_jsonl(path: Path, model: type[Record], what: str) -> list[Record]:
    records: list[Record] = []
    seen: set[str] = set()
    for number, line in enumerate(_read_text(path, what).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise EvalInputError(f"{path}:{number}: each line must be a JSON object")
        try:
            record = model.model_validate(data)
        except ValidationError as exc:
            raise EvalInputError(f"{path}:{number}: {_describe(exc)}") from exc
        record_id = str(getattr(record, "id", number))
        if record_id in seen:
            raise EvalInputError(f"{path}:{number}: id {record_id!r} appears more than once")
        seen.add(record_id)
        records.append(record)
    if not records:
        raise EvalInputError(f"{what} {path}: no items")
    return records


def load_golden_set(path: str | Path) -> list[GoldenItem]:
    return _read_jsonl(Path(path), GoldenItem, "golden set")


def load_results(path: str | Path) -> list[ItemResult]:
    return _read_jsonl(Path(path), ItemResult, "results file")
