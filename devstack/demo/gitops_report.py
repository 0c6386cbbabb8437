"""The GitOps part of the demo's incident report: the culprit commit, what was suspended, the
in-cluster rollback, the revert in Git, the resume, the reconciled state at the end, and the two
times (to recovery, to the durable fix)."""

from __future__ import annotations

import html
from datetime import datetime

from pydantic import BaseModel, Field

from incidents.gitops import GitOpsRemediation


class GitOpsReport(BaseModel):
    reconciler: str
    repository: str
    policy: str
    stage: str
    culprit_commit: str | None = None
    culprit_author: str | None = None
    culprit_subject: str | None = None
    commits: list[str] = Field(default_factory=list, description="the demo's commits, oldest first")
    suspended_at: datetime | None = None
    rolled_back_at: datetime | None = None
    revert_commit: str | None = None
    revert_branch: str | None = None
    change_request: str | None = None
    landed: str | None = None
    landed_at: datetime | None = None
    resumed_at: datetime | None = None
    reconciled: str | None = None
    reconciled_at: datetime | None = None
    final_state: str = Field(default="", description="the reconciler and the object, read at the end")
    time_to_recovery_s: float | None = None
    time_to_durable_fix_s: float | None = None

    @property
    def durable(self) -> bool:
        return self.stage == "reconciled"


def gitops_report(
    progress: GitOpsRemediation,
    commits: list[str],
    final_state: str,
    first_bad: datetime | None,
    recovered_at: datetime | None,
) -> GitOpsReport:
    culprit, revert, request = progress.culprit, progress.revert, progress.change_request
    ownership = progress.ownership

    def since_bad(when: datetime | None) -> float | None:
        return round((when - first_bad).total_seconds(), 1) if when and first_bad else None

    return GitOpsReport(
        reconciler=ownership.reconciler.describe() if ownership else "-",
        repository=ownership.source.repo_url if ownership and ownership.source else "-",
        policy=progress.policy,
        stage=progress.stage,
        culprit_commit=culprit.commit.sha if culprit else None,
        culprit_author=f"{culprit.commit.author_name} <{culprit.commit.author_email}>" if culprit else None,
        culprit_subject=culprit.commit.subject if culprit else None,
        commits=commits,
        suspended_at=progress.suspended_at,
        rolled_back_at=progress.rolled_back_at,
        revert_commit=revert.revert.sha if revert and revert.revert else None,
        revert_branch=revert.branch if revert else None,
        change_request=f"{request.url} ({request.state})" if request else None,
        landed=progress.landed.evidence if progress.landed else None,
        landed_at=progress.landed_at,
        resumed_at=progress.resumed_at,
        reconciled=progress.reconciled.message if progress.reconciled else None,
        reconciled_at=progress.reconciled_at,
        final_state=final_state,
        time_to_recovery_s=since_bad(recovered_at),
        time_to_durable_fix_s=since_bad(progress.reconciled_at),
    )


def _at(when: datetime | None) -> str:
    return when.strftime("%H:%M:%S") if when else "-"


def gitops_lines(report: GitOpsReport) -> list[tuple[str, str]]:
    """(label, text) rows, in the order the handshake went."""
    commit = report.culprit_commit or "-"
    return [
        ("owner", f"{report.reconciler} from {report.repository} (policy {report.policy})"),
        ("commits", "; ".join(report.commits) or "-"),
        ("culprit commit", f"{commit[:12]} by {report.culprit_author}: {report.culprit_subject}"),
        ("suspended", _at(report.suspended_at)),
        ("rolled back in the cluster", _at(report.rolled_back_at)),
        ("revert commit", f"{(report.revert_commit or '-')[:12]} on {report.revert_branch or '-'}"),
        ("pull request", report.change_request or "-"),
        ("revert landed", f"{_at(report.landed_at)} ({report.landed or '-'})"),
        ("resumed", _at(report.resumed_at)),
        ("reconciled", f"{_at(report.reconciled_at)} ({report.reconciled or '-'})"),
        ("final state", report.final_state or "-"),
        (
            "times",
            f"time to recovery {report.time_to_recovery_s}s; time to durable fix (revert in Git, "
            f"applied by the reconciler) {report.time_to_durable_fix_s}s",
        ),
    ]


def gitops_text(report: GitOpsReport) -> str:
    return "\n".join(f"{label}: {text}" for label, text in gitops_lines(report))


def gitops_html(report: GitOpsReport) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
        for label, text in gitops_lines(report)
    )
    return f"<h2>GitOps: a rollback that sticks</h2><table>{rows}</table>"
