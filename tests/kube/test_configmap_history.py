"""ConfigMap and Secret history kept in the cluster, and restores from it."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from activities.kube import history, ledger, remediation
from activities.kube.client import KubeApis
from config import Settings, load_settings
from incidents.remediation import RemediationRequest
from tests.kube.helpers import wait_until
from worker.cli import app

pytestmark = pytest.mark.kube

PROMPTS_V1 = {"system": "You are a helpful assistant.\n", "temperature": "0.2"}
PROMPTS_V2 = {"system": "You are a terse assistant.\n", "temperature": "0.2", "max_tokens": "256"}
PROMPTS_V3 = {"system": "You are a pirate.\n", "temperature": "0.9"}


@contextmanager
def recorder(namespace: str) -> Iterator[None]:
    """The worker's history recorder, as a separate 'backout process' that can be stopped."""
    stop = threading.Event()
    settings = load_settings(allowed_namespaces=[namespace])
    thread = threading.Thread(
        target=history.run_history_recorder, args=(settings, stop), kwargs={"window_s": 2}
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive(), "the recorder did not stop"


def _recorded(apis: KubeApis, namespace: str, kind: history.ObjectKind, name: str) -> list[int]:
    return [version.version for version in history.list_versions(apis, kind, namespace, name)]


def _edit(apis: KubeApis, namespace: str, data: dict[str, str]) -> None:
    config_map = apis.core.read_namespaced_config_map("prompts", namespace)
    config_map.data = data
    apis.core.replace_namespaced_config_map("prompts", namespace, config_map)


def test_restore_the_previous_data_exactly_after_a_recorder_restart(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    kube_apis.core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "prompts"}, "data": PROMPTS_V1}
    )
    with recorder(kube_namespace):
        wait_until(lambda: _recorded(kube_apis, kube_namespace, "configmap", "prompts") == [1])
        _edit(kube_apis, kube_namespace, PROMPTS_V2)
        wait_until(lambda: _recorded(kube_apis, kube_namespace, "configmap", "prompts") == [1, 2])
    # backout restarts: a new recorder process picks up the history kept in the cluster.
    with recorder(kube_namespace):
        _edit(kube_apis, kube_namespace, PROMPTS_V3)
        wait_until(lambda: _recorded(kube_apis, kube_namespace, "configmap", "prompts") == [1, 2, 3])

    result = CliRunner().invoke(app, ["rollback", "configmap/prompts", "-n", kube_namespace])
    assert result.exit_code == 0, result.output
    assert "from version 3 to 2" in result.output
    restored = kube_apis.core.read_namespaced_config_map("prompts", kube_namespace)
    assert restored.data == PROMPTS_V2
    # The restore itself is recorded, so it can be undone too.
    assert _recorded(kube_apis, kube_namespace, "configmap", "prompts") == [1, 2, 3, 4]


def test_restore_an_explicit_version_with_binary_data(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    blob = base64.b64encode(b"\x00\x01corpus-index").decode()
    body = {"metadata": {"name": "prompts"}, "data": PROMPTS_V1, "binaryData": {"index.bin": blob}}
    kube_apis.core.create_namespaced_config_map(kube_namespace, body)
    history.record_now(kube_apis, kube_namespace)
    for data in (PROMPTS_V2, PROMPTS_V3):
        config_map = kube_apis.core.read_namespaced_config_map("prompts", kube_namespace)
        config_map.data, config_map.binary_data = data, None
        kube_apis.core.replace_namespaced_config_map("prompts", kube_namespace, config_map)
        history.record_now(kube_apis, kube_namespace)
    request = RemediationRequest(
        incident_id="inc-cm",
        operation="rollback",
        target_type="configmap",
        name="prompts",
        namespace=kube_namespace,
        to_version="1",
    )
    result = remediation.remediate(kube_apis, kube_settings, request)
    assert (result.outcome, result.from_version, result.to_version) == ("Successful", "3", "1")
    restored = kube_apis.core.read_namespaced_config_map("prompts", kube_namespace)
    assert restored.data == PROMPTS_V1
    assert restored.binary_data == {"index.bin": blob}
    assert remediation.remediate(kube_apis, kube_settings, request).message.startswith("already applied")


def test_secret_history_stays_in_secrets_and_values_never_appear(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    def encoded(value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    kube_apis.core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "llm-key"}, "data": {"api_key": encoded("sk-first-1234")}}
    )
    history.record_now(kube_apis, kube_namespace)
    kube_apis.core.patch_namespaced_secret(
        "llm-key", kube_namespace, {"data": {"api_key": encoded("sk-second-5678")}}
    )
    history.record_now(kube_apis, kube_namespace)

    history_configmaps = kube_apis.core.list_namespaced_config_map(kube_namespace).items
    assert not any("llm-key" in config_map.metadata.name for config_map in history_configmaps)
    history_secrets = kube_apis.core.list_namespaced_secret(
        kube_namespace, label_selector=f"{history.HISTORY_OF_LABEL}=llm-key"
    ).items
    assert len(history_secrets) == 2 and all(s.type == history.HISTORY_SECRET_TYPE for s in history_secrets)

    request = RemediationRequest(
        incident_id="inc-secret",
        operation="rollback",
        target_type="secret",
        name="llm-key",
        namespace=kube_namespace,
    )
    result = remediation.remediate(kube_apis, kube_settings, request)
    assert result.applied and "api_key: (value changed, hidden)" in result.diff
    text = result.model_dump_json()
    for secret_text in (
        "sk-first-1234",
        "sk-second-5678",
        encoded("sk-first-1234"),
        encoded("sk-second-5678"),
    ):
        assert secret_text not in text
    restored = kube_apis.core.read_namespaced_secret("llm-key", kube_namespace)
    assert base64.b64decode(restored.data["api_key"]).decode() == "sk-first-1234"


def test_an_unrecorded_version_is_bad_input(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    kube_apis.core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "prompts"}, "data": PROMPTS_V1}
    )
    result = CliRunner().invoke(
        app, ["rollback", "configmap/prompts", "-n", kube_namespace, "--to-version", "7"]
    )
    assert result.exit_code == 2
    assert "version 7 is not recorded (recorded versions: [1])" in result.output
    assert kube_apis.core.read_namespaced_config_map("prompts", kube_namespace).data == PROMPTS_V1


def test_restore_the_version_before_a_ledger_change(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    kube_apis.core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "prompts"}, "data": PROMPTS_V1}
    )
    history.record_now(kube_apis, kube_namespace)
    for data in (PROMPTS_V2, PROMPTS_V3):
        _edit(kube_apis, kube_namespace, data)
        history.record_now(kube_apis, kube_namespace)
    since = datetime.now(UTC) - timedelta(hours=1)
    changes = [c for c in ledger.list_changes(kube_apis, [kube_namespace], since) if c.service == "prompts"]
    assert [(c.kind, c.from_version, c.to_version) for c in changes] == [
        ("config", "1", "2"),
        ("config", "2", "3"),
    ]
    culprit = changes[0]  # v1 -> v2 is to blame: go back to v1, past the later edit
    request = RemediationRequest(
        incident_id="inc-ledger",
        operation="rollback",
        target_type="configmap",
        name="prompts",
        namespace=kube_namespace,
        change=culprit,
    )
    result = remediation.remediate(kube_apis, kube_settings, request)
    assert (result.from_version, result.to_version) == ("3", "1")
    assert kube_apis.core.read_namespaced_config_map("prompts", kube_namespace).data == PROMPTS_V1
