"""attribute_bundle: rank the incident's candidate changes with the attribution model."""

from __future__ import annotations

import threading

from temporalio import activity
from temporalio.exceptions import ApplicationError

from attribution.model import AttributionModel, ModelError, load_model
from config import Settings
from incidents.bundle import AttributionOutput, IncidentBundle


class AttributionActivities:
    """The attribution step, with the model named by the settings (loaded once, on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._model: AttributionModel | None = None
        self._lock = threading.Lock()

    def model(self) -> AttributionModel:
        with self._lock:
            if self._model is None:
                self._model = load_model(self.settings.attribution_model)
            return self._model

    @activity.defn(name="attribute_bundle")
    def attribute_bundle(self, bundle: IncidentBundle) -> AttributionOutput:
        """A local activity: CPU only, run in the worker's thread pool."""
        try:
            model = self.model()
        except ModelError as exc:
            raise ApplicationError(str(exc), type="ModelError", non_retryable=True) from exc
        return with_commits(model.attribute(bundle), bundle)


def with_commits(output: AttributionOutput, bundle: IncidentBundle) -> AttributionOutput:
    """Each ranked change the ledger traced to a Git commit (a GitOps-managed object) names it."""
    by_id = {change.id: change for change in bundle.changes}
    for ranked in output.ranking:
        origin = by_id[ranked.change_id].gitops if ranked.change_id in by_id else None
        commit = origin.commit if origin is not None else None
        if origin is not None and commit is not None:
            ranked.reasons.append(
                f"introduced by Git commit {commit.sha[:12]} ({commit.author or 'unknown author'}: "
                f"{commit.message or 'no message'}), applied by {origin.reconciler}"
            )
    return output
