"""When a node's stream breaks its bounds: more tokens than the request allows, or too slow.

Pure rules, no I/O, time passed in. The gateway's send stage
(:mod:`~LLM_Mesh.registry.send_stream`) feeds them the counts and clock readings of the
node part it reads (a continuing node is a new part, with the tokens still allowed).

**Overrun.** A part may carry ``limit`` tokens: what the request still allows (its
``max_tokens``, else the model's whole context: not the context less the estimated
prompt the estimate is priced at, which an honest node may pass when the prompt has fewer
tokens than the estimate counts; less the tokens earlier nodes delivered). Tokens are counted by content chunks (one per
token from our engines; a node's own ``usage``, when it sends one, is read as at most
``limit``); data events in all may pass ``limit`` by :data:`SLACK_EVENTS` (the role chunk,
the finish chunk, the usage chunk, an engine's empty deltas). :func:`over_limit` says when
a part went past. Cheap by construction: while a part has sent at most ``limit`` data
events it cannot have sent more than ``limit`` content chunks, so the caller counts
events only (an integer compare per event) and asks :func:`over_limit`
only past ``limit`` events (an honest node's last few).

**Trickle.** After its first token a part must average ``min_rate`` data events a
second, counted from its first token after ``grace_s``: with ``n`` events it is too slow
at any ``t > first + grace_s + n / min_rate`` (:func:`slow_at`). Before its first
token it has ``first_token_s`` from its stream's opening. The caller compares one clock
reading per read with the last :func:`slow_at` and recomputes it only once that moment
passed (for an honest node: rarely, the moment moves ahead faster than time does). A
``min_rate`` of 0 turns the trickle rule off.

Why these defaults cannot hurt an honest node: a 270M model on a 2-core CPU streams 10-60
tokens/s, a big model on a weak node 1-2; the floor (0.25/s) is 4-8× below the slowest,
and the grace (60 s) covers a stall (swapping, a busy neighbour) on top of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_GRACE_S", "DEFAULT_MIN_RATE", "SLACK_EVENTS", "StreamFloor",
           "over_limit", "slow_at"]  # fmt: skip

# data events a part may send past its token limit that carry no token: the role chunk,
# the finish chunk, the final usage chunk and a few empty deltas
SLACK_EVENTS = 8
DEFAULT_MIN_RATE = 0.25
DEFAULT_GRACE_S = 60.0


def over_limit(limit: int, content_chunks: int, events: int) -> bool:
    """Whether a part with ``content_chunks`` tokens in ``events`` data events went past
    ``limit`` tokens (events: past ``limit`` + :data:`SLACK_EVENTS`)."""
    return content_chunks > limit or events > limit + SLACK_EVENTS


@dataclass(frozen=True)
class StreamFloor:
    """How slow a node's stream may be (see the module docstring); from settings."""

    min_rate: float = DEFAULT_MIN_RATE  # 0: no floor
    grace_s: float = DEFAULT_GRACE_S
    first_token_s: float = 180.0  # the gateway's: request_timeout_s + grace_s

    def __post_init__(self) -> None:
        for name in ("min_rate", "grace_s", "first_token_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def slow_at(floor: StreamFloor, opened: float, first: float | None, events: int) -> float:
    """The moment a part that opened at ``opened``, sent its first token at ``first``
    (``None``: not yet) and ``events`` data events so far is too slow unless it sends more
    (``inf``: never; the floor is off)."""
    rate = floor.min_rate
    if rate <= 0:
        return math.inf
    if first is None:
        return opened + floor.first_token_s
    return first + floor.grace_s + events / rate
