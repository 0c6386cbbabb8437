"""Families: which nuisance each one turns up, as knobs of one incident builder.

Every family keeps the baseline nuisance of real rollouts (resource shifts and warm-up
of fresh pods, per-version telemetry on some services, noise) and emphasises one
failure mode, so a whole family can be held out of training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

Weighted = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Recipe:
    summary: str
    domains: tuple[str, ...] = ("shop", "ai")
    modes: Weighted = (("errors", 0.6), ("latency", 0.4))
    cause: str | None = None  # no-culprit cause: "load" | "dependency"
    no_culprit_share: float = 0.0
    n_changes: tuple[int, int] = (3, 12)
    hops: tuple[float, float, float, float] = (0.45, 0.35, 0.15, 0.05)
    concurrent: bool = False
    resource_extreme: float = 0.15
    warmup: tuple[float, float] = (1.1, 3.0)
    noise: tuple[float, float] = (0.03, 0.08)
    error_bursts: float = 0.08
    batch_spikes: float = 0.1
    seasonal: tuple[float, float] = (0.0, 0.25)
    flapping: float = 0.05
    churn: float = 0.15
    layout: str = "default"  # default | pods | versions
    no_service_level: float = 0.0
    peer: float = 0.2
    sparse_new_pods: tuple[float, float] = (0.0, 0.15)
    visibility: Weighted = (("normal", 0.94), ("flat", 0.03), ("absent", 0.03))
    silent_distractors: float = 0.0
    preexisting: bool = False
    path_distractor: float = 0.3
    ai: str | None = None  # quality | latency | errors
    magnitude: tuple[float, float] = (1.0, 1.0)
    coincident_distractor: float = 0.6
    hold_share: float = 0.0  # share of rollouts paused or still progressing at detection


RECIPES: dict[str, Recipe] = {
    "resource_shift": Recipe(
        summary="every rollout shifts CPU, memory and GPU cache of its new pods (up to 40x) and warms up slowly; "
        "the culprit's fault is modest",
        resource_extreme=0.85,
        warmup=(1.5, 5.0),
        magnitude=(0.35, 0.8),
    ),
    "pod_telemetry": Recipe(
        summary="telemetry per pod and per version, pods starting and stopping, sparse new-pod series, "
        "per-peer series, often no service-level series at all",
        layout="pods",
        no_service_level=0.5,
        churn=0.6,
        peer=0.6,
        sparse_new_pods=(0.1, 0.5),
    ),
    "silent_new_version": Recipe(
        summary="the broken new version never reports or sits idle while its service reports per version; "
        "harmless rollouts whose new version does not report either",
        modes=(("never_reports", 0.5), ("idle", 0.5)),
        hops=(0.0, 0.6, 0.3, 0.1),
        layout="versions",
        silent_distractors=0.6,
        peer=0.4,
        hold_share=0.5,
    ),
    "concurrent_rollouts": Recipe(
        summary="3-10 rollouts started within minutes, all still rolling at detection",
        n_changes=(3, 10),
        concurrent=True,
        layout="pods",
        resource_extreme=0.3,
    ),
    "multi_hop": Recipe(
        summary="the culprit 1-3 hops below the symptom service; every caller on the way degrades, "
        "and a changed caller on the path looks guilty",
        hops=(0.0, 0.4, 0.4, 0.2),
        path_distractor=0.9,
        peer=0.35,
    ),
    "noisy_seasonal": Recipe(
        summary="noisy baselines, diurnal trends, cron spikes and client-error bursts around every change",
        noise=(0.12, 0.3),
        error_bursts=0.5,
        batch_spikes=0.7,
        seasonal=(0.2, 0.6),
        magnitude=(0.5, 1.0),
    ),
    "flapping": Recipe(
        summary="the symptom comes and goes (a crash-looping path, an intermittent dependency)",
        flapping=1.0,
    ),
    "no_culprit_load": Recipe(
        summary="no culprit: a traffic surge saturates services; autoscaler events follow",
        modes=(("none", 1.0),),
        cause="load",
    ),
    "no_culprit_dependency": Recipe(
        summary="no culprit: a dependency outside the change list (datastore, external API) fails",
        modes=(("none", 1.0),),
        cause="dependency",
        flapping=0.25,
    ),
    "invisible_symptom": Recipe(
        summary="the symptom's own series is flat or absent (the alert fired on data the bundle lacks)",
        visibility=(("flat", 0.5), ("absent", 0.5)),
        peer=0.35,
    ),
    "preexisting_degradation": Recipe(
        summary="the degradation began before a later change on the symptom's path; that change must not be "
        "blamed (the cause is an earlier change, or nothing in the list)",
        preexisting=True,
        no_culprit_share=0.35,
    ),
    "ai_quality": Recipe(
        summary="AI quality symptoms (eval score, retrieval precision, hallucination rate) from prompt, model "
        "or corpus changes",
        domains=("ai",),
        modes=(("quality", 1.0),),
        hops=(0.45, 0.35, 0.2, 0.0),
        ai="quality",
    ),
    "ai_latency": Recipe(
        summary="AI latency symptoms (time to first token, request latency) from image or model changes",
        domains=("ai",),
        modes=(("ttft", 0.6), ("latency", 0.4)),
        ai="latency",
    ),
    "ai_errors": Recipe(
        summary="AI error symptoms from config and feature-flag changes",
        domains=("ai",),
        modes=(("errors", 1.0),),
        ai="errors",
    ),
}


def mixed_recipe(rng: np.random.Generator) -> Recipe:
    """A bit of everything: each nuisance is switched on independently."""
    recipe = Recipe(summary="several nuisances at once, drawn independently per incident")
    if rng.random() < 0.4:
        recipe = replace(recipe, resource_extreme=0.7, warmup=(2.0, 6.0))
    if rng.random() < 0.4:
        recipe = replace(recipe, layout="pods", no_service_level=0.5, churn=0.5, sparse_new_pods=(0.1, 0.4))
    if rng.random() < 0.3:
        recipe = replace(recipe, concurrent=True, n_changes=(3, 10))
    if rng.random() < 0.4:
        recipe = replace(recipe, hops=(0.2, 0.4, 0.3, 0.1))
    if rng.random() < 0.4:
        recipe = replace(recipe, noise=(0.1, 0.25), error_bursts=0.4, batch_spikes=0.5, seasonal=(0.2, 0.5))
    if rng.random() < 0.2:
        recipe = replace(recipe, flapping=1.0)
    if rng.random() < 0.2:
        recipe = replace(recipe, visibility=(("flat", 0.5), ("absent", 0.5)))
    if rng.random() < 0.15:
        recipe = replace(recipe, modes=(("never_reports", 0.5), ("idle", 0.5)), hops=(0.0, 0.6, 0.3, 0.1))
        recipe = replace(recipe, layout="versions", silent_distractors=0.5)
    if rng.random() < 0.15:
        recipe = replace(recipe, modes=(("none", 1.0),), cause="load" if rng.random() < 0.5 else "dependency")
    elif rng.random() < 0.15:
        recipe = replace(recipe, preexisting=True)
    return recipe


FAMILY_NAMES: tuple[str, ...] = (*RECIPES, "mixed")


def recipe_for(family: str, rng: np.random.Generator) -> Recipe:
    if family == "mixed":
        return mixed_recipe(rng)
    if family not in RECIPES:
        raise ValueError(f"unknown nuisance family {family!r}; known: {', '.join(FAMILY_NAMES)}")
    return RECIPES[family]
