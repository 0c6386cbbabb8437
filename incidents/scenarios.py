"""Recorded incidents: suites of numbered case folders (`<suite>/NNN_slug/`), read by one typed loader.

Each case holds `bundle.json` (incident-bundle spec v1) and its suite's expectation beside it:
the attribution suite's `expected.json` (`AttributionExpectation`), the runbook suite's
`decision.json` (runbooks.scenarios.ScenarioExpectation). Every case is a regression gate; the
loader names the folder and file of anything it cannot read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from incidents.bundle import BundleError, IncidentBundle, describe_validation_error, load_bundle

CASE_FOLDER = re.compile(r"^(?P<number>\d{3})_(?P<slug>[a-z0-9]+(?:_[a-z0-9]+)*)$")
ExpectedT = TypeVar("ExpectedT", bound=BaseModel)


class ScenarioError(ValueError):
    """A case that cannot be read; the message names the folder or file and the problem."""


class AttributionExpectation(BaseModel):
    """What the ranking must show: the culprit within the top `max_rank`, or (no culprit) every
    change below `max_probability`."""

    model_config = ConfigDict(extra="forbid")

    culprit: str | None
    max_rank: int | None = Field(default=None, ge=1)
    max_probability: float | None = Field(default=None, gt=0.0, le=1.0)
    about: str | None = Field(default=None, description="what the case is about, for its reader")
    provenance: str | None = Field(default=None, description="where the case came from")

    @model_validator(mode="after")
    def _one_kind(self) -> AttributionExpectation:
        if self.culprit is not None and self.max_rank is None:
            raise ValueError("a culprit needs max_rank")
        if self.culprit is None and self.max_probability is None:
            raise ValueError("no culprit needs max_probability")
        return self


class Case(BaseModel, Generic[ExpectedT]):
    """One recorded incident of a suite."""

    suite: str
    number: int
    slug: str
    folder: Path
    bundle: IncidentBundle
    expected: ExpectedT | None = None

    @property
    def name(self) -> str:
        return self.folder.name


def case_folders(suite: Path) -> list[Path]:
    """The case folders of a suite (every sub-folder holding a bundle), in number order."""
    if not suite.is_dir():
        raise ScenarioError(f"{suite}: no such directory")
    return sorted(path.parent for path in suite.glob("*/bundle.json"))


def load_case(folder: Path, expectation: type[ExpectedT], file: str) -> Case[ExpectedT]:
    """One case: its folder name (NNN_slug), its bundle and, when the file exists, its expectation."""
    named = CASE_FOLDER.match(folder.name)
    if named is None:
        raise ScenarioError(f"{folder}: a case folder is named NNN_slug (three digits, lower-case words)")
    try:
        bundle = load_bundle(folder / "bundle.json")
    except BundleError as exc:
        raise ScenarioError(str(exc)) from None
    expected: ExpectedT | None = None
    path = folder / file
    if path.exists():
        try:
            expected = expectation.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except ValidationError as exc:
            raise ScenarioError(f"{path}: {describe_validation_error(exc)}") from None
    return Case[expectation](  # type: ignore[valid-type]
        suite=folder.parent.name,
        number=int(named["number"]),
        slug=named["slug"],
        folder=folder,
        bundle=bundle,
        expected=expected,
    )


def load_suite(suite: Path, expectation: type[ExpectedT], file: str) -> list[Case[ExpectedT]]:
    """Every case of a suite; raises ScenarioError on the first one that cannot be read, or when two
    cases share a number."""
    cases = [load_case(folder, expectation, file) for folder in case_folders(suite)]
    numbers = [case.number for case in cases]
    twice = sorted({number for number in numbers if numbers.count(number) > 1})
    if twice:
        raise ScenarioError(f"{suite}: case numbers used twice: {', '.join(f'{n:03d}' for n in twice)}")
    return cases
