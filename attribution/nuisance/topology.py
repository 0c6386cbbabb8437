"""Service graphs of a microservice shop and of an AI application, with per-service physics.

A service carries what telemetry needs to behave like the real thing: its role (which
metrics it exports, which kinds of change it receives), its traffic, replica count and
healthy baselines. Edges carry how much of the caller's traffic reaches the callee and
how much of the callee's failure leaks back (retries and fallbacks absorb some).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from attribution.nuisance.naming import pick

# Which kinds of change each role receives, with relative weights.
ROLE_KINDS: dict[str, dict[str, float]] = {
    "edge": {"image": 4, "config": 2, "flag": 2, "scale": 1.5, "infra": 0.7, "secret": 0.5},
    "app": {"image": 5, "config": 2, "flag": 1.5, "scale": 1.5, "secret": 0.7},
    "orchestrator": {"image": 3, "prompt": 3, "config": 2, "flag": 1.5, "scale": 1},
    "retriever": {"image": 3, "corpus": 3, "config": 2, "scale": 1},
    "embedder": {"image": 2, "model": 3, "config": 1, "scale": 1},
    "reranker": {"image": 2, "model": 3, "config": 1},
    "moderation": {"image": 2, "model": 2, "config": 1},
    "llm": {"image": 2, "model": 4, "config": 2, "scale": 1.5},
    "gateway_ai": {"image": 3, "config": 3, "flag": 2},
    "guardrails": {"image": 2, "prompt": 2, "config": 2},
    "datastore": {"config": 2, "scale": 1, "infra": 1, "image": 1},
}

ROLLING_KINDS = ("image", "model")


@dataclass
class Service:
    name: str
    role: str
    level: int
    rps: float
    replicas: int
    error_base: float
    latency_ms: float
    timeout_ms: float
    cpu_idle: float
    cpu_per_rps: float
    memory_mib: float
    utilisation: float
    low_traffic: bool = False
    external: bool = False
    ttft_ms: float = 0.0
    gpu_cache: float = 0.0
    quality: float = 0.0
    precision: float = 0.0
    hallucination: float = 0.0

    @property
    def is_ai_quality(self) -> bool:
        return self.role == "orchestrator"


@dataclass
class Edge:
    caller: str
    callee: str
    fraction: float
    error_leak: float
    latency_weight: float


@dataclass
class Topology:
    services: dict[str, Service]
    edges: list[Edge]
    domain: str
    _callees: dict[str, list[Edge]] = field(default_factory=dict)
    _callers: dict[str, list[Edge]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.services:
            self._callees[name] = []
            self._callers[name] = []
        for edge in self.edges:
            self._callees[edge.caller].append(edge)
            self._callers[edge.callee].append(edge)

    def callees(self, name: str) -> list[Edge]:
        return self._callees[name]

    def callers(self, name: str) -> list[Edge]:
        return self._callers[name]

    def depth_below(self, top: str) -> dict[str, int]:
        """Shortest hop count from `top` to every service it reaches (itself at 0)."""
        seen = {top: 0}
        queue = deque([top])
        while queue:
            node = queue.popleft()
            for edge in self._callees[node]:
                if edge.callee not in seen:
                    seen[edge.callee] = seen[node] + 1
                    queue.append(edge.callee)
        return seen

    def ancestors(self, name: str) -> list[str]:
        seen: list[str] = []
        queue = deque([name])
        while queue:
            node = queue.popleft()
            for edge in self._callers[node]:
                if edge.caller not in seen:
                    seen.append(edge.caller)
                    queue.append(edge.caller)
        return seen

    def path(self, top: str, bottom: str) -> list[str]:
        """A shortest caller->callee path from top to bottom, both included."""
        parents: dict[str, str | None] = {top: None}
        queue = deque([top])
        while queue:
            node = queue.popleft()
            if node == bottom:
                break
            for edge in self._callees[node]:
                if edge.callee not in parents:
                    parents[edge.callee] = node
                    queue.append(edge.callee)
        if bottom not in parents:
            return []
        route = [bottom]
        while (parent := parents[route[-1]]) is not None:
            route.append(parent)
        return list(reversed(route))

    def bottom_up(self) -> list[str]:
        """Callees before their callers (the graph is acyclic by construction)."""
        indegree = {name: len(self._callees[name]) for name in self.services}
        ready = [name for name, count in indegree.items() if count == 0]
        order: list[str] = []
        while ready:
            node = ready.pop(0)
            order.append(node)
            for edge in self._callers[node]:
                indegree[edge.caller] -= 1
                if indegree[edge.caller] == 0:
                    ready.append(edge.caller)
        return order


_SHOP = {
    "edge": ("frontend", "web-gateway", "storefront", "api-gateway", "petsite"),
    "mid": ("checkout", "cart", "catalog", "orders", "search", "accounts", "recommendations", "adoptions"),
    "low": (
        "payments",
        "pricing",
        "inventory",
        "shipping",
        "currency",
        "ads",
        "reviews",
        "fraud-check",
        "profile",
    ),
    "leaf": ("payment-gateway", "tax", "stock-ledger", "image-resizer", "geo", "loyalty"),
    "store": ("postgres", "redis", "kafka", "dynamodb", "elasticsearch", "memcached"),
    "side": ("admin-api", "reports", "notifications", "email", "batch-export"),
}


def _service(rng: np.random.Generator, name: str, role: str, level: int) -> Service:
    low_traffic = role == "app" and name in _SHOP["side"]
    rps = (
        float(np.exp(rng.uniform(np.log(0.02), np.log(0.3))))
        if low_traffic
        else float(np.exp(rng.uniform(np.log(15), np.log(600))))
    )
    latency = {
        "edge": (20, 120),
        "app": (8, 90),
        "orchestrator": (800, 4000),
        "retriever": (30, 200),
        "embedder": (10, 60),
        "reranker": (20, 120),
        "moderation": (15, 90),
        "llm": (400, 3000),
        "gateway_ai": (20, 80),
        "guardrails": (20, 150),
        "datastore": (1, 15),
    }[role]
    service = Service(
        name=name,
        role=role,
        level=level,
        rps=rps,
        replicas=int(rng.integers(2, 7)) if role != "llm" else int(rng.integers(2, 5)),
        error_base=float(np.exp(rng.uniform(np.log(0.0005), np.log(0.012)))),
        latency_ms=float(rng.uniform(*latency)),
        timeout_ms=float(rng.choice([1000, 2000, 5000, 10000, 30000])),
        cpu_idle=float(rng.uniform(0.02, 0.15)),
        cpu_per_rps=float(np.exp(rng.uniform(np.log(0.002), np.log(0.02)))),
        memory_mib=float(np.exp(rng.uniform(np.log(120), np.log(2400)))),
        utilisation=float(rng.uniform(0.25, 0.6)),
        low_traffic=low_traffic,
        external=False,
    )
    # Clients give a call several times its usual latency before they give up.
    service.timeout_ms = max(service.timeout_ms, 4.0 * service.latency_ms)
    if role == "llm":
        service.ttft_ms = float(rng.uniform(120, 900))
        service.gpu_cache = float(rng.uniform(0.08, 0.5))
        service.memory_mib = float(rng.uniform(12_000, 70_000))
        service.hallucination = float(rng.uniform(0.02, 0.07))
        service.timeout_ms = max(service.timeout_ms, 10_000.0)
    if role == "orchestrator":
        service.quality = float(rng.uniform(0.7, 0.9))
        service.hallucination = float(rng.uniform(0.02, 0.08))
        service.timeout_ms = max(service.timeout_ms, 10_000.0)
    if role == "retriever":
        service.precision = float(rng.uniform(0.6, 0.88))
    if role in ("embedder", "reranker", "moderation"):
        service.memory_mib = float(rng.uniform(1500, 9000))
    return service


def _edge(rng: np.random.Generator, caller: str, callee: str, essential: bool) -> Edge:
    return Edge(
        caller=caller,
        callee=callee,
        fraction=float(rng.uniform(0.6, 1.0)) if essential else float(rng.uniform(0.1, 0.7)),
        error_leak=float(rng.uniform(0.5, 1.0)),
        latency_weight=float(rng.uniform(0.6, 1.0)) if essential else float(rng.uniform(0.2, 0.6)),
    )


def shop_topology(rng: np.random.Generator) -> Topology:
    names: dict[str, list[str]] = {}
    used: set[str] = set()

    def draw(pool: str, count: int) -> list[str]:
        options = [name for name in _SHOP[pool] if name not in used]
        chosen = [
            options[int(i)] for i in rng.choice(len(options), size=min(count, len(options)), replace=False)
        ]
        used.update(chosen)
        return chosen

    names["edge"] = draw("edge", 1)
    names["mid"] = draw("mid", int(rng.integers(2, 5)))
    names["low"] = draw("low", int(rng.integers(2, 5)))
    names["leaf"] = draw("leaf", int(rng.integers(1, 4)))
    names["store"] = draw("store", int(rng.integers(1, 3)))
    names["side"] = draw("side", int(rng.integers(0, 3)))
    services: dict[str, Service] = {}
    for level, pool in enumerate(("edge", "mid", "low", "leaf")):
        for name in names[pool]:
            services[name] = _service(rng, name, "edge" if level == 0 else "app", level)
    for name in names["store"]:
        services[name] = _service(rng, name, "datastore", 4)
    for name in names["side"]:
        services[name] = _service(rng, name, "app", 1)
    edges: list[Edge] = []
    entry = names["edge"][0]
    for name in names["mid"]:
        edges.append(_edge(rng, entry, name, essential=rng.random() < 0.6))
    tiers = [names["mid"], names["low"], names["leaf"]]
    for upper, lower in itertools.pairwise(tiers):
        callers_of: dict[str, int] = {name: 0 for name in lower}
        for caller in upper:
            count = int(rng.integers(1, min(3, len(lower)) + 1))
            for index in rng.choice(len(lower), size=count, replace=False):
                callee = lower[int(index)]
                edges.append(_edge(rng, caller, callee, essential=rng.random() < 0.5))
                callers_of[callee] += 1
        for callee, count in callers_of.items():
            if count == 0:
                edges.append(_edge(rng, pick(rng, upper), callee, essential=rng.random() < 0.5))
    for store in names["store"]:
        callers = [n for n in names["mid"] + names["low"] + names["leaf"]]
        count = int(rng.integers(1, 4))
        for index in rng.choice(len(callers), size=min(count, len(callers)), replace=False):
            edges.append(_edge(rng, callers[int(index)], store, essential=True))
    for side in names["side"]:
        edges.append(_edge(rng, entry, side, essential=False))
        if rng.random() < 0.5 and names["store"]:
            edges.append(_edge(rng, side, pick(rng, names["store"]), essential=True))
    return Topology(services=services, edges=_dedupe(edges), domain="shop")


# AI application: (name, role, level) and the edges that may exist between them.
_AI_NODES: tuple[tuple[str, str, int, bool], ...] = (
    ("gateway", "edge", 0, True),
    ("rag-api", "orchestrator", 1, True),
    ("agent-api", "orchestrator", 1, False),
    ("llm-gateway", "gateway_ai", 2, False),
    ("retriever", "retriever", 2, True),
    ("reranker", "reranker", 3, False),
    ("guardrails", "guardrails", 2, False),
    ("tool-runner", "app", 2, False),
    ("memory-service", "app", 2, False),
    ("llm-server", "llm", 3, True),
    ("embedder", "embedder", 3, True),
    ("vector-db", "datastore", 4, True),
    ("search-api", "app", 3, False),
    ("moderation", "moderation", 3, False),
    ("doc-store", "datastore", 4, False),
    ("feedback-api", "app", 1, False),
)
_AI_EDGES: tuple[tuple[str, str, bool], ...] = (
    ("gateway", "rag-api", True),
    ("gateway", "agent-api", False),
    ("gateway", "feedback-api", False),
    ("rag-api", "retriever", True),
    ("rag-api", "llm-gateway", True),
    ("rag-api", "guardrails", False),
    ("rag-api", "memory-service", False),
    ("agent-api", "tool-runner", True),
    ("agent-api", "llm-gateway", True),
    ("agent-api", "retriever", False),
    ("agent-api", "memory-service", False),
    ("llm-gateway", "llm-server", True),
    ("retriever", "embedder", True),
    ("retriever", "vector-db", True),
    ("retriever", "reranker", False),
    ("retriever", "doc-store", False),
    ("reranker", "doc-store", False),
    ("guardrails", "moderation", True),
    ("tool-runner", "search-api", True),
    ("memory-service", "vector-db", False),
    ("feedback-api", "doc-store", True),
)


def ai_topology(rng: np.random.Generator) -> Topology:
    present = [node for node in _AI_NODES if node[3] or rng.random() < 0.55]
    names = {node[0] for node in present}
    direct_llm = "llm-gateway" not in names
    services = {name: _service(rng, name, role, level) for name, role, level, _ in present}
    edges: list[Edge] = []
    for caller, callee, essential in _AI_EDGES:
        if caller in names and callee in names:
            edges.append(_edge(rng, caller, callee, essential))
    if direct_llm:
        for caller in ("rag-api", "agent-api"):
            if caller in names:
                edges.append(_edge(rng, caller, "llm-server", True))
    if "agent-api" in names and "llm-gateway" not in names and "tool-runner" not in names:
        edges.append(_edge(rng, "agent-api", "retriever", True))
    orphans = [name for name, *_ in present if name != "gateway" and not any(e.callee == name for e in edges)]
    for orphan in orphans:
        edges.append(_edge(rng, "rag-api", orphan, essential=False))
    return Topology(services=services, edges=_dedupe(edges), domain="ai")


def _dedupe(edges: list[Edge]) -> list[Edge]:
    seen: set[tuple[str, str]] = set()
    unique: list[Edge] = []
    for edge in edges:
        key = (edge.caller, edge.callee)
        if key not in seen:
            seen.add(key)
            unique.append(edge)
    return unique


def build_topology(rng: np.random.Generator, domain: str) -> Topology:
    return ai_topology(rng) if domain == "ai" else shop_topology(rng)
