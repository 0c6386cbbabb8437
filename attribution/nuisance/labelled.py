"""A generated incident with its answer: the bundle, the culprit change id (or None), the family."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from incidents.bundle import IncidentBundle, bundle_to_json

Fact = str | int | float | bool | None


class LabelledBundle(BaseModel):
    """One incident of a nuisance family.

    `culprit` is the id of the change that caused the symptom, or None when no change
    did (load, a dependency outside the change list). `notes` say in words what was
    injected; `facts` are the same as flat values (mode, hops, symptom, visibility...)
    for slicing results. Neither belongs in a model's input: only `bundle` does.
    """

    model_config = ConfigDict(frozen=True)

    family: str
    seed: int
    index: int
    bundle: IncidentBundle
    culprit: str | None
    notes: list[str] = Field(default_factory=list)
    facts: dict[str, Fact] = Field(default_factory=dict)

    def describe(self) -> str:
        answer = self.culprit or "no culprit"
        lines = [f"{self.family} seed={self.seed} #{self.index}: {self.bundle.incident.id} -> {answer}"]
        lines += [f"  - {note}" for note in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The bundle in the spec's wire form, as `backout attribute --input` reads it."""
        return bundle_to_json(self.bundle)

    def expected(self, max_rank: int = 1, max_probability: float = 0.3) -> dict[str, Any]:
        """The scenario-suite expectation for this incident (tests/scenarios/attribution/*/expected.json)."""
        if self.culprit is None:
            return {"culprit": None, "max_probability": max_probability}
        return {"culprit": self.culprit, "max_rank": max_rank}
