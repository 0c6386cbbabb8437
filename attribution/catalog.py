"""What the training generator draws from: call graphs, change kinds, metric names and levels."""

from __future__ import annotations

APP_EDGES: dict[str, list[tuple[str, str]]] = {
    "rag": [
        ("gateway", "rag-api"),
        ("rag-api", "retriever"),
        ("rag-api", "reranker"),
        ("rag-api", "llm-server"),
        ("retriever", "vector-db"),
        ("retriever", "embedder"),
        ("rag-api", "semantic-cache"),
    ],
    "chat": [
        ("gateway", "chat-api"),
        ("chat-api", "llm-server"),
        ("chat-api", "guardrails"),
        ("guardrails", "moderation"),
    ],
    "agent": [
        ("gateway", "agent-api"),
        ("agent-api", "tool-runner"),
        ("agent-api", "llm-server"),
        ("tool-runner", "search-api"),
        ("agent-api", "retriever"),
        ("retriever", "vector-db"),
    ],
    "auth": [("gateway", "auth")],
}
UNRELATED_EDGES: list[list[tuple[str, str]]] = [
    [("admin-ui", "billing")],
    [("analytics-etl", "warehouse")],
    [("batch-embedder", "embedder-batch")],
    [("notifier", "email-relay")],
    [("eval-runner", "judge-llm")],
]
# Names for randomly drawn microservice graphs (a shop, a bank, a media site...).
SHOP_NAMES: tuple[str, ...] = (
    "cart", "checkout", "catalog", "payment", "shipping", "currency", "recommendation", "ads",
    "email", "users", "orders", "inventory", "search", "auth", "profile", "reviews", "pricing",
    "notification", "session", "media", "ledger", "fraud", "loyalty", "geo", "tax", "quotes",
)  # fmt: skip
LEAF_NAMES: tuple[str, ...] = ("postgres", "redis", "kafka", "mongo", "s3-proxy", "memcached", "elastic")
AI_SERVICES = frozenset(
    {"rag-api", "chat-api", "agent-api", "retriever", "reranker", "llm-server", "embedder"}
)
KINDS_BY_SERVICE: dict[str, list[str]] = {
    "llm-server": ["model", "config", "image", "scale", "infra"],
    "embedder": ["model", "image", "scale"],
    "reranker": ["model", "image", "config"],
    "retriever": ["corpus", "config", "image", "scale"],
    "vector-db": ["corpus", "scale", "config", "infra", "image"],
    "rag-api": ["prompt", "image", "config", "flag", "scale"],
    "chat-api": ["prompt", "image", "config", "flag", "scale"],
    "agent-api": ["prompt", "image", "config", "flag"],
    "gateway": ["config", "image", "flag", "scale", "secret"],
}
DEFAULT_KINDS = ["image", "image", "config", "scale", "flag", "secret", "infra", "other"]
# Kinds that replace pods (a rolling update); the others apply at once to every pod.
POD_KINDS = frozenset({"image", "model", "scale", "infra", "other"})
FAULT_FAMILIES: dict[str, tuple[list[str], list[float]]] = {
    "image": (["errors", "latency", "quality"], [0.55, 0.35, 0.1]),
    "config": (["errors", "latency", "quality"], [0.4, 0.35, 0.25]),
    "secret": (["errors"], [1.0]),
    "prompt": (["quality", "latency", "errors"], [0.75, 0.15, 0.1]),
    "model": (["quality", "latency", "errors"], [0.45, 0.35, 0.2]),
    "corpus": (["quality", "latency"], [0.8, 0.2]),
    "flag": (["errors", "latency", "quality"], [0.45, 0.3, 0.25]),
    "scale": (["latency", "errors"], [0.7, 0.3]),
    "infra": (["errors", "latency"], [0.5, 0.5]),
    "other": (["errors", "latency"], [0.5, 0.5]),
}
# Metric names per family: (name, bad direction, how the value is derived from the health state).
ERROR_NAMES: tuple[tuple[str, str], ...] = (
    ("error_rate", "rate"),
    ("error_rate", "rate"),
    ("success_rate", "success"),
    ("availability", "percent"),
    ("http_5xx_ratio", "rate"),
)
LATENCY_NAMES: tuple[str, ...] = ("latency_ms", "latency_ms", "latency_p99_ms", "request_duration_seconds")
QUALITY_NAMES: dict[str, tuple[str, ...]] = {
    "retriever": ("retrieval_precision",),
    "rag-api": ("eval_score", "hallucination_rate"),
    "chat-api": ("eval_score", "hallucination_rate"),
    "agent-api": ("eval_score",),
    "reranker": ("rerank_precision",),
    "llm-server": ("judge_score",),
    "embedder": ("embedding_recall",),
}
RESOURCE_NAMES: tuple[str, ...] = ("cpu", "memory")
