"""The node agent's wire helpers: its registration backoff, what a failed call was, how a
registry's answer and refusal are read, the exact bytes it sends (``node/agent.py``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from LLM_Mesh.logs import log_text as said

__all__ = ["Backoff", "Unreached", "answer_of", "error_message", "refusal", "wire_json"]


@dataclass
class Backoff:
    """Capped exponential delays: ``initial``, ×``factor`` each failure, at most ``cap``."""

    initial_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 60.0
    failures: int = 0

    def peek(self) -> float:
        """The delay :meth:`next_delay` returns next."""
        return min(self.cap_s, self.initial_s * self.factor**self.failures)

    def next_delay(self) -> float:
        delay = self.peek()
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class Unreached:
    """No registry answered (below 500): the last failure, and ``refused``: every registry
    tried refused the connection outright (nothing listens there: it is gone)."""

    message: str
    refused: bool = False


def refusal(r: httpx.Response, limit: int = 600) -> str:
    """What a refusal says: its OpenAI-shaped error's code and whole message (the raw
    body's first 200 characters cut a long message before its advice), else the body."""
    try:
        error = r.json().get("error")
        code, message = error.get("code"), error["message"]
    except (ValueError, AttributeError, KeyError, TypeError, RecursionError):
        return said(r.text, 200)
    return f"{said(code, 80)}: {said(message, limit)}" if code else said(message, limit)


def answer_of(r: httpx.Response) -> Any:
    """The answer's JSON, or ``None`` (not JSON, or nested too deep to parse)."""
    try:
        return r.json()
    except (ValueError, RecursionError):
        return None


def wire_json(obj: Any) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def error_message(r: httpx.Response, limit: int = 300) -> str:
    """A refusal's OpenAI-shaped error message alone (printable, at most ``limit``
    characters), else the body's start."""
    answer = answer_of(r)
    error = answer.get("error") if isinstance(answer, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return said(message if isinstance(message, str) else r.text, limit)
