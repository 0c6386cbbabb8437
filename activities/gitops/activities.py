"""The GitOps handshake as Temporal activities: methods of one class built with its config and
clients (temporalio/samples-python style), one input model per activity.

Every activity returns a typed result: refusals and conflicts are `Failed` results a
workflow can page about, not exceptions. Where the settings ask for dry runs (kube_dry_run,
kube_dry_run_namespaces: activities/kube/dry_run.py) suspend and resume are server-side dry runs
and a revert is built and diffed but never pushed, whatever the request says; results say so. Exceptions are for what a retry may fix (a
transport error) or for bad input (non-retryable); their messages are redacted and raised
`from None`, so no token reaches workflow history through a cause chain either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

from kubernetes.client import CustomObjectsApi
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gitops.git import GitError, GitRepository
from activities.gitops.manifests import (
    ManifestNotFound,
    content_fields,
    find_culprit,
    find_manifest,
    is_subset,
)
from activities.gitops.ownership import OwnershipError, OwnershipResolver
from activities.gitops.providers.base import ChangeRequestProvider, ChangeRequestSpec, ProviderError
from activities.gitops.providers.factory import make_provider
from activities.gitops.reconcilers import ReconcilerError, Reconcilers
from activities.gitops.reverts import RevertWriter, revert_landed
from activities.gitops.secrets import CredentialError, Redactor, SecretKeyRef, kube_secret_reader, resolve
from activities.kube.client import KubeApis, shared_apis
from activities.kube.dry_run import NO_DRY_RUN, DryRun
from config import Settings
from config.gitops import GitOpsConfig, UnsupportedRepository
from incidents.gitops import (
    ChangeRequestResult,
    CulpritCommit,
    GitSource,
    ObjectRef,
    Ownership,
    ReconciledResult,
    ReconcilerRef,
    ResumeResult,
    RevertCommit,
    RevertLanded,
    RevertResult,
    SuspensionRecord,
    SuspensionResult,
)
from incidents.models import Outcome

log = logging.getLogger(__name__)
T = TypeVar("T")
SECRET_DIFF_NOTE = "(Secret content is not shown)"
READERS: dict[str, tuple[str, str]] = {
    "ConfigMap": ("core", "read_namespaced_config_map"),
    "Secret": ("core", "read_namespaced_secret"),
    "Deployment": ("apps", "read_namespaced_deployment"),
    "StatefulSet": ("apps", "read_namespaced_stateful_set"),
    "DaemonSet": ("apps", "read_namespaced_daemon_set"),
}


# --- inputs ---------------------------------------------------------------------------------


class ResolveOwnerRequest(BaseModel):
    object: ObjectRef


class FindCulpritRequest(BaseModel):
    ownership: Ownership
    compare_live: bool = True


class SuspendRequest(BaseModel):
    incident_id: str
    reconciler: ReconcilerRef
    namespace: str | None = Field(default=None, description="where the incident acts (dry-run policy)")
    dry_run: bool = False
    settle_s: float = Field(
        default=30.0, ge=0, description="wait this long for the controller to finish a running reconcile"
    )


class WriteRevertRequest(BaseModel):
    incident_id: str
    culprit: CulpritCommit
    mode: Literal["branch", "push"] = Field(
        description="branch: push a revert branch (for a pull request); push: onto the tracked branch"
    )
    dry_run: bool = Field(default=False, description="build the revert commit and its diff, push nothing")


class OpenChangeRequestRequest(BaseModel):
    incident_id: str
    culprit: CulpritCommit
    revert: RevertCommit
    summary: str = ""


class ChangeRequestStateRequest(BaseModel):
    repo_url: str
    number: int


class RevertLandedRequest(BaseModel):
    culprit: CulpritCommit
    revert_sha: str | None = None


class ResumeRequest(BaseModel):
    record: SuspensionRecord
    namespace: str | None = Field(default=None, description="where the incident acts (dry-run policy)")
    dry_run: bool = False


class VerifyReconciledRequest(BaseModel):
    ownership: Ownership
    expected_revision: str = Field(
        description="the commit (or an ancestor of the one) the reconciler must apply"
    )
    timeout_s: float = Field(default=300.0, gt=0)
    poll_s: float = Field(default=2.0, gt=0)


class PrepareRequest(BaseModel):
    """Everything the handshake needs before it changes anything, for one object."""

    incident_id: str
    object: ObjectRef
    mode: Literal["branch", "push"] | None = Field(
        default=None, description="also build (never push) the revert this way, for a preview"
    )


class Prepared(BaseModel):
    """The object's owner and source, the commit behind its content and (asked for) the revert preview."""

    outcome: Outcome
    message: str
    ownership: Ownership | None = None
    culprit: CulpritCommit | None = None
    preview: RevertResult | None = None


class OwnershipResult(BaseModel):
    ownership: Ownership | None = None
    message: str = ""


class CulpritResult(BaseModel):
    outcome: Outcome
    message: str
    culprit: CulpritCommit | None = None


# --- the activities -------------------------------------------------------------------------


def incident_slug(incident_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", incident_id).strip("-.")[:40] or "incident"


class GitOpsActivities:
    """Everything the GitOps handshake does outside the workflow."""

    def __init__(
        self,
        config: GitOpsConfig,
        kube: Callable[[], KubeApis],
        redactor: Redactor | None = None,
        dry_run: DryRun = NO_DRY_RUN,
        allowed: Callable[[str | None], bool] = lambda namespace: False,
    ) -> None:
        self.config = config
        self._kube = kube
        self.redactor = redactor or Redactor()
        self.dry_run = dry_run
        self.allowed = allowed

    @classmethod
    def for_settings(cls, settings: Settings) -> GitOpsActivities:
        """The worker's instance: the cluster and dry-run policy of `settings`, clones under its state dir."""
        config = settings.gitops
        if "cache_dir" not in config.model_fields_set:
            config = config.model_copy(update={"cache_dir": settings.state_dir / "gitops"})
        return cls(
            config,
            lambda: shared_apis(settings),
            dry_run=DryRun.of(settings),
            allowed=settings.namespace_allowed,
        )

    def _dry(self, asked: bool, *namespaces: str | None) -> bool:
        return asked or any(self.dry_run.applies(namespace) for namespace in namespaces if namespace)

    # --- plumbing ---------------------------------------------------------------------------

    def _custom(self) -> CustomObjectsApi:
        return CustomObjectsApi(self._kube().api_client)

    def _read_secret(self, ref: SecretKeyRef) -> str:
        return kube_secret_reader(self._kube().core)(ref)

    def _repository(self, repo_url: str) -> GitRepository:
        repository = self.config.repository(repo_url)
        username, token = None, None
        if repository.credentials is not None:
            token = resolve(repository.credentials.token, self._read_secret, self.redactor)
            username = repository.credentials.username
        return GitRepository(
            repository.remote_url,
            self.config.cache_dir,
            self.redactor,
            self.config.author,
            username=username,
            token=token,
            timeout_s=self.config.git_timeout_s,
        )

    @contextlib.contextmanager
    def _provider(self, repo_url: str) -> Iterator[ChangeRequestProvider | None]:
        """The repository's pull/merge request provider (None when none is configured), closed after use."""
        repository = self.config.repository(repo_url)
        if repository.provider is None:
            yield None
            return
        token = resolve(repository.provider.token, self._read_secret, self.redactor)
        provider = make_provider(repository.provider, token, self.redactor)
        try:
            yield provider
        finally:
            provider.close()

    def _tracked_branch(self, repo: GitRepository, source: GitSource) -> str | None:
        return repo.default_branch() if source.branch == "HEAD" else source.branch

    def read_live(self, ref: ObjectRef) -> dict[str, Any] | None:
        reader = READERS.get(ref.kind)
        if reader is None or ref.namespace is None:
            return None
        apis = self._kube()
        try:
            obj = getattr(getattr(apis, reader[0]), reader[1])(ref.name, ref.namespace)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        live: dict[str, Any] = apis.api_client.sanitize_for_serialization(obj)
        return live

    async def _run(self, doing: str, work: Callable[[], T]) -> T:
        """Run blocking work in a thread; turn failures into redacted ApplicationErrors."""
        try:
            return await asyncio.to_thread(work)
        except ApplicationError:
            raise
        except (CredentialError, UnsupportedRepository, ManifestNotFound, OwnershipError) as exc:
            raise ApplicationError(
                self.redactor(f"{doing}: {exc}"), type=type(exc).__name__, non_retryable=True
            ) from None
        except ProviderError as exc:
            raise ApplicationError(
                self.redactor(f"{doing}: {exc}"), type="ProviderError", non_retryable=not exc.retryable
            ) from None
        except (GitError, ReconcilerError) as exc:
            raise ApplicationError(self.redactor(f"{doing}: {exc}"), type=type(exc).__name__) from None
        except Exception as exc:
            status = getattr(exc, "status", None)
            detail = f"HTTP {status}" if status else f"{type(exc).__name__}: {exc}"
            raise ApplicationError(
                self.redactor(f"{doing}: {detail}"),
                type="GitOpsError",
                non_retryable=status in (400, 401, 403, 404, 422),
            ) from None

    # --- ownership and culprit --------------------------------------------------------------

    def resolve_owner_sync(self, request: ResolveOwnerRequest) -> OwnershipResult:
        return self.owner_of(request.object, self.read_live(request.object))

    def owner_of(self, ref: ObjectRef, live: dict[str, Any] | None) -> OwnershipResult:
        """resolve_owner_sync of an object already read: `live` is the API's JSON of it (or only its
        apiVersion, kind and ownership.OWNERSHIP_METADATA, all that is read), None if it is gone."""
        if live is None:
            return OwnershipResult(message=f"{ref.describe()} not found (or a kind backout does not read)")
        ownership = OwnershipResolver(self._custom(), self.config.argocd_namespaces).resolve(live)
        if ownership is None:
            return OwnershipResult(message=f"{ref.describe()} is not managed by Flux or Argo CD")
        return OwnershipResult(ownership=ownership, message=f"applied by {ownership.reconciler.describe()}")

    @activity.defn(name="gitops_resolve_owner")
    async def resolve_owner(self, request: ResolveOwnerRequest) -> OwnershipResult:
        """The Flux or Argo CD reconciler that applies the object, and its Git source."""
        return await self._run(
            f"resolving the owner of {request.object.describe()}", lambda: self.resolve_owner_sync(request)
        )

    def find_culprit_sync(self, request: FindCulpritRequest) -> CulpritResult:
        ownership = request.ownership
        if ownership.source is None:
            return CulpritResult(
                outcome="Inconclusive", message=ownership.unresolved_reason or "no Git source"
            )
        repo = self._repository(ownership.source.repo_url)
        live = self.read_live(ownership.object) if request.compare_live else None
        with repo.locked():
            repo.fetch()
            source = ownership.source
            if source.revision is None:
                branch = self._tracked_branch(repo, source)
                tip = repo.branch_tip(branch) if branch else None
                if tip is None:
                    return CulpritResult(
                        outcome="Inconclusive", message="the reconciler reports no applied revision"
                    )
                source = source.model_copy(update={"revision": tip})
            elif not repo.has_commit(source.revision):
                return CulpritResult(
                    outcome="Inconclusive",
                    message=f"applied revision {source.revision[:12]} is not in the repository",
                )
            culprit = find_culprit(repo, source, ownership.object, live)
        if ownership.object.kind == "Secret":
            culprit.object_diff = SECRET_DIFF_NOTE
        commit = culprit.commit
        return CulpritResult(
            outcome="Successful",
            message=f"{ownership.object.describe()} content came with {commit.short_sha} by {commit.author_name}: {commit.subject}",
            culprit=culprit,
        )

    @activity.defn(name="gitops_find_culprit")
    async def find_culprit(self, request: FindCulpritRequest) -> CulpritResult:
        """The commit (SHA, author, message, files) that introduced the object's applied content."""
        return await self._run(
            f"finding the commit behind {request.ownership.object.describe()}",
            lambda: self.find_culprit_sync(request),
        )

    def prepare_sync(self, request: PrepareRequest) -> Prepared:
        owned = self.resolve_owner_sync(ResolveOwnerRequest(object=request.object))
        if owned.ownership is None:
            return Prepared(outcome="Inconclusive", message=owned.message)
        found = self.find_culprit_sync(FindCulpritRequest(ownership=owned.ownership))
        if found.culprit is None:
            return Prepared(outcome=found.outcome, message=found.message, ownership=owned.ownership)
        preview = None
        if request.mode is not None:
            preview = self.write_revert_sync(
                WriteRevertRequest(
                    incident_id=request.incident_id, culprit=found.culprit, mode=request.mode, dry_run=True
                )
            )
        return Prepared(
            outcome="Successful",
            message=f"{owned.message}; {found.message}",
            ownership=owned.ownership,
            culprit=found.culprit,
            preview=preview,
        )

    @activity.defn(name="gitops_prepare")
    async def prepare(self, request: PrepareRequest) -> Prepared:
        """Owner, Git source and culprit commit of an object, and a revert built but never pushed."""
        return await self._run(
            f"preparing the GitOps rollback of {request.object.describe()}",
            lambda: self.prepare_sync(request),
        )

    # --- suspend / resume -------------------------------------------------------------------

    def suspend_sync(self, request: SuspendRequest) -> SuspensionResult:
        if not self.allowed(request.namespace):
            return SuspensionResult(
                outcome="Failed", message=f"refused: namespace {request.namespace!r} is not in the allow list"
            )
        dry = self._dry(request.dry_run, request.namespace)
        reconcilers = Reconcilers(self._custom(), dry_run=dry)
        result = reconcilers.suspend(request.reconciler, request.incident_id)
        if dry:
            result.dry_run = True
            result.message = f"dry run, nothing suspended (the API server accepted it): {result.message}"
        elif result.record is not None and not result.record.already_suspended:
            unsettled = reconcilers.settle(request.reconciler, request.settle_s)
            if unsettled:
                result.message += f" (not confirmed within {request.settle_s:.0f}s: {unsettled})"
        return result

    @activity.defn(name="gitops_suspend")
    async def suspend(self, request: SuspendRequest) -> SuspensionResult:
        """Suspend exactly the owning reconciler, recorded on it and in the result."""
        return await self._run(
            f"suspending {request.reconciler.describe()}", lambda: self.suspend_sync(request)
        )

    def resume_sync(self, request: ResumeRequest) -> ResumeResult:
        dry = self._dry(request.dry_run, request.namespace)
        result = Reconcilers(self._custom(), dry_run=dry).resume(request.record)
        if dry:
            result.dry_run = True
            result.message = f"dry run, nothing resumed (the API server accepted it): {result.message}"
        return result

    @activity.defn(name="gitops_resume")
    async def resume(self, request: ResumeRequest) -> ResumeResult:
        """Resume what this incident suspended (nothing else), and ask for an immediate reconcile."""
        return await self._run(
            f"resuming {request.record.reconciler.describe()}", lambda: self.resume_sync(request)
        )

    # --- the revert -------------------------------------------------------------------------

    def write_revert_sync(self, request: WriteRevertRequest) -> RevertResult:
        culprit = request.culprit
        commit = culprit.commit
        note = (
            f"backout incident {request.incident_id}: {culprit.object.describe()} "
            f"reverted to its content before {commit.short_sha}."
        )
        branch = f"{self.config.branch_prefix}{commit.sha[:12]}-{incident_slug(request.incident_id)}"
        repo = self._repository(culprit.source.repo_url)
        dry = self._dry(request.dry_run, culprit.object.namespace)
        with repo.locked():
            repo.fetch()
            writer = RevertWriter(repo, culprit, request.mode, branch, note)
            result = writer.write(self._tracked_branch(repo, culprit.source), dry, self.config.push_attempts)
        result.dry_run = dry
        return result

    @activity.defn(name="gitops_write_revert")
    async def write_revert(self, request: WriteRevertRequest) -> RevertResult:
        """Revert the culprit commit on a branch (or the tracked branch) and push it; conflicts are Failed."""
        return await self._run(
            f"reverting {request.culprit.commit.short_sha}", lambda: self.write_revert_sync(request)
        )

    def open_change_request_sync(self, request: OpenChangeRequestRequest) -> ChangeRequestResult:
        culprit = request.culprit
        base = culprit.source.branch
        if base in (None, "HEAD"):
            repo = self._repository(culprit.source.repo_url)
            with repo.locked():
                base = repo.default_branch()
        commit = culprit.commit
        body = "\n\n".join(
            part
            for part in (
                f"backout incident `{request.incident_id}` rolled back `{culprit.object.describe()}` in the cluster "
                f"and reverts the commit that introduced its content: {commit.sha} by {commit.author_name} "
                f"({commit.subject}).",
                request.summary,
                f"Reconciliation of the owner stays suspended until this is merged.\n\n```diff\n{request.revert.diff}\n```",
            )
            if part
        )
        spec = ChangeRequestSpec(
            title=f'Revert "{commit.subject}" (backout {request.incident_id})',
            body=self.redactor(body),
            head_branch=request.revert.branch,
            base_branch=base,
        )
        with self._provider(culprit.source.repo_url) as provider:
            if provider is None:
                return ChangeRequestResult(
                    outcome="Failed", message=f"no provider configured for {culprit.source.repo_url}"
                )
            opened = provider.open(spec)
        return ChangeRequestResult(
            outcome="Successful", message=f"opened {opened.url}", change_request=opened
        )

    @activity.defn(name="gitops_open_change_request")
    async def open_change_request(self, request: OpenChangeRequestRequest) -> ChangeRequestResult:
        """Open a pull/merge request from the revert branch to the tracked branch."""
        return await self._run(
            "opening the pull/merge request", lambda: self.open_change_request_sync(request)
        )

    def change_request_state_sync(self, request: ChangeRequestStateRequest) -> ChangeRequestResult:
        with self._provider(request.repo_url) as provider:
            if provider is None:
                return ChangeRequestResult(
                    outcome="Failed", message=f"no provider configured for {request.repo_url}"
                )
            current = provider.get(request.number)
        return ChangeRequestResult(
            outcome="Successful", message=f"{current.url} is {current.state}", change_request=current
        )

    @activity.defn(name="gitops_change_request_state")
    async def change_request_state(self, request: ChangeRequestStateRequest) -> ChangeRequestResult:
        """Open, merged or closed: the pull/merge request as the provider reports it."""
        return await self._run(
            f"reading request {request.number}", lambda: self.change_request_state_sync(request)
        )

    # --- did it land, did the reconciler apply it -------------------------------------------

    def revert_landed_sync(self, request: RevertLandedRequest) -> RevertLanded:
        culprit = request.culprit
        repo = self._repository(culprit.source.repo_url)
        with repo.locked():
            repo.fetch()
            branch = self._tracked_branch(repo, culprit.source) or ""
            return revert_landed(repo, culprit, branch, request.revert_sha)

    @activity.defn(name="gitops_revert_landed")
    async def revert_landed(self, request: RevertLandedRequest) -> RevertLanded:
        """Whether the tracked branch now holds the reverted state (revert commit, or equal content)."""
        return await self._run("checking the tracked branch", lambda: self.revert_landed_sync(request))

    def reconciled_once(self, request: VerifyReconciledRequest) -> ReconciledResult:
        ownership = request.ownership
        status = Reconcilers(self._custom()).status(ownership.reconciler)
        if status.suspended:
            return ReconciledResult(
                outcome="Inconclusive",
                message=f"{ownership.reconciler.describe()} is suspended",
                status=status,
            )
        applied = status.applied_revision
        if not applied or ownership.source is None:
            return ReconciledResult(
                outcome="Inconclusive", message="no applied revision reported yet", status=status
            )
        repo = self._repository(ownership.source.repo_url)
        with repo.locked():
            if not (repo.has_commit(applied) and repo.has_commit(request.expected_revision)):
                repo.fetch()
            if applied != request.expected_revision and not repo.is_ancestor(
                request.expected_revision, applied
            ):
                return ReconciledResult(
                    outcome="Inconclusive",
                    message=f"applied {applied[:12]}, waiting for {request.expected_revision[:12]}",
                    status=status,
                )
            found = find_manifest(repo, applied, ownership.source, ownership.object)
        live = self.read_live(ownership.object)
        if found is None:
            return ReconciledResult(
                outcome="Failed",
                message=f"{ownership.object.describe()} is gone from Git at {applied[:12]}",
                status=status,
            )
        matches = live is not None and is_subset(content_fields(found[1]), live)
        if not matches:
            return ReconciledResult(
                outcome="Inconclusive",
                message=f"applied {applied[:12]} but the live {ownership.object.describe()} differs from Git",
                status=status,
                object_matches=False,
            )
        return ReconciledResult(
            outcome="Successful",
            message=f"{ownership.reconciler.describe()} applied {applied[:12]} and {ownership.object.describe()} matches it",
            status=status,
            object_matches=True,
        )

    @activity.defn(name="gitops_verify_reconciled")
    async def verify_reconciled(self, request: VerifyReconciledRequest) -> ReconciledResult:
        """Wait until the reconciler applied the expected revision and the object carries it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_s
        while True:
            result = await self._run("verifying the reconciled state", lambda: self.reconciled_once(request))
            if result.outcome in ("Successful", "Failed") or loop.time() >= deadline:
                return result
            if activity.in_activity():
                activity.heartbeat(result.message)
            await asyncio.sleep(request.poll_s)

    @property
    def all(self) -> list[Callable[..., Any]]:
        """Every activity method, for the worker's registration."""
        return [
            self.resolve_owner,
            self.find_culprit,
            self.prepare,
            self.suspend,
            self.resume,
            self.write_revert,
            self.open_change_request,
            self.change_request_state,
            self.revert_landed,
            self.verify_reconciled,
        ]
