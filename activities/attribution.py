"""attribute_bundle: rank the incident's candidate changes with the attribution model."""

from __future__ import annotations

import threading
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from attribution.model import AttributionModel, ModelError, load_model
from incidents.bundle import AttributionOutput, IncidentBundle
from worker.settings import current_settings

_models: dict[Path | None, AttributionModel] = {}
_lock = threading.Lock()


def model_for(path: Path | None) -> AttributionModel:
    """The model at `path` (None = packaged), loaded once per process."""
    with _lock:
        if path not in _models:
            _models[path] = load_model(path)
        return _models[path]


@activity.defn(name="attribute_bundle")
def attribute_bundle(bundle: IncidentBundle) -> AttributionOutput:
    try:
        model = model_for(current_settings().attribution_model)
    except ModelError as exc:
        raise ApplicationError(str(exc), type="ModelError", non_retryable=True) from exc
    return model.attribute(bundle)


ACTIVITIES = [attribute_bundle]
