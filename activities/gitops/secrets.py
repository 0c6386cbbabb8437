"""Credentials for Git and provider APIs, and the redactor that keeps them out of every output.

A token is given inline (settings, environment) or as a reference to a Kubernetes Secret
key; either way it stays a `SecretStr` until the moment it is sent. Everything GitOps code
returns, raises or logs goes through a `Redactor` that knows every resolved secret and the
encodings it may travel in (raw, URL-quoted, Base64 of `user:token`).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from config.gitops import Credential, SecretKeyRef

MASK = "***"
# Shorter values would mask ordinary words; real tokens are far longer.
MIN_SECRET_LENGTH = 6
URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s:]+(?::[^/@\s]*)?@")
AUTH_HEADER = re.compile(r"(?i)(authorization:\s*(?:basic|bearer|token)\s+|private-token:\s*)\S+")


SecretReader = Callable[[SecretKeyRef], str]


class CredentialError(RuntimeError):
    """A credential could not be resolved; the message names the Secret, never a value."""


class Redactor:
    """Masks every registered secret (and its usual encodings) in text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._needles: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str, username: str | None = None) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            return
        variants = {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
        if username is not None:
            variants.add(base64.b64encode(f"{username}:{secret}".encode()).decode())
        with self._lock:
            self._needles.update(variants)

    def __call__(self, text: str) -> str:
        with self._lock:
            needles = sorted(self._needles, key=len, reverse=True)
        for needle in needles:
            text = text.replace(needle, MASK)
        text = URL_USERINFO.sub(lambda match: f"{match.group('scheme')}{MASK}@", text)
        return AUTH_HEADER.sub(lambda match: f"{match.group(1)}{MASK}", text)

    def scrub(self, data: Any) -> Any:
        """The same data with every string masked (dicts, lists and tuples walked)."""
        if isinstance(data, str):
            return self(data)
        if isinstance(data, dict):
            return {key: self.scrub(value) for key, value in data.items()}
        if isinstance(data, list | tuple):
            return [self.scrub(item) for item in data]
        return data


def resolve(credential: Credential, read_secret: SecretReader | None, redactor: Redactor) -> SecretStr:
    """The token's value, registered with `redactor` before anyone can print it."""
    if credential.value is not None:
        value = credential.value.get_secret_value()
    else:
        ref = credential.secret_ref
        assert ref is not None
        if read_secret is None:
            raise CredentialError(
                f"Secret {ref.namespace}/{ref.name} key {ref.key}: no Kubernetes client to read it"
            )
        value = read_secret(ref)
    if not value:
        raise CredentialError("an empty token was configured")
    redactor.add(value)
    return SecretStr(value)


def kube_secret_reader(core_api: Any) -> SecretReader:
    """Reads one key of a Secret through a CoreV1Api (values arrive Base64-encoded)."""

    def read(ref: SecretKeyRef) -> str:
        try:
            secret = core_api.read_namespaced_secret(ref.name, ref.namespace)
        except Exception as exc:
            status = getattr(exc, "status", None)
            raise CredentialError(
                f"cannot read Secret {ref.namespace}/{ref.name} (HTTP {status or type(exc).__name__})"
            ) from None
        encoded = (secret.data or {}).get(ref.key)
        if encoded is None:
            raise CredentialError(f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}")
        return base64.b64decode(encoded).decode()

    return read
