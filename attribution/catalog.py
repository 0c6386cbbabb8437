"""The service catalog the scenario generator draws from: call graphs, change kinds, faults, metrics."""

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
KINDS_BY_SERVICE: dict[str, list[str]] = {
    "llm-server": ["model", "config", "image", "scale", "infra"],
    "judge-llm": ["model", "image", "config"],
    "embedder": ["model", "image", "scale"],
    "embedder-batch": ["model", "image", "scale"],
    "reranker": ["model", "image", "config"],
    "retriever": ["corpus", "config", "image", "scale"],
    "vector-db": ["corpus", "scale", "config", "infra", "image"],
    "rag-api": ["prompt", "image", "config", "flag", "scale"],
    "chat-api": ["prompt", "image", "config", "flag", "scale"],
    "agent-api": ["prompt", "image", "config", "flag"],
    "gateway": ["config", "image", "flag", "scale", "secret"],
}
DEFAULT_KINDS = ["image", "config", "scale", "flag", "secret", "infra", "other"]
FAULT_CLASSES: dict[str, tuple[list[str], list[float]]] = {
    "image": (["errors", "latency", "quality"], [0.5, 0.4, 0.1]),
    "config": (["errors", "latency", "quality"], [0.35, 0.35, 0.3]),
    "secret": (["errors"], [1.0]),
    "prompt": (["quality", "latency"], [0.8, 0.2]),
    "model": (["quality", "latency", "errors"], [0.5, 0.4, 0.1]),
    "corpus": (["quality", "latency"], [0.8, 0.2]),
    "flag": (["errors", "latency", "quality"], [0.4, 0.3, 0.3]),
    "scale": (["latency", "errors"], [0.7, 0.3]),
    "infra": (["errors", "latency"], [0.5, 0.5]),
    "other": (["errors", "latency"], [0.5, 0.5]),
}
QUALITY_METRIC = {"retriever": "retrieval_precision"}
# name -> (low level, high level, relative noise, bad sign)
METRIC_SPECS: dict[str, tuple[float, float, float, float]] = {
    "error_rate": (0.001, 0.02, 0.35, 1.0),
    "latency_ms": (20.0, 1500.0, 0.08, 1.0),
    "latency_p99_ms": (100.0, 4000.0, 0.15, 1.0),
    "ttft_ms": (150.0, 900.0, 0.1, 1.0),
    "eval_score": (0.7, 0.92, 0.02, -1.0),
    "retrieval_precision": (0.6, 0.9, 0.03, -1.0),
    "gpu_cache_usage": (0.3, 0.8, 0.05, 1.0),
    "cpu": (0.2, 0.7, 0.08, 1.0),
    "memory": (0.3, 0.8, 0.03, 1.0),
    "requests": (50.0, 3000.0, 0.06, 1.0),
}
PROGRESSIVE_KINDS = {"image", "model", "scale", "infra", "corpus", "other"}
