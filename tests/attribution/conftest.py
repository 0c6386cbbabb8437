"""Shared fixtures for the attribution tests: the packaged model and a small model trained here."""

from __future__ import annotations

import pytest

from attribution.model import AttributionModel, load_model
from attribution.training import TrainingConfig, train


@pytest.fixture(scope="session")
def packaged_model() -> AttributionModel:
    return load_model()


@pytest.fixture(scope="session")
def small_model() -> AttributionModel:
    """Trained in the test on 400 generated incidents (seconds), never the packaged artifact."""
    model, _ = train(TrainingConfig(seed=3, synthetic=400, nuisance_per_family=0))
    return model
