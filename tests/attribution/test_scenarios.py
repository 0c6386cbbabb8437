"""Regression gates: every recorded scenario's expectation holds, and the CLI follows the spec output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attribution.model import AttributionModel
from incidents.bundle import AttributionOutput, load_bundle
from worker.cli import app

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "attribution"
ATTRIBUTION_SCENARIOS = sorted(
    folder
    for folder in SCENARIOS.iterdir()
    if (folder / "expected.json").exists() and "culprit" in json.loads((folder / "expected.json").read_text())
)
ALL_BUNDLES = sorted(folder for folder in SCENARIOS.iterdir() if (folder / "bundle.json").exists())


def test_the_required_hard_cases_exist() -> None:
    slugs = " ".join(folder.name for folder in ATTRIBUTION_SCENARIOS)
    for needed in (
        "recent_unrelated_deploy",
        "benign_scale",
        "prompt_masked_by_image",
        "two_hops",
        "no_culprit",
    ):
        assert needed in slugs


@pytest.mark.parametrize("folder", ATTRIBUTION_SCENARIOS, ids=lambda folder: folder.name)
def test_scenario_expectation_holds(folder: Path, packaged_model: AttributionModel) -> None:
    expected = json.loads((folder / "expected.json").read_text())
    output = packaged_model.attribute(load_bundle(folder / "bundle.json"))
    ranked = [item.change_id for item in output.ranking]
    if expected["culprit"] is None:
        top = max((item.probability for item in output.ranking), default=0.0)
        assert top < expected["max_probability"], output.ranking[0]
    else:
        assert expected["culprit"] in ranked
        assert ranked.index(expected["culprit"]) + 1 <= expected["max_rank"], ranked


@pytest.mark.parametrize("folder", ALL_BUNDLES, ids=lambda folder: folder.name)
def test_cli_json_follows_the_spec_output(folder: Path) -> None:
    result = CliRunner().invoke(app, ["attribute", "--input", str(folder / "bundle.json"), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"incident_id", "ranking", "model"}
    assert set(document["model"]) == {"name", "version"}
    bundle = json.loads((folder / "bundle.json").read_text())
    assert document["incident_id"] == bundle["incident"]["id"]
    assert sorted(item["change_id"] for item in document["ranking"]) == sorted(
        c["id"] for c in bundle["changes"]
    )
    probabilities = [item["probability"] for item in document["ranking"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1.0 + 1e-6
    for item in document["ranking"]:
        assert set(item) == {"change_id", "probability", "reasons"}
        assert 0.0 <= item["probability"] <= 1.0
        assert item["reasons"] and all(isinstance(reason, str) and reason for reason in item["reasons"])
    AttributionOutput.model_validate(document)


def test_odd_but_valid_bundles_are_ranked(packaged_model: AttributionModel) -> None:
    """Degenerate evidence must not crash ranking: every change still comes back once."""
    from incidents.bundle import parse_bundle

    document = {
        "version": 1,
        "incident": {
            "id": "odd",
            "detected_at": 1_800_000_000,
            "service": None,
            "symptom": {"metric": "nope"},
        },
        "changes": [
            {"id": "a", "service": "x", "kind": "weird-kind", "started_at": 1_799_999_000},
            {"id": "b", "service": "y", "started_at": 1_800_000_600, "completed_at": 1_799_999_000},
            {"id": "c", "service": "x", "kind": "image", "started_at": 1_799_990_000, "to_version": "v2"},
        ],
        "metrics": [
            {"name": "error_rate", "service": "x", "points": [[1_799_999_500, 0.5]]},
            {"name": "error_rate", "service": "x", "points": [[1_799_999_500, 0], [1_799_999_560, 0]]},
            {"name": "latency_ms", "service": "x", "version": "v2", "points": [[1_799_999_500, -3.0]]},
            {"name": "cpu", "service": "y", "points": []},
            {
                "name": "tokens",
                "service": "y",
                "bad_direction": "down",
                "points": [[1_799_999_000 + i, i] for i in range(50)],
            },
        ],
    }
    output = packaged_model.attribute(parse_bundle(document))
    assert sorted(item.change_id for item in output.ranking) == ["a", "b", "c"]
    assert all(0.0 <= item.probability <= 1.0 and item.reasons for item in output.ranking)
    after = next(item for item in output.ranking if item.change_id == "b")
    assert "after detection" in after.reasons[0]
