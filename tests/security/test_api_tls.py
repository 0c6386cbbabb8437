"""The API on HTTPS, and with mutual TLS: a real `backout api` process on the suite's Temporal, a real
Alertmanager (Debian package) delivering over mutual TLS, the CLI as a client.

Certificates come from a throwaway CA (devstack/cluster/pki.py); a second CA signs the certificate a
client the API must refuse presents.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devstack.cluster.pki import ensure_ca, issue_cert
from devstack.prometheus import AlertmanagerConfig, AlertmanagerServer
from tests.fixtures.temporal import settings_env
from tests.security.conftest import (
    OPERATOR,
    SENDER,
    ApiProcess,
    bearer,
    secure_settings,
    start_api,
    start_refused,
)
from worker.cli.watch import client_tls
from worker.temporal_server import TemporalDevServer

pytestmark = [pytest.mark.temporal]


@dataclass
class Pki:
    ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]  # a client certificate another CA signed

    def context(self, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
        """A client's TLS, as the CLI builds it: trusts the API's CA, presents `cert` if given."""
        return client_tls(self.ca, cert)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ours, theirs = tmp_path_factory.mktemp("pki"), tmp_path_factory.mktemp("other-pki")
    ensure_ca(ours)
    ensure_ca(theirs)
    return Pki(
        ca=ours / "ca.crt",
        server=issue_cert(ours, "api", "backout-api", server_hosts=["127.0.0.1", "localhost"]),
        client=issue_cert(ours, "alertmanager", "alertmanager"),
        stranger=issue_cert(theirs, "stranger", "alertmanager"),
    )


@pytest.fixture(scope="module")
def mutual_tls_api(
    temporal_server: TemporalDevServer, tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> Iterator[ApiProcess]:
    state = tmp_path_factory.mktemp("tls") / "state"
    settings = secure_settings(
        temporal_server,
        state,
        api_tls_cert_file=pki.server[0],
        api_tls_key_file=pki.server[1],
        api_tls_client_ca_file=pki.ca,
    )
    settings = settings.model_copy(update={"public_url": f"https://127.0.0.1:{settings.api_port}"})
    api = start_api(settings, verify=pki.context(pki.client))
    try:
        yield api
    finally:
        api.stop()


def test_a_client_certificate_of_the_ca_is_needed_before_any_request(
    mutual_tls_api: ApiProcess, pki: Pki
) -> None:
    url = mutual_tls_api.url
    assert url.startswith("https://")
    with httpx.Client(base_url=url, verify=pki.context(pki.client), timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        listed = http.get("/v1/incidents", headers=bearer(OPERATOR))
        assert listed.status_code == 200, listed.text
        # The certificate opens the connection; the token still decides the role.
        refused = http.get("/v1/incidents")
        assert refused.status_code == 401 and "error" in refused.json()
        assert http.get("/v1/incidents", headers=bearer(SENDER)).status_code == 403
    for cert in (None, pki.stranger):
        with (
            httpx.Client(base_url=url, verify=pki.context(cert), timeout=10) as http,
            pytest.raises(httpx.TransportError),
        ):
            http.get("/healthz")
    with (
        httpx.Client(base_url=url.replace("https://", "http://"), timeout=10) as http,
        pytest.raises(httpx.TransportError),
    ):
        http.get("/healthz")  # plain HTTP on the TLS port gets no answer


async def test_alertmanager_delivers_over_mutual_tls(
    mutual_tls_api: ApiProcess, pki: Pki, tmp_path: Path
) -> None:
    """A real Alertmanager with the receiver config deploy/alertmanager shows (tls_config and a bearer
    token) opens an incident through the mutual-TLS API."""
    config = AlertmanagerConfig(
        webhook_url=f"{mutual_tls_api.url}/v1/alerts/alertmanager",
        bearer_token=SecretStr(SENDER),
        tls_ca_file=pki.ca,
        tls_cert_file=pki.client[0],
        tls_key_file=pki.client[1],
    )
    service = f"tls-drill-{os.getpid()}"
    with AlertmanagerServer(tmp_path / "alertmanager", config) as alertmanager:
        posted = httpx.post(
            f"{alertmanager.url}/api/v2/alerts",
            json=[
                {
                    "labels": {"alertname": "TlsDrill", "namespace": "prod", "service": service},
                    "startsAt": datetime.now(UTC).isoformat(),
                }
            ],
            timeout=5,
        )
        assert posted.status_code == 200, posted.text
        async with httpx.AsyncClient(
            base_url=mutual_tls_api.url, verify=pki.context(pki.client), headers=bearer(OPERATOR), timeout=10
        ) as http:
            found: list[dict[str, object]] = []
            for _ in range(150):
                listed = (await http.get("/v1/incidents")).json()
                found = [item for item in listed["incidents"] if service in str(item["id"])]
                if found:
                    break
                await asyncio.sleep(0.2)
    assert found, f"no incident for {service}; API log:\n{mutual_tls_api.output()[-2000:]}"


def test_the_cli_reaches_the_api_with_its_ca_and_client_certificate(
    mutual_tls_api: ApiProcess, pki: Pki
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BACKOUT_")}
    env.update(settings_env(mutual_tls_api.settings))
    env.update({"BACKOUT_CLIENT_CA_FILE": str(pki.ca)})

    def incidents_list(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", "incidents", "list", "--json"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    allowed = incidents_list(
        {"BACKOUT_CLIENT_CERT_FILE": str(pki.client[0]), "BACKOUT_CLIENT_KEY_FILE": str(pki.client[1])}
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "incidents" in json.loads(allowed.stdout)
    refused = incidents_list({})
    assert refused.returncode == 1 and "unreachable" in refused.stderr, refused.stderr


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"BACKOUT_API_TLS_CERT_FILE": "{server_cert}"}, "api_tls_cert_file is set without api_tls_key_file"),
        (
            {"BACKOUT_API_TLS_CLIENT_CA_FILE": "{ca}"},
            "api_tls_client_ca_file is set without api_tls_cert_file",
        ),
        (
            {"BACKOUT_API_TLS_CERT_FILE": "{server_cert}", "BACKOUT_API_TLS_KEY_FILE": "{client_key}"},
            "do not load as a PEM certificate and its key",
        ),
        (
            {
                "BACKOUT_API_TLS_CERT_FILE": "{server_cert}",
                "BACKOUT_API_TLS_KEY_FILE": "/nonexistent/api.key",
            },
            "api_tls_key_file /nonexistent/api.key does not exist",
        ),
        (
            {
                "BACKOUT_API_TLS_CERT_FILE": "{server_cert}",
                "BACKOUT_API_TLS_KEY_FILE": "{server_key}",
                "BACKOUT_API_TLS_CLIENT_CA_FILE": "{server_key}",
            },
            "does not load as PEM CA certificates",
        ),
    ],
    ids=["cert without key", "client CA without HTTPS", "key of another cert", "missing key", "CA not a CA"],
)
def test_tls_settings_that_do_not_hold_refuse_to_start(
    env: dict[str, str], reason: str, pki: Pki, tmp_path: Path
) -> None:
    files = {
        "server_cert": str(pki.server[0]),
        "server_key": str(pki.server[1]),
        "client_key": str(pki.client[1]),
        "ca": str(pki.ca),
    }
    done = start_refused({key: value.format(**files) for key, value in env.items()}, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert reason in done.stderr, done.stderr
