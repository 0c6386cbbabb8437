"""Where the simulated service learns which model, prompt and corpus versions are deployed.

Three sources: fixed values (StaticVersionSource), a YAML/JSON file re-read when it changes
(FileVersionSource), and the local Kubernetes cluster polled about once a second
(KubeVersionSource). Every source answers `current()` without blocking.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

MODEL_ANNOTATION = "backout.dev/model-version"
PROMPT_ANNOTATION = "backout.dev/prompt-version"
CORPUS_ANNOTATION = "backout.dev/corpus-version"
PROMPT_DATA_KEY = "prompt_version"
PROMPT_TEMPLATE_KEY = "template"
CORPUS_DATA_KEY = "corpus_version"
MODEL_ENV = "MODEL_VERSION"

log = logging.getLogger("simservice.versions")


class DeployedVersions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_version: str = "llm-v1"
    prompt_version: str = "prompt-v1"
    corpus_version: str = "corpus-v1"
    prompt_template: str | None = None


class VersionSourceError(ValueError):
    """A version source that cannot be read; the message names the file or object."""


class VersionSource(Protocol):
    def current(self) -> DeployedVersions: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class StaticVersionSource:
    def __init__(self, versions: DeployedVersions) -> None:
        self._versions = versions

    def set(self, versions: DeployedVersions) -> None:
        self._versions = versions

    def current(self) -> DeployedVersions:
        return self._versions

    def describe(self) -> dict[str, Any]:
        return {"source": "static"}

    def close(self) -> None:
        return None


def read_versions_file(path: Path) -> DeployedVersions:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise VersionSourceError(f"versions file {path}: no such file") from exc
    except yaml.YAMLError as exc:
        raise VersionSourceError(f"versions file {path}: invalid YAML/JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise VersionSourceError(f"versions file {path}: top level must be a mapping")
    try:
        return DeployedVersions.model_validate(loaded)
    except ValidationError as exc:
        raise VersionSourceError(f"versions file {path}: {exc.errors()[0]['msg']}") from exc


class FileVersionSource:
    """A YAML or JSON mapping {model_version, prompt_version, corpus_version}; re-read on change."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._versions = read_versions_file(path)
        self._stamp = self._file_stamp()
        self._error: str | None = None

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def current(self) -> DeployedVersions:
        stamp = self._file_stamp()
        with self._lock:
            if stamp is not None and stamp != self._stamp:
                try:
                    self._versions = read_versions_file(self._path)
                    self._error = None
                except VersionSourceError as exc:
                    # A half-written file: keep serving the last good versions.
                    self._error = str(exc)
                self._stamp = stamp
            return self._versions

    def describe(self) -> dict[str, Any]:
        return {"source": "file", "path": str(self._path), "error": self._error}

    def close(self) -> None:
        return None


class KubeTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str
    deployment: str
    prompt_configmap: str | None = None
    corpus_configmap: str | None = None
    kubeconfig: Path | None = None
    poll_interval_s: float = 1.0


def _model_version_of(deployment: Any) -> str | None:
    """Pod-template annotation first: `rollout undo` restores the template, not Deployment metadata."""
    template_meta = (
        deployment.spec.template.metadata if deployment.spec and deployment.spec.template else None
    )
    for found in (
        template_meta.annotations if template_meta else None,
        deployment.metadata.annotations if deployment.metadata else None,
    ):
        if found and found.get(MODEL_ANNOTATION):
            return str(found[MODEL_ANNOTATION])
    containers = deployment.spec.template.spec.containers if deployment.spec else []
    for container in containers or []:
        for env in container.env or []:
            if env.name == MODEL_ENV and env.value:
                return str(env.value)
    return None


def _configmap_value(configmap: Any, annotation: str, data_key: str) -> str | None:
    data = configmap.data or {}
    if data.get(data_key):
        return str(data[data_key])
    annotations = configmap.metadata.annotations if configmap.metadata else None
    if annotations and annotations.get(annotation):
        return str(annotations[annotation])
    return None


class KubeVersionSource:
    """Polls the Deployment and ConfigMaps with the official kubernetes client in a daemon thread."""

    def __init__(self, targets: KubeTargets, fallback: DeployedVersions | None = None) -> None:
        from kubernetes import client, config

        self._targets = targets
        if targets.kubeconfig is not None:
            api_client = config.new_client_from_config(config_file=str(targets.kubeconfig))
        else:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._versions = fallback or DeployedVersions()
        self._error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.poll_once()
        self._thread = threading.Thread(target=self._loop, name="simservice-kube-poll", daemon=True)
        self._thread.start()

    def poll_once(self) -> None:
        targets = self._targets
        try:
            deployment = self._apps.read_namespaced_deployment(targets.deployment, targets.namespace)
            model = _model_version_of(deployment)
            prompt = template = corpus = None
            if targets.prompt_configmap:
                prompt_cm = self._core.read_namespaced_config_map(targets.prompt_configmap, targets.namespace)
                prompt = _configmap_value(prompt_cm, PROMPT_ANNOTATION, PROMPT_DATA_KEY)
                template = (prompt_cm.data or {}).get(PROMPT_TEMPLATE_KEY)
            if targets.corpus_configmap:
                corpus_cm = self._core.read_namespaced_config_map(targets.corpus_configmap, targets.namespace)
                corpus = _configmap_value(corpus_cm, CORPUS_ANNOTATION, CORPUS_DATA_KEY)
        except Exception as exc:  # the apiserver may be briefly away; keep the last known versions
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("version poll failed: %s", self._error)
            return
        with self._lock:
            previous = self._versions
            self._versions = DeployedVersions(
                model_version=model or previous.model_version,
                prompt_version=prompt or previous.prompt_version,
                corpus_version=corpus or previous.corpus_version,
                prompt_template=template if template is not None else previous.prompt_template,
            )
            self._error = None

    def _loop(self) -> None:
        while not self._stop.wait(self._targets.poll_interval_s):
            self.poll_once()

    def current(self) -> DeployedVersions:
        with self._lock:
            return self._versions

    def describe(self) -> dict[str, Any]:
        return {
            "source": "kubernetes",
            "namespace": self._targets.namespace,
            "deployment": self._targets.deployment,
            "error": self._error,
        }

    def close(self) -> None:
        self._stop.set()
