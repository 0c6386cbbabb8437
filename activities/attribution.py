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
        return model.attribute(bundle)
