"""Optional LLM-as-judge scorer against any OpenAI-compatible endpoint (off unless a manifest asks).

The judge is the manifest's `judge` section, else the deployment's (BACKOUT_LLM_ENDPOINT,
BACKOUT_LLM_MODEL, BACKOUT_LLM_API_KEY), so one judge and its key serve every golden set.
"""

from __future__ import annotations

import os
import re

import httpx
from pydantic import BaseModel, SecretStr

from config import Settings
from config.redact import redact_text, redact_url
from evals.models import EvalManifest, JudgeConfig

_NUMBER = re.compile(r"(?<![\d.])(0(?:\.\d+)?|1(?:\.0+)?)(?![\d.])")
JUDGE_PROMPT = (
    "You grade answers against a reference. Question:\n{question}\n\nReference answer:\n{expected}\n\n"
    "Candidate answer:\n{output}\n\nReply with a single number between 0 and 1: 1 if the candidate "
    "states the same facts as the reference, 0 if it contradicts or misses them."
)


class JudgeError(RuntimeError):
    """The judge endpoint failed or answered without a score."""


class Judge(BaseModel):
    """The judge a run uses: where it is, and the key to call it with (never written anywhere)."""

    config: JudgeConfig
    api_key: SecretStr | None = None

    def authorization(self) -> dict[str, str]:
        if self.api_key is not None:
            return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}
        env = self.config.api_key_env
        if env and os.environ.get(env):
            return {"Authorization": f"Bearer {os.environ[env]}"}
        return {}


def deployment_judge(settings: Settings) -> Judge | None:
    """The judge the settings name (both an endpoint and a model), for manifests without their own."""
    if settings.llm_endpoint is None or settings.llm_model is None:
        return None
    return Judge(
        config=JudgeConfig(endpoint=settings.llm_endpoint, model=settings.llm_model),
        api_key=settings.llm_api_key,
    )


def judge_of(manifest: EvalManifest, default: Judge | None) -> Judge | None:
    """The manifest's own judge wins over the deployment's."""
    return Judge(config=manifest.judge) if manifest.judge is not None else default


def parse_judgement(text: str) -> float:
    match = _NUMBER.search(text)
    if match is None:
        raise JudgeError(f"judge reply has no score between 0 and 1: {text[:200]!r}")
    return float(match.group(1))


async def judge_score(
    client: httpx.AsyncClient,
    judge: Judge,
    question: str,
    expected: str,
    output: str,
    timeout_s: float,
) -> float:
    config = judge.config
    headers = judge.authorization()
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
        raise JudgeError(f"judge at {redact_url(url)} failed: {redact_text(str(exc))}") from exc
    return parse_judgement(str(content))
