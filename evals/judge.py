"""Optional LLM-as-judge scorer against any OpenAI-compatible endpoint (off unless a manifest asks)."""

from __future__ import annotations

import os
import re

import httpx

from evals.models import JudgeConfig

_NUMBER = re.compile(r"(?<![\d.])(0(?:\.\d+)?|1(?:\.0+)?)(?![\d.])")
JUDGE_PROMPT = (
    "You grade answers against a reference. Question:\n{question}\n\nReference answer:\n{expected}\n\n"
    "Candidate answer:\n{output}\n\nReply with a single number between 0 and 1: 1 if the candidate "
    "states the same facts as the reference, 0 if it contradicts or misses them."
)


class JudgeError(RuntimeError):
    """The judge endpoint failed or answered without a score."""


def parse_judgement(text: str) -> float:
    match = _NUMBER.search(text)
    if match is None:
        raise JudgeError(f"judge reply has no score between 0 and 1: {text[:200]!r}")
    return float(match.group(1))


async def judge_score(
    client: httpx.AsyncClient,
    config: JudgeConfig,
    question: str,
    expected: str,
    output: str,
    timeout_s: float,
) -> float:
    headers = {}
    if config.api_key_env and os.environ.get(config.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[config.api_key_env]}"
    body = {
        "model": config.model,
        "temperature": 0,
        "messages": [
            {
                "role": "user",
                "content": JUDGE_PROMPT.format(question=question, expected=expected, output=output),
            }
        ],
    }
    url = config.endpoint.rstrip("/") + "/v1/chat/completions"
    try:
        response = await client.post(url, json=body, headers=headers, timeout=timeout_s)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        raise JudgeError(f"judge at {url} failed: {exc}") from exc
    return parse_judgement(str(content))
