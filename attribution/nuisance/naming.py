"""Names the change API, Kubernetes and Prometheus would give: services, pods, versions, ids, authors.

Every draw here depends on the kind of change and on per-bundle conventions, never on
whether the change is the culprit: a name must not carry the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Kubernetes' safe alphabet for generated name suffixes (no vowels, no look-alikes).
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_HEX = "0123456789abcdef"


def pick(rng: np.random.Generator, items: list[str] | tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def _chars(rng: np.random.Generator, alphabet: str, length: int) -> str:
    return "".join(alphabet[int(i)] for i in rng.integers(len(alphabet), size=length))


def pod_template_hash(rng: np.random.Generator) -> str:
    return _chars(rng, _K8S_ALPHABET, int(rng.integers(9, 11)))


def pod_name(rng: np.random.Generator, service: str, template_hash: str) -> str:
    return f"{service}-{template_hash}-{_chars(rng, _K8S_ALPHABET, 5)}"


def camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("_", "-").split("-") if part)


# --- change ids -------------------------------------------------------------------------


@dataclass(frozen=True)
class IdScheme:
    """How this change API spells ids; one scheme per bundle, numbers increase with start time."""

    style: str
    first: int

    def make(self, rng: np.random.Generator, ordinal: int, service: str, kind: str) -> str:
        number = self.first + ordinal
        if self.style == "chg":
            return f"chg-{number}"
        if self.style == "service_rev":
            return f"{service}-{kind}-{number}"
        if self.style == "ticket":
            return f"CHG{number:07d}"
        return f"deploy-{_chars(rng, _HEX, 8)}"


def id_scheme(rng: np.random.Generator) -> IdScheme:
    style = pick(rng, ("chg", "service_rev", "ticket", "hex"))
    return IdScheme(style=style, first=int(rng.integers(100, 90_000)))


def id_numbers(rng: np.random.Generator, count: int) -> list[int]:
    """Increasing ordinals with gaps (other teams' changes fall in between)."""
    gaps = rng.integers(1, 40, size=count)
    return [int(value) for value in np.cumsum(gaps)]


# --- versions ---------------------------------------------------------------------------

_LLM_MODELS = (
    "llama-3.1-8b-instruct",
    "llama-3.1-70b-instruct",
    "qwen2.5-14b-instruct",
    "qwen2.5-7b-instruct",
    "mistral-7b-instruct-v0.3",
    "gemma-2-9b-it",
)
_EMBED_MODELS = ("bge-small-en-v1.5", "bge-base-en-v1.5", "e5-large-v2", "gte-base", "nomic-embed-text-v1.5")
_RERANK_MODELS = ("bge-reranker-base", "bge-reranker-v2-m3", "ms-marco-minilm-l6", "jina-reranker-v2")
_MODERATION_MODELS = ("llama-guard-3-1b", "llama-guard-3-8b", "shieldgemma-2b")


@dataclass(frozen=True)
class VersionStyle:
    """Per-bundle spelling of image tags (a shop uses one scheme for all its services)."""

    image: str

    def image_pair(self, rng: np.random.Generator, service: str) -> tuple[str, str]:
        major, minor, patch = int(rng.integers(0, 5)), int(rng.integers(0, 40)), int(rng.integers(0, 30))
        bump = pick(rng, ("patch", "patch", "patch", "minor", "minor", "major"))
        if bump == "patch":
            after = (major, minor, patch + int(rng.integers(1, 3)))
        elif bump == "minor":
            after = (major, minor + 1, 0)
        else:
            after = (major + 1, 0, 0)
        if self.image == "semver":
            return f"v{major}.{minor}.{patch}", "v{}.{}.{}".format(*after)
        if self.image == "repo_tag":
            return f"{service}:{major}.{minor}.{patch}", "{}:{}.{}.{}".format(service, *after)
        if self.image == "sha":
            return _chars(rng, _HEX, 7), _chars(rng, _HEX, 7)
        day = int(rng.integers(1, 28))
        return (
            f"2026.{int(rng.integers(1, 12)):02d}.{day:02d}-{_chars(rng, _HEX, 7)}",
            f"2026.{int(rng.integers(1, 12)):02d}.{day:02d}-{_chars(rng, _HEX, 7)}",
        )


def version_style(rng: np.random.Generator) -> VersionStyle:
    return VersionStyle(image=pick(rng, ("semver", "repo_tag", "sha", "dated")))


def model_pair(rng: np.random.Generator, role: str) -> tuple[str, str]:
    pool = {
        "llm": _LLM_MODELS,
        "embedder": _EMBED_MODELS,
        "reranker": _RERANK_MODELS,
        "moderation": _MODERATION_MODELS,
    }.get(role, _LLM_MODELS)
    base = pick(rng, pool)
    style = pick(rng, ("revision", "quant", "swap", "dated"))
    if style == "revision":
        rev = int(rng.integers(1, 40))
        return f"{base}-r{rev}", f"{base}-r{rev + 1}"
    if style == "quant":
        quants = ["fp16", "awq", "gptq-int4", "fp8", "q4", "q8"]
        first, second = rng.choice(len(quants), size=2, replace=False)
        return f"{base}-{quants[int(first)]}", f"{base}-{quants[int(second)]}"
    if style == "swap":
        other = pick(rng, tuple(item for item in pool if item != base))
        return base, other
    month = int(rng.integers(1, 11))
    return f"{base}@2026-{month:02d}-{int(rng.integers(1, 28)):02d}", (
        f"{base}@2026-{month + 1:02d}-{int(rng.integers(1, 28)):02d}"
    )


def prompt_pair(rng: np.random.Generator, service: str) -> tuple[str, str]:
    name = pick(rng, ("answer", "system", "rag-answer", "planner", "summarize", "router", "refusal"))
    number = int(rng.integers(2, 80))
    if rng.random() < 0.5:
        return f"{name}-v{number}", f"{name}-v{number + 1}"
    return f"{service}/{name}@{number}", f"{service}/{name}@{number + 1}"


def corpus_pair(rng: np.random.Generator) -> tuple[str, str]:
    if rng.random() < 0.5:
        month, day = int(rng.integers(1, 12)), int(rng.integers(1, 22))
        return (
            f"corpus-2026-{month:02d}-{day:02d}",
            f"corpus-2026-{month:02d}-{day + int(rng.integers(1, 7)):02d}",
        )
    number = int(rng.integers(100, 9000))
    return f"index-{number:06d}", f"index-{number + int(rng.integers(1, 4)):06d}"


def config_pair(rng: np.random.Generator) -> tuple[str, str]:
    style = pick(rng, ("rev", "hash", "keyvalue"))
    if style == "rev":
        number = int(rng.integers(3, 400))
        return f"rev-{number}", f"rev-{number + 1}"
    if style == "hash":
        return f"cfg-{_chars(rng, _HEX, 6)}", f"cfg-{_chars(rng, _HEX, 6)}"
    key = pick(rng, ("timeout", "pool_size", "max_tokens", "retries", "batch_size", "top_k", "cache_ttl"))
    first = int(rng.integers(2, 60))
    second = first + int(rng.choice([-2, -1, 1, 2, 4, 8]))
    return f"{key}={first}", f"{key}={max(second, 1)}"


def flag_pair(rng: np.random.Generator) -> tuple[str, str]:
    style = pick(rng, ("onoff", "percent"))
    if style == "onoff":
        return ("off", "on") if rng.random() < 0.8 else ("on", "off")
    first = int(rng.choice([0, 5, 10, 25]))
    return f"{first}%", f"{int(rng.choice([25, 50, 100]))}%"


def scale_pair(rng: np.random.Generator, replicas: int) -> tuple[str, str]:
    after = max(1, replicas + int(rng.choice([-2, -1, 1, 2, 3, 4])))
    return f"replicas={replicas}", f"replicas={after}"


def secret_pair(rng: np.random.Generator) -> tuple[str, str]:
    number = int(rng.integers(1, 60))
    return f"v{number}", f"v{number + 1}"


def infra_pair(rng: np.random.Generator) -> tuple[str, str]:
    if rng.random() < 0.5:
        minor = int(rng.integers(18, 25))
        return f"istio-1.{minor}.{int(rng.integers(0, 6))}", f"istio-1.{minor}.{int(rng.integers(6, 9))}"
    return f"nodepool-{_chars(rng, _HEX, 5)}", f"nodepool-{_chars(rng, _HEX, 5)}"


# --- authors and descriptions -------------------------------------------------------------

_PEOPLE = (
    "alice",
    "bo.chen",
    "carmen",
    "dmitri",
    "esra",
    "femi",
    "gita",
    "hiro",
    "ines",
    "jonas",
    "kwame",
    "lena",
)

_AUTHORS: dict[str, tuple[str, ...]] = {
    "image": ("ci-bot", "argocd", "github-actions", "flux", "spinnaker"),
    "model": ("mlops", "model-registry", "argocd"),
    "prompt": ("prompt-studio", "promptops"),
    "corpus": ("ingest-pipeline", "nightly-reindex", "airflow"),
    "config": ("flux", "config-sync", "argocd"),
    "flag": ("launchdarkly", "flagd", "unleash"),
    "scale": ("hpa", "keda", "cluster-autoscaler"),
    "secret": ("vault-rotator", "external-secrets"),
    "infra": ("platform-bot", "karpenter", "terraform"),
    "other": ("ops",),
}

_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "image": (
        "bump dependencies",
        "connection pool tuning",
        "retry on 503",
        "add tracing spans",
        "fix pagination",
        "upgrade base image",
        "http client timeout handling",
        "refactor handler",
        "cache headers",
        "grpc keepalive",
        "release {version}",
        "merge pull request #{number}",
    ),
    "model": (
        "promote candidate",
        "quantized weights",
        "new checkpoint",
        "swap to {version}",
        "rollout after offline eval",
        "tokenizer update",
    ),
    "prompt": (
        "tighten citations",
        "shorter system prompt",
        "add refusal examples",
        "reorder few-shot examples",
        "tone adjustments",
        "template v{number}",
    ),
    "corpus": (
        "nightly re-index",
        "add product docs",
        "dedupe chunks",
        "re-chunk 512 tokens",
        "weekly refresh",
    ),
    "config": (
        "raise timeout",
        "lower pool size",
        "tune batch size",
        "log level",
        "enable compression",
        "cache ttl",
        "max_tokens",
    ),
    "flag": ("enable {flag}", "ramp {flag}", "disable {flag}", "{flag} for beta users"),
    "scale": ("scale up for peak", "autoscaler", "rightsizing", "scale down off-peak"),
    "secret": ("rotate credentials", "rotate api key", "cert renewal"),
    "infra": ("mesh upgrade", "node pool rotation", "kernel patch", "sidecar bump"),
    "other": ("maintenance",),
}

_FLAGS = (
    "new-ranker",
    "stream-responses",
    "tool-use-v2",
    "fast-checkout",
    "async-embeddings",
    "semantic-cache",
)


def author(rng: np.random.Generator, kind: str) -> str:
    if rng.random() < 0.3 and kind not in ("scale", "secret"):
        return pick(rng, _PEOPLE)
    return pick(rng, _AUTHORS.get(kind, _AUTHORS["other"]))


def description(rng: np.random.Generator, kind: str, to_version: str | None) -> str | None:
    if rng.random() < 0.25:
        return None
    template = pick(rng, _DESCRIPTIONS.get(kind, _DESCRIPTIONS["other"]))
    return template.format(
        version=to_version or "", number=int(rng.integers(100, 9000)), flag=pick(rng, _FLAGS)
    )


def flag_name(rng: np.random.Generator) -> str:
    return pick(rng, _FLAGS)
