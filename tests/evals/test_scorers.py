from __future__ import annotations

import pytest

from evals.judge import JudgeError, parse_judgement
from evals.models import ScorerSpec
from evals.scorers import (
    ScorerError,
    contains,
    exact_match,
    json_field_match,
    normalize,
    normalized_match,
    regex_match,
    score_text,
    token_f1,
)


def test_normalize_drops_case_punctuation_and_articles() -> None:
    assert normalize("  The Starter plan: $12!  ") == "starter plan 12"


def test_exact_is_strict_and_normalized_is_not() -> None:
    assert exact_match("429", "429") == 1.0
    assert exact_match("429.", "429") == 0.0
    assert normalized_match("The Enterprise.", "enterprise") == 1.0
    assert normalized_match("Enterprise plan", "enterprise") == 0.0


def test_contains_needs_whole_tokens() -> None:
    assert contains("The Starter plan costs $12 per agent.", "$12") == 1.0
    assert contains("The Starter plan costs $120 per agent.", "$12") == 0.0
    assert contains("Uptime is 99.95% monthly", "99.95%") == 1.0
    assert contains("nothing here", ["no", "here"]) == 1.0


def test_token_f1_partial_overlap() -> None:
    assert token_f1("account credit", "account credit") == pytest.approx(1.0)
    assert token_f1("refunded as account credit", "account credit") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("bank transfer", "account credit") == 0.0


def test_regex_uses_pattern_or_expected() -> None:
    assert regex_match("mail security@orbitdesk.example now", None, r"security@orbitdesk\.example") == 1.0
    assert regex_match("mail abuse@orbitdesk.example", None, r"security@orbitdesk\.example") == 0.0
    assert regex_match("status 429", r"\b4\d\d\b", None) == 1.0
    with pytest.raises(ScorerError):
        regex_match("x", None, "(")


def test_json_field_match_scores_share_of_fields() -> None:
    expected = {"plan": "Growth", "price": "$29"}
    assert json_field_match('{"plan": "Growth", "price": "$29"}', expected, None) == 1.0
    assert json_field_match('Here: {"plan": "growth", "price": "$31"}', expected, None) == 0.5
    assert json_field_match("not json", expected, None) == 0.0
    assert json_field_match('{"a": {"b": 3}}', {"a": {"b": 3}}, ["a.b"]) == 1.0
    with pytest.raises(ScorerError):
        json_field_match("{}", "Growth", None)


def test_score_text_dispatch_and_thresholds() -> None:
    assert score_text(ScorerSpec(name="contains"), "costs $12", "$12") == 1.0
    assert ScorerSpec(name="token_f1").pass_threshold == 0.5
    assert ScorerSpec.model_validate("exact").name == "exact"
    with pytest.raises(ScorerError):
        score_text(ScorerSpec(name="semantic"), "a", "b")


def test_judge_reply_parsing() -> None:
    assert parse_judgement("Score: 0.8") == 0.8
    assert parse_judgement("1") == 1.0
    with pytest.raises(JudgeError):
        parse_judgement("I think it is fine")


def test_semantic_similarity_from_packaged_model() -> None:
    from evals import semantic

    same, different = semantic.similarities(
        [
            (
                "Ticket summaries are rebuilt whenever the customer answers.",
                "Ticket summaries are regenerated whenever a customer replies.",
            ),
            (
                "The status page address is status.orbitdesk.example.",
                "Ticket summaries are regenerated whenever a customer replies.",
            ),
        ]
    )
    assert same > 0.7
    assert different < 0.4
    first_model = semantic._model
    semantic.similarities([("a", "b")])
    assert semantic._model is first_model  # loaded once per process
