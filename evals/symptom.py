"""A golden-set comparison as the symptom an incident carries (pure: the workflow uses it too)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from evals.stats import Comparison
from incidents.models import EvalSymptom


def symptom_of(
    comparison: Comparison,
    *,
    manifest: str,
    manifest_path: str | None,
    endpoint: str | None,
    service: str,
    namespace: str | None,
    run_id: str,
    observed_at: datetime,
    series: Sequence[tuple[datetime, float]] = (),
) -> EvalSymptom:
    """`regression` is the comparison's verdict: False means the service is back to its baseline."""
    return EvalSymptom(
        manifest=manifest,
        manifest_path=manifest_path,
        endpoint=endpoint,
        service=service,
        namespace=namespace,
        run_id=run_id,
        metric=comparison.metric,
        baseline=comparison.baseline,
        candidate=comparison.candidate,
        delta=comparison.delta,
        p_value=comparison.p_value,
        ci=comparison.ci,
        test=comparison.test,
        regression=comparison.regression,
        series=list(series),
        observed_at=observed_at,
    )
