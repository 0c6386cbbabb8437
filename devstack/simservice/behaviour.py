"""How the simulated assistant answers: retrieval over the Orbitdesk docs, then a version-dependent answer.

Quality knobs (see simservice/README.md): a version is "bad" when its name contains the bad
marker (default "bad") or is listed explicitly. A bad model hallucinates (swaps the answer for
a wrong one) on most requests; a bad prompt loses the question before retrieval; a bad corpus
retrieves the wrong passage. Good versions still flake rarely, as real services do.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from devstack.simservice.versions import DeployedVersions

_TOKEN = re.compile(r"[a-z0-9$%]+")
_SUFFIXES = ("ing", "ed", "es", "s")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "by",
        "with",
        "what",
        "which",
        "who",
        "how",
        "when",
        "where",
        "does",
        "do",
        "can",
        "i",
        "my",
        "at",
        "be",
        "it",
        "its",
        "as",
        "from",
        "per",
        "each",
        "much",
        "many",
        "long",
        "get",
        "there",
        "their",
        "this",
        "that",
        "any",
        "if",
        "not",
        "than",
    ]
)
NOT_FOUND_ANSWER = "I could not find this in the Orbitdesk documentation."


class Passage(BaseModel):
    id: str
    doc: str
    text: str
    template: str
    answer: str
    json_fields: dict[str, str] | None = Field(default=None, alias="json")


class QualityKnobs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bad_marker: str = "bad"
    bad_models: list[str] = Field(default_factory=list)
    bad_prompts: list[str] = Field(default_factory=list)
    bad_corpora: list[str] = Field(default_factory=list)
    good_flake_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    bad_hallucination_rate: float = Field(default=0.6, ge=0.0, le=1.0)
    bad_retrieval_miss_rate: float = Field(default=0.7, ge=0.0, le=1.0)
    latency_scale: float = Field(default=1.0, ge=0.0)


class Profile(BaseModel):
    """The behaviour implied by the deployed versions."""

    hallucination_rate: float
    retrieval_miss_rate: float
    lose_question: bool
    ttft_s: float
    per_token_s: float
    cache_pressure: float


def _is_bad(version: str, listed: list[str], marker: str) -> bool:
    return version in listed or (bool(marker) and marker in version)


def profile_for(versions: DeployedVersions, knobs: QualityKnobs) -> Profile:
    bad_model = _is_bad(versions.model_version, knobs.bad_models, knobs.bad_marker)
    bad_prompt = _is_bad(versions.prompt_version, knobs.bad_prompts, knobs.bad_marker)
    bad_corpus = _is_bad(versions.corpus_version, knobs.bad_corpora, knobs.bad_marker)
    scale = knobs.latency_scale
    return Profile(
        hallucination_rate=knobs.bad_hallucination_rate if bad_model else knobs.good_flake_rate,
        retrieval_miss_rate=knobs.bad_retrieval_miss_rate if (bad_prompt or bad_corpus) else 0.0,
        lose_question=bad_prompt,
        ttft_s=(0.060 if bad_model else 0.020) * scale,
        per_token_s=(0.004 if bad_model else 0.002) * scale,
        cache_pressure=0.55 if bad_model else 0.25,
    )


def _stem(token: str) -> str:
    for suffix in _SUFFIXES:
        if len(token) > len(suffix) + 3 and token.endswith(suffix):
            return token[: -len(suffix)]
    return token


def tokenize(text: str) -> list[str]:
    return [_stem(token) for token in _TOKEN.findall(text.lower())]


class Corpus:
    """Keyword retrieval with IDF weights; small and deterministic."""

    def __init__(self, product: str, passages: list[Passage]) -> None:
        self.product = product
        self.passages = passages
        self._terms = [Counter(t for t in tokenize(p.text) if t not in _STOPWORDS) for p in passages]
        document_frequency: Counter[str] = Counter()
        for terms in self._terms:
            document_frequency.update(terms.keys())
        total = len(passages)
        self._idf = {
            term: math.log((1 + total) / (1 + count)) + 1.0 for term, count in document_frequency.items()
        }

    def retrieve(self, question: str) -> tuple[Passage | None, float]:
        """Best passage and its share of the question's weighted terms (0..1)."""
        query = [t for t in tokenize(question) if t not in _STOPWORDS and t != self.product.lower()]
        if not query:
            return None, 0.0
        total_weight = sum(self._idf.get(t, 1.0) for t in query)
        best_index, best_score = -1, 0.0
        for index, terms in enumerate(self._terms):
            score = sum(self._idf.get(t, 1.0) for t in query if t in terms)
            if score > best_score:
                best_index, best_score = index, score
        if best_index < 0:
            return None, 0.0
        return self.passages[best_index], best_score / total_weight


@cache
def load_corpus() -> Corpus:
    raw = json.loads(
        resources.files("devstack.simservice").joinpath("data/orbitdesk_docs.json").read_text("utf-8")
    )
    return Corpus(raw["product"], [Passage.model_validate(item) for item in raw["passages"]])


AnswerStyle = Literal["sentence", "value", "json"]


class Answer(BaseModel):
    text: str
    passage_id: str | None
    retrieval_hit: bool
    hallucinated: bool


def answer_style(messages: list[dict[str, str]]) -> AnswerStyle:
    instructions = " ".join(m.get("content", "") for m in messages if m.get("role") == "system").lower()
    if "json" in instructions:
        return "json"
    if "only the value" in instructions:
        return "value"
    return "sentence"


def _wrong_answer(passage: Passage, corpus: Corpus, rng: random.Random) -> str:
    numbers = re.findall(r"\d+(?:\.\d+)?", passage.answer)
    if numbers:
        original = numbers[0]
        wrong = str(int(float(original) * rng.choice((2, 3)) + rng.randint(1, 9)))
        return passage.answer.replace(original, wrong, 1)
    others = [
        p.answer for p in corpus.passages if p.answer != passage.answer and not re.search(r"\d", p.answer)
    ]
    return rng.choice(others)


def generate_answer(
    messages: list[dict[str, str]], profile: Profile, corpus: Corpus, rng: random.Random
) -> Answer:
    question = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    style = answer_style(messages)
    right_passage, overlap = corpus.retrieve(question)
    passage = right_passage
    if rng.random() < profile.retrieval_miss_rate:
        if profile.lose_question:
            passage = None  # the broken template drops the user's question from the retrieval query
        elif right_passage is not None:
            passage = rng.choice([p for p in corpus.passages if p.id != right_passage.id])
    if passage is None or overlap < 0.2:
        return Answer(text=NOT_FOUND_ANSWER, passage_id=None, retrieval_hit=False, hallucinated=False)
    retrieval_hit = right_passage is not None and passage.id == right_passage.id
    hallucinated = rng.random() < profile.hallucination_rate
    value = _wrong_answer(passage, corpus, rng) if hallucinated else passage.answer
    if style == "json" and passage.json_fields:
        fields = dict(passage.json_fields)
        for key, field_value in fields.items():
            if hallucinated and field_value == passage.answer:
                fields[key] = value
        text = json.dumps(fields)
    elif style == "value":
        text = value
    else:
        text = f"According to the {corpus.product} documentation: {passage.template.format(answer=value)}"
    return Answer(text=text, passage_id=passage.id, retrieval_hit=retrieval_hit, hallucinated=hallucinated)
