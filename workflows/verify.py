"""Checking that the service recovered after a remediation: the rollout, then the symptom.

A rollout must complete; then the golden set is re-run until it is back to baseline (when the
incident has one), or the alerts (those about the step's metric, when it names one) must resolve
and stay resolved. Workflow code: each function raises IncidentFailure when recovery is not shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.evals import EvalActivities
    from activities.kube.activities import KubeActivities
    from incidents.actions import WaitVerifyAction
    from incidents.models import EvalRecheckRequest, EvalSymptom
    from incidents.remediation import VerifyRequest
    from workflows.retries import SHORT_RETRY
    from workflows.state import IncidentFailure, IncidentState

EVAL_RECHECK_INTERVAL = timedelta(seconds=10)


async def verify_recovery(state: IncidentState, action: WaitVerifyAction) -> None:
    """The rollout of the last remediated Deployment, then the symptom; raises IncidentFailure."""
    request = state.last_remediation
    if request is not None and request.target_type == "deployment":
        result = await workflow.execute_activity_method(
            KubeActivities.verify_rollout,
            VerifyRequest(
                target_type="deployment",
                name=request.name,
                namespace=request.namespace,
                timeout_s=action.timeout_s,
            ),
            start_to_close_timeout=timedelta(seconds=action.timeout_s + 30),
            retry_policy=SHORT_RETRY,
        )
        state.record(
            workflow.now(),
            "verify_rollout",
            action.mode,
            result.outcome,
            target=request.name,
            message=result.message,
        )
        if result.outcome != "Successful":
            raise IncidentFailure(f"rollout of {request.name} did not complete: {result.message}")
    manifest, endpoint = eval_target(state)
    if manifest and (action.eval or state.view.eval is not None or not state.alerts):
        await verify_by_eval(state, action, manifest, endpoint)
    elif state.alerts:
        await verify_alerts_resolved(state, action)
    else:
        state.record(
            workflow.now(), "verify_symptom", action.mode, "Inconclusive", message="no signal to verify with"
        )
        raise IncidentFailure("nothing to verify recovery with: no alert and no golden set for this service")


def eval_target(state: IncidentState) -> tuple[str | None, str | None]:
    """The golden set (manifest, endpoint) that shows this incident's symptom, if any."""
    if state.input.eval_manifest is None and state.view.eval is not None:
        return state.view.eval.manifest_path, state.view.eval.endpoint
    return state.input.eval_manifest, state.input.eval_endpoint


async def verify_by_eval(
    state: IncidentState, action: WaitVerifyAction, manifest: str, endpoint: str | None
) -> None:
    """Run the golden set again until it is back to baseline, or the verify timeout passes.

    A direct measurement, faster than alert windows clearing; repeated because a restored
    ConfigMap or a rolled-back Deployment takes a while to reach the pods that serve.
    """
    deadline = workflow.now() + timedelta(seconds=action.timeout_s)
    while True:
        symptom = await _recheck_eval(state, manifest, endpoint)
        verdict = _verdict(symptom)
        if not symptom.regression:
            state.record(
                workflow.now(), "verify_eval", action.mode, "Successful", message=f"recovered: {verdict}"
            )
            return
        if workflow.now() + EVAL_RECHECK_INTERVAL >= deadline:
            state.record(
                workflow.now(), "verify_eval", action.mode, "Failed", message=f"still regressed: {verdict}"
            )
            raise IncidentFailure(
                f"golden set still regressed {action.timeout_s}s after remediation: {verdict}"
            )
        state.log(workflow.now(), "note", "verify", f"golden set not back yet ({verdict}); checking again")
        await workflow.sleep(EVAL_RECHECK_INTERVAL)


async def golden_set_holds(state: IncidentState) -> str | None:
    """Run the incident's golden set once: its verdict when the service is not regressed, else None
    (also None when the incident has no golden set to ask)."""
    manifest, endpoint = eval_target(state)
    if manifest is None:
        return None
    symptom = await _recheck_eval(state, manifest, endpoint)
    return None if symptom.regression else _verdict(symptom)


async def _recheck_eval(state: IncidentState, manifest: str, endpoint: str | None) -> EvalSymptom:
    """Run the incident's golden set once more against its pinned baseline."""
    return await workflow.execute_activity_method(
        EvalActivities.recheck_eval,
        EvalRecheckRequest(
            manifest=manifest,
            incident_id=state.input.incident_id,
            service=state.input.key.service,
            namespace=state.input.key.namespace,
            endpoint=endpoint,
        ),
        start_to_close_timeout=timedelta(minutes=10),
        retry_policy=SHORT_RETRY,
    )


def _verdict(symptom: EvalSymptom) -> str:
    return f"{symptom.metric} {symptom.candidate:.3f} vs baseline {symptom.baseline:.3f}"


def _resolved_condition(state: IncidentState, action: WaitVerifyAction) -> Callable[[], bool]:
    """Every alert resolved, or, when the step names a metric some alert is about, those alerts."""
    metric = action.metric
    if metric is None or not workflow.patched("verify-alerts-about-metric"):
        return state.all_alerts_resolved
    if any(alert.is_about(metric) for alert in state.alerts.values()):
        state.log(workflow.now(), "note", "verify", f"verifying with the alerts about {metric}")
        return lambda: state.alerts_about_resolved(metric)
    state.log(workflow.now(), "note", "verify", f"no alert is about {metric}: verifying with every alert")
    return state.all_alerts_resolved


async def verify_alerts_resolved(state: IncidentState, action: WaitVerifyAction) -> None:
    """The alerts resolved, and still resolved `duration_s` later."""
    resolved = _resolved_condition(state, action)
    deadline = workflow.now() + timedelta(seconds=action.timeout_s)
    while True:
        remaining = (deadline - workflow.now()).total_seconds()
        try:
            await workflow.wait_condition(resolved, timeout=timedelta(seconds=max(remaining, 1)))
            if action.duration_s <= 0:
                break
            await workflow.wait_condition(
                lambda: not resolved(), timeout=timedelta(seconds=action.duration_s)
            )
            state.log(workflow.now(), "note", "verify", "an alert fired again while verifying; still waiting")
        except TimeoutError:
            if resolved():
                break
            state.record(
                workflow.now(), "verify_symptom", action.mode, "Failed", message="alerts still firing"
            )
            raise IncidentFailure(f"symptom still present {action.timeout_s}s after remediation") from None
    state.record(workflow.now(), "verify_symptom", action.mode, "Successful", message="every alert resolved")
