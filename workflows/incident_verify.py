"""Checking that the service recovered after a remediation: the rollout, then the symptom.

A rollout must complete; then the golden set is re-run until it is back to baseline (when the
incident has one), or every alert must resolve and stay resolved.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.evals import EvalActivities
    from activities.kube.activities import KubeActivities
    from incidents.actions import WaitVerifyAction
    from incidents.models import EvalRecheckRequest
    from incidents.remediation import VerifyRequest
    from workflows.incident_record import SHORT_RETRY, IncidentFailure, IncidentRecord

EVAL_RECHECK_INTERVAL = timedelta(seconds=10)


class RecoveryChecks(IncidentRecord):
    async def _verify(self, action: WaitVerifyAction) -> None:
        self._set_state("verifying")
        request = self._last_remediation
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
            self._record(
                "verify_rollout", action.mode, result.outcome, target=request.name, message=result.message
            )
            if result.outcome != "Successful":
                raise IncidentFailure(f"rollout of {request.name} did not complete: {result.message}")
        manifest, endpoint = self._input.eval_manifest, self._input.eval_endpoint
        if manifest is None and self._view.eval is not None:
            manifest, endpoint = self._view.eval.manifest_path, self._view.eval.endpoint
        if manifest and (action.eval or self._view.eval is not None or not self._alerts):
            await self._verify_by_eval(action, manifest, endpoint)
        elif self._alerts:
            await self._verify_alerts_resolved(action)
        else:
            self._record("verify_symptom", action.mode, "Inconclusive", message="no signal to verify with")
            raise IncidentFailure(
                "nothing to verify recovery with: no alert and no golden set for this service"
            )
        self._set_state("recovered")
        self._log("step", "verify", "service recovered")
        await self._notify("recovered")

    async def _verify_by_eval(self, action: WaitVerifyAction, manifest: str, endpoint: str | None) -> None:
        """Run the golden set again until it is back to baseline, or the verify timeout passes.

        A direct measurement, faster than alert windows clearing; repeated because a restored
        ConfigMap or a rolled-back Deployment takes a while to reach the pods that serve.
        """
        deadline = workflow.now() + timedelta(seconds=action.timeout_s)
        request = EvalRecheckRequest(
            manifest=manifest,
            incident_id=self._input.incident_id,
            service=self._input.key.service,
            namespace=self._input.key.namespace,
            endpoint=endpoint,
        )
        while True:
            symptom = await workflow.execute_activity_method(
                EvalActivities.recheck_eval,
                request,
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=SHORT_RETRY,
            )
            verdict = f"{symptom.metric} {symptom.candidate:.3f} vs baseline {symptom.baseline:.3f}"
            if not symptom.regression:
                self._record("verify_eval", action.mode, "Successful", message=f"recovered: {verdict}")
                return
            if workflow.now() + EVAL_RECHECK_INTERVAL >= deadline:
                self._record("verify_eval", action.mode, "Failed", message=f"still regressed: {verdict}")
                raise IncidentFailure(
                    f"golden set still regressed {action.timeout_s}s after remediation: {verdict}"
                )
            self._log("note", "verify", f"golden set not back yet ({verdict}); checking again")
            await workflow.sleep(EVAL_RECHECK_INTERVAL)

    async def _verify_alerts_resolved(self, action: WaitVerifyAction) -> None:
        """Every alert resolved (or, when the step names a metric, every alert about it), and still
        resolved `duration_s` later."""
        resolved = self._all_alerts_resolved
        metric = action.metric
        if metric is not None and workflow.patched("verify-alerts-about-metric"):
            if any(alert.is_about(metric) for alert in self._alerts.values()):
                self._log("note", "verify", f"verifying with the alerts about {metric}")

                def resolved() -> bool:
                    about = [alert for alert in self._alerts.values() if alert.is_about(metric)]
                    return bool(about) and all(alert.status == "resolved" for alert in about)

            else:
                self._log("note", "verify", f"no alert is about {metric}: verifying with every alert")
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
                self._log("note", "verify", "an alert fired again while verifying; still waiting")
            except TimeoutError:
                if resolved():
                    break
                self._record("verify_symptom", action.mode, "Failed", message="alerts still firing")
                raise IncidentFailure(
                    f"symptom still present {action.timeout_s}s after remediation"
                ) from None
        self._record("verify_symptom", action.mode, "Successful", message="every alert resolved")
