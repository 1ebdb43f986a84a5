"""A client's floor on a stream: the most events without output a gateway that keeps its
own rules sends, so a client can end one that sends more (a hostile or broken gateway).

Pure rules, no I/O. The client (``client_stream.events``: ``llm-mesh ask --stream``, the
seed API's ``MeshClient.stream``) counts each SSE event it reads that carries no output
(:func:`~LLM_Mesh.core.stream_guard.carries_output`, the gateway's own test: an empty or
role-only delta, a chunk of no choice, a finish or usage chunk, a comment; and a run of
blank lines past an event's end, which makes no event and an honest gateway never sends:
``SseFramer.blank``, found 2026-12-05, review31: a flood of them was never counted) and ends the
stream past :func:`quiet_bound` of its request (:class:`QuietCount`). It has no clock of its
own: an honest gateway's text may pause for minutes (a failover's first token, a node's
share of a shared floor), so time is the stream's whole bound only (30 min, ``client_stream``).

**What an honest gateway sends without output** (``registry/stream_part.py``, the rules of
``core/stream_guard.py``), for a request whose stream may carry ``L`` tokens
(:func:`stream_limit`: ``max_tokens`` per choice, + 1 for an echoed prompt; without
``max_tokens`` the largest context a node may declare, :data:`~LLM_Mesh.core.stream_guard.MAX_CONTEXT`):

- a stream has at most ``P`` node parts: one per attempt a node worked on, at most
  :data:`~LLM_Mesh.core.failover.MAX_ATTEMPTS_TOP` (16; the default gateway: 3); the
  client cannot know the gateway's setting, so it counts the top;
- a part relays at most ``L + S`` data events (``S`` = ``SLACK_EVENTS``, 8): the next one is
  a cut at the limit or a padded answer (``stream_guard.overrun``), never relayed; ``o`` of
  them with output, so ``L + S - o`` without;
- a part relays at most ``C + 2 o`` comments (``C`` = ``NO_DATA_EVENTS``, 64), each as
  ``:`` (``stream_guard.too_many_without_data``), a node's keep-alives (during a
  failover's wait the gateway itself sends nothing);
- so a part relays at most ``L + S + C + o <= 2 (L + S) + C`` events without output
  (``o <= L + S``), and the gateway adds :data:`GATEWAY_EVENTS` of its own (a cut at the
  limit's ``finish_reason: "length"`` chunk and final chunk; an error event ends the client's
  stream as an error anyway). The usage chunk and the finish chunk are among the part's
  data events. A continuing part's role chunk is dropped; nothing else is added.

In total: ``P (2 (L + S) + C) + G`` events without output. In a row (between two events
with output): the part of the last output's ``2 (L + S) + C``, then parts with none,
``L + S + C`` each: ``2 (L + S) + C + (P - 1)(L + S + C) + G``. Their bytes: the data
events are relayed as the node wrote them, up to an event's bound
(:data:`~LLM_Mesh.core.sse_frame.MAX_EVENT_BYTES`, 1 MiB: what the client reads of one), a
comment as 1 byte: ``(P (L + S) + G) M + P (C + 2 (L + S))``. :func:`honest_most` computes
them; :func:`quiet_bound` is :data:`MARGIN` (2) times that. For ``llm-mesh ask``'s default
(``max_tokens`` 128): 6,676 in a row, 10,756 in all, 4,356 MiB; a hostile gateway's empty
events (~50 bytes) are cut within ~0.5 MB. An honest gateway with honest nodes sends ~3
without output a part (the role, finish and usage chunks) and a node's keep-alive a 15 s.
Without ``max_tokens`` the bound is the context's (~2^25 in a row): in practice only the
stream's 30 min then.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.failover import MAX_ATTEMPTS_TOP
from LLM_Mesh.core.sse_frame import MAX_EVENT_BYTES
from LLM_Mesh.core.stream_guard import (
    MAX_CONTEXT,
    NO_DATA_EVENTS,
    SLACK_EVENTS,
    carries_output,
    token_limit,
)

__all__ = [
    "GATEWAY_EVENTS", "MARGIN", "QuietBound", "QuietCount", "choices_of", "honest_most",
    "quiet_bound", "stream_limit",
]  # fmt: skip

# the gateway's own events without output in a stream: a cut at the limit's finish chunk
# ("length") and final chunk (registry/send_stream.NodeStream._at_limit)
GATEWAY_EVENTS = 2
# the client's bound is this many times the most an honest gateway sends
MARGIN = 2
_COMMENT_BYTES = 1  # a node's keep-alive, relayed as ":"


@dataclass(frozen=True)
class QuietBound:
    """Events without output a stream may have: in a row, in all, and their bytes in all."""

    run: int
    events: int
    bytes: int

    def times(self, k: int) -> QuietBound:
        return QuietBound(self.run * k, self.events * k, self.bytes * k)


def _whole(value: object) -> int | None:
    """A whole number >= 1 as the gateway's request model reads one (an int, an integral
    float, their string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        value = int(value)
    return value if isinstance(value, int) and value >= 1 else None


def choices_of(body: Mapping[str, Any]) -> int:
    """A request's ``n`` (1 unless a whole number >= 1)."""
    return _whole(body.get("n")) or 1


def stream_limit(body: Mapping[str, Any], chat: bool) -> int:
    """``L``: the tokens a request's stream may carry, as the gateway reads it
    (``registry/parse.py``: ``max_completion_tokens`` or ``max_tokens`` for a chat,
    ``max_tokens`` for a completion; without one, :data:`MAX_CONTEXT`; per choice, + 1 for
    an ``echo``). A value the gateway would refuse gives a larger bound, never a smaller."""
    keys = ("max_completion_tokens", "max_tokens") if chat else ("max_tokens",)
    most = next((m for k in keys if (m := _whole(body.get(k))) is not None), 0)
    echo = body.get("echo") not in (None, False, 0)
    return token_limit(most, MAX_CONTEXT, choices_of(body), echo)


def honest_most(limit: int, parts: int = MAX_ATTEMPTS_TOP) -> QuietBound:
    """The most events without output (and their bytes) a gateway keeping its own rules
    sends in a stream of ``limit`` tokens a part over ``parts`` node parts (module docstring)."""
    data = limit + SLACK_EVENTS  # a part's data events
    part = 2 * data + NO_DATA_EVENTS  # ... and comments, without output
    run = part + (parts - 1) * (data + NO_DATA_EVENTS) + GATEWAY_EVENTS
    events = parts * part + GATEWAY_EVENTS
    size = (parts * data + GATEWAY_EVENTS) * MAX_EVENT_BYTES
    size += parts * (NO_DATA_EVENTS + 2 * data) * _COMMENT_BYTES
    return QuietBound(run, events, size)


def quiet_bound(body: Mapping[str, Any], chat: bool) -> QuietBound:
    """A client's bound for a request's stream: :data:`MARGIN` times :func:`honest_most`."""
    return honest_most(stream_limit(body, chat)).times(MARGIN)


class QuietCount:
    """A stream's events without output so far, against its :class:`QuietBound`: the client
    calls :meth:`event` for each SSE event it reads (its data chunks, its size in bytes)."""

    __slots__ = ("bound", "bytes", "choices", "events", "run")

    def __init__(self, bound: QuietBound, choices: int = 1) -> None:
        self.bound = bound
        self.choices = choices
        self.run = self.events = self.bytes = 0

    def event(self, chunks: list[dict[str, Any]], size: int) -> str | None:
        """Counts one event (its parsed data ``chunks``, none for a comment; ``size`` bytes);
        what it passed (``"in a row"``, ``"in all"``, ``"bytes"``) or None."""
        if any(carries_output(c, self.choices) for c in chunks):
            self.run = 0
            return None
        return self.quiet(1, size)

    def quiet(self, n: int, size: int) -> str | None:
        """Counts ``n`` events without output of ``size`` bytes in all (:meth:`event`'s; a
        client's count of blank lines that make no event, ``SseFramer.blank``: an honest
        gateway sends none); what they passed, or None."""
        self.run += n
        self.events += n
        self.bytes += size
        bound = self.bound
        if self.run > bound.run:
            return "in a row"
        if self.events > bound.events:
            return "in all"
        if self.bytes > bound.bytes:
            return "bytes"
        return None
