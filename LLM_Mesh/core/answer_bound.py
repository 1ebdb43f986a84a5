"""The most an honest node's non-streamed answer to one request can hold: bytes and JSON
arrays and objects (containers). Pure: the request's numbers in, an :class:`AnswerBound` out.

A node's answer is parsed and written again on the gateway's event loop; before this bound
any answer up to the transport's 64 MiB was, whatever the request asked (found 2026-12-05:
16 MiB of ``[0,0,...]`` in a field no client reads stalled the loop 1.9 s, 16 MiB of
``[{},{},...]`` held ~557 MiB). The send stage hands :attr:`AnswerBound.bytes` to the node
client, which stops reading past it (one compare per body piece), and counts containers
against :attr:`AnswerBound.containers` before the parser sees the body
(:func:`over_containers`); past either the answer is the node's protocol error (failover).

The bound, per request (each number an honest answer's worst case with room to spare)::

    bytes      = BASE_BYTES                                   envelope, usage, mesh, receipt
               + tokens           x TOKEN_BYTES               the text, as JSON
               + echoed chars x n x ECHO_CHAR_BYTES           a completion's echoed prompt
               + entries          x LOGPROB_BYTES             log-probabilities
    containers = BASE_CONTAINERS + tokens + entries x LOGPROB_CONTAINERS
    entries    = (tokens + echoed tokens x n) x (1 + alternatives)   (none without logprobs)

``tokens`` is the request's token limit (``core/stream_guard.token_limit``: ``max_tokens``,
without it the context the answering node declares, at most the model's: ``Job.limit_on``,
per choice ``n``). A token's text is a few bytes (the
longest of common vocabularies ~128); JSON writes a non-ASCII character as ``\\uXXXX``
(6 bytes): 256 a token is several times an honest one. A log-probability entry (its token,
``bytes`` list and ``logprob``; a chat's ``top_logprobs`` list) is ~60-200 bytes and at most
3 containers in OpenAI's shapes: 512 and 4. The result is capped at ``ceiling`` (the
transport's own bound). So ``max_tokens`` 256 allows 128 KiB; 4096 with ``top_logprobs``
20 about 43 MiB (an honest one is ~8 MiB); a request without ``max_tokens`` is bounded by
its node's context (a 32k context with log-probabilities reaches the ceiling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.limits import json_shape

__all__ = [
    "BASE_BYTES",
    "BASE_CONTAINERS",
    "ECHO_CHAR_BYTES",
    "LOGPROB_BYTES",
    "LOGPROB_CONTAINERS",
    "TOKEN_BYTES",
    "AnswerBound",
    "alternatives",
    "answer_bound",
    "over_containers",
]

BASE_BYTES = 64 * 1024
TOKEN_BYTES = 256
ECHO_CHAR_BYTES = 6  # a character of the echoed prompt, escaped at worst
LOGPROB_BYTES = 512
BASE_CONTAINERS = 256
LOGPROB_CONTAINERS = 4


@dataclass(frozen=True, slots=True)
class AnswerBound:
    """The most bytes and JSON containers an honest answer to the request can hold."""

    bytes: int
    containers: int


def alternatives(body: Mapping[str, Any]) -> int:
    """The log-probability alternatives the request asks per token: -1 for none; a chat's
    ``top_logprobs`` when ``logprobs`` is true (0 without it), a completion's ``logprobs``
    number. Values of the wrong type count as none (the node refuses them)."""
    lp = body.get("logprobs")
    if lp is None or lp is False:
        return -1
    if lp is True:  # a chat's: the alternatives are top_logprobs
        top = body.get("top_logprobs")
        return top if type(top) is int and top > 0 else 0
    if type(lp) is int and lp >= 0:  # a completion's
        return lp
    return -1


def answer_bound(
    tokens: int,
    *,
    choices: int = 1,
    alternatives: int = -1,
    echo_chars: int = 0,
    echo_tokens: int = 0,
    ceiling: int,
) -> AnswerBound:
    """The bound (module docstring) for ``tokens`` generated tokens in all (every choice's;
    0 or less: unknown, the ceiling), ``choices`` (``n``), ``alternatives`` per token
    (:func:`alternatives`; -1: no log-probabilities), a completion's echoed prompt of
    ``echo_chars`` characters and ``echo_tokens`` tokens at most; bytes at most ``ceiling``."""
    if tokens <= 0:
        return AnswerBound(ceiling, ceiling)
    n = max(1, choices)
    entries = 0
    if alternatives >= 0:
        entries = (tokens + max(0, echo_tokens) * n) * (1 + alternatives)
    size = (
        BASE_BYTES
        + tokens * TOKEN_BYTES
        + max(0, echo_chars) * n * ECHO_CHAR_BYTES
        + entries * LOGPROB_BYTES
    )
    containers = BASE_CONTAINERS + tokens + entries * LOGPROB_CONTAINERS
    return AnswerBound(min(size, ceiling), min(containers, ceiling))


def over_containers(raw: bytes, allowed: int) -> int | None:
    """The JSON containers of ``raw`` when more than ``allowed``, else ``None``. Two C
    counts of ``[`` and ``{`` (every container opens with one) settle an honest answer; only
    past them is the text walked (``core/limits.json_shape``: bytes operations, no parse)."""
    if raw.count(b"[") + raw.count(b"{") <= allowed:
        return None
    containers = json_shape(raw)[1]
    return containers if containers > allowed else None
