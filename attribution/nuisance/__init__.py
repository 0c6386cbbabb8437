"""A second, independent generator of incidents: the nuisance of real rollouts, by family.

Written from the physics of Kubernetes rollouts and Prometheus telemetry, without
reference to how the attributor scores evidence, so it can test that scoring on data
it was never tuned on. Each family stresses one failure mode on top of the baseline
nuisance every real rollout has (fresh pods with other CPU, memory and warm-up
latency; per-version and per-pod series on some services; noise). Hold whole families
out of training: another seed of the same family is not held out.

API (stable):

    FAMILIES: tuple[str, ...]
        resource_shift, pod_telemetry, silent_new_version, concurrent_rollouts,
        multi_hop, noisy_seasonal, flapping, no_culprit_load, no_culprit_dependency,
        invisible_symptom, preexisting_degradation, ai_quality, ai_latency, ai_errors,
        mixed.
    describe_family(family) -> str
        one line: what the family injects.
    generate(family, seed, n) -> list[LabelledBundle]
        n incidents, deterministic per (family, seed); incident i does not depend on n,
        so generate(f, s, 10)[:5] == generate(f, s, 5).
    LabelledBundle (pydantic): family, seed, index, bundle (incidents.bundle.IncidentBundle,
        spec v1), culprit (change id or None), notes (what was injected, in words),
        facts (the same as flat values: mode, hops, symptom_metric, visibility, ...),
        describe(), to_json() (wire form), expected() (scenario-suite expectation).

Conventions shared by culprits and the other changes: start times (all drawn from one
distribution, the culprit picked uniformly among them), id scheme, authors,
descriptions, version spelling, rollout style per kind, `completed_at` rules and
which series exist. `attribution.nuisance.audit.audit(pairs)` checks that claim on any
labelled bundles (this generator's, PetShop's): per convention, culprits against the
other changes of the same kind, and a model on conventions against one on kind alone.
`python -m attribution.nuisance FAMILY SEED N --out DIR` writes bundles to disk.
"""

from __future__ import annotations

import zlib

import numpy as np

from attribution.nuisance.build import build_incident
from attribution.nuisance.labelled import LabelledBundle
from attribution.nuisance.recipes import FAMILY_NAMES, RECIPES, recipe_for
from incidents.bundle import parse_bundle

FAMILIES: tuple[str, ...] = FAMILY_NAMES

__all__ = ["FAMILIES", "LabelledBundle", "describe_family", "generate", "generate_one"]


def describe_family(family: str) -> str:
    if family == "mixed":
        return "several nuisances at once, drawn independently per incident"
    if family not in RECIPES:
        raise ValueError(f"unknown nuisance family {family!r}; known: {', '.join(FAMILIES)}")
    return RECIPES[family].summary


def generate_one(family: str, seed: int, index: int) -> LabelledBundle:
    """Incident `index` of (family, seed); the same whatever else is generated."""
    if family not in FAMILIES:
        raise ValueError(f"unknown nuisance family {family!r}; known: {', '.join(FAMILIES)}")
    rng = np.random.default_rng([zlib.crc32(family.encode()), seed, index])
    recipe = recipe_for(family, rng)
    incident = build_incident(rng, recipe)
    return LabelledBundle(
        family=family,
        seed=seed,
        index=index,
        bundle=parse_bundle(incident.document),
        culprit=incident.culprit,
        notes=incident.notes,
        facts=incident.facts,
    )


def generate(family: str, seed: int, n: int) -> list[LabelledBundle]:
    """n labelled incidents of one family, deterministic per (family, seed)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [generate_one(family, seed, index) for index in range(n)]
