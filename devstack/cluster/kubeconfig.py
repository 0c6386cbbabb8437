"""Kubeconfig files for the local control plane: client certificate or bearer token."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(
    path: Path,
    server: str,
    ca_file: Path,
    cert_file: Path | None,
    key_file: Path | None,
    token: str | None = None,
) -> None:
    user: dict[str, str] = {}
    if cert_file is not None and key_file is not None:
        user = {"client-certificate": str(cert_file), "client-key": str(key_file)}
    if token is not None:
        user = {"token": token}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "backout", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": "backout", "user": user}],
        "contexts": [{"name": "backout", "context": {"cluster": "backout", "user": "backout"}}],
        "current-context": "backout",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
