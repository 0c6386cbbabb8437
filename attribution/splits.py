"""Which data serves which purpose: training, validation (choices), test (read once per release).

Fixed before any evaluation on the nuisance generator (see docs/attribution.md):
- nuisance development families: training mix and validation (leave-one-family-out);
- nuisance held-out families: test only, never trained on, never tuned on;
- PetShop `train` folders: validation; PetShop `test` folders: test.
Seeds differ per purpose so that no incident is shared between them.
"""

from __future__ import annotations

DEVELOPMENT_FAMILIES: tuple[str, ...] = (
    "resource_shift",
    "pod_telemetry",
    "silent_new_version",
    "noisy_seasonal",
    "no_culprit_load",
    "invisible_symptom",
    "ai_latency",
    "ai_errors",
)
HELD_OUT_FAMILIES: tuple[str, ...] = (
    "concurrent_rollouts",
    "multi_hop",
    "flapping",
    "no_culprit_dependency",
    "preexisting_degradation",
    "ai_quality",
    "mixed",
)
TRAINING_NUISANCE_SEED = 101
VALIDATION_NUISANCE_SEED = 303  # development families, other incidents than those trained on
TEST_NUISANCE_SEED = 202
