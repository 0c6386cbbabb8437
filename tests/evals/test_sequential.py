"""Repeated looks: false alarms over 100 looks and power for a 5-point drop on 200 items."""

from __future__ import annotations

from evals.sequential import LookPolicy, SimulationModel, simulate

POLICY = LookPolicy(alpha=0.05, horizon_looks=100, window_runs=4, baseline_runs=3, min_effect=0.02)


def test_false_alarm_rate_over_100_looks_within_alpha() -> None:
    result = simulate(
        POLICY, SimulationModel(items=200, pass_rate=0.9, flake_rate=0.02), histories=800, looks=100
    )
    print(result.model_dump())
    assert result.alarm_rate <= POLICY.alpha


def test_false_alarm_rate_holds_for_a_flakier_service() -> None:
    result = simulate(
        POLICY, SimulationModel(items=200, pass_rate=0.8, flake_rate=0.08), histories=400, looks=100
    )
    print(result.model_dump())
    assert result.alarm_rate <= POLICY.alpha


def test_five_point_drop_on_200_items_detected_with_power_0_9() -> None:
    model = SimulationModel(items=200, pass_rate=0.9, flake_rate=0.02, drop=0.05, change_at_look=40)
    result = simulate(POLICY, model, histories=800, looks=60, detect_within=POLICY.window_runs, seed=1)
    print(result.model_dump())
    assert result.power is not None and result.power >= 0.9
    assert result.alarm_rate <= POLICY.alpha  # before the change


def test_power_vanishes_without_a_drop_and_with_a_tiny_drop() -> None:
    tiny = SimulationModel(items=200, pass_rate=0.9, flake_rate=0.02, drop=0.01, change_at_look=10)
    result = simulate(POLICY, tiny, histories=300, looks=20, detect_within=8, seed=2)
    assert result.power is not None and result.power < 0.2  # below min_effect: never pages
