"""Optional LLM rewrite of the summary through an OpenAI-compatible endpoint (off by default).

The model sees only the evidence (the deterministic summary and the ranked culprits).
Its text is kept only if every number and change id it mentions appears in that
evidence; the deterministic text is always returned beside it.
"""

from __future__ import annotations

import json
import re

import httpx

from activities.paging.base import RewriteRequest, RewrittenSummary
from activities.paging.messages import ranked_culprits
from activities.paging.summary import build_summary
from incidents.models import IncidentReport
from worker.settings import Settings

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_TIMEOUT_S = 20.0
_INSTRUCTIONS = (
    "Rewrite the incident facts below as two or three plain sentences for an on-call engineer. "
    "Use only the facts given. Do not add causes, numbers, names, versions or times that are not "
    "in the facts. Keep every probability exactly as written."
)


def evidence_for(report: IncidentReport) -> str:
    facts = {
        "summary": build_summary(report),
        "ranked_culprits": ranked_culprits(report, 3),
    }
    return json.dumps(facts, indent=1, sort_keys=True, default=str)


def unsupported_claims(rewritten: str, evidence: str, change_ids: list[str]) -> list[str]:
    """Numbers and change-like ids in the rewrite that the evidence does not contain."""
    allowed_numbers = set(_NUMBER.findall(evidence))
    problems = [f"number {number}" for number in _NUMBER.findall(rewritten) if number not in allowed_numbers]
    for token in re.findall(r"\b(?:chg|change)[-_][\w-]+", rewritten):
        if token not in change_ids and token not in evidence:
            problems.append(f"change {token}")
    return problems


async def rewrite_summary_text(request: RewriteRequest, settings: Settings) -> RewrittenSummary:
    report = request.report
    deterministic = build_summary(report)
    if not settings.llm_endpoint:
        return RewrittenSummary(deterministic=deterministic, note="LLM rewrite off (no llm_endpoint)")
    evidence = evidence_for(report)
    model = settings.llm_model or "default"
    headers = (
        {"Authorization": f"Bearer {settings.llm_api_key.get_secret_value()}"} if settings.llm_api_key else {}
    )
    body = {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": _INSTRUCTIONS},
            {"role": "user", "content": evidence},
        ],
    }
    url = settings.llm_endpoint.rstrip("/") + "/chat/completions"
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
            response = await client.post(url, json=body, headers=headers)
            response.raise_for_status()
            text = response.json()["choices"][0]["message"]["content"]
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        return RewrittenSummary(deterministic=deterministic, model=model, note=f"LLM rewrite failed: {exc}")
    if not isinstance(text, str) or not text.strip():
        return RewrittenSummary(deterministic=deterministic, model=model, note="LLM rewrite was empty")
    change_ids = [change.id for change in report.changes]
    problems = unsupported_claims(text, evidence, change_ids)
    if problems:
        return RewrittenSummary(
            deterministic=deterministic,
            model=model,
            note="LLM rewrite dropped: not in the evidence: " + ", ".join(problems[:5]),
        )
    return RewrittenSummary(deterministic=deterministic, rewritten=text.strip(), model=model)
