"""When a node's stream breaks its bounds: more tokens than the request allows, or too slow.

Pure rules, no I/O, time passed in. The gateway's send stage
(:mod:`~LLM_Mesh.registry.send_stream`) feeds them the counts and clock readings of the
node part it reads (a continuing node is a new part, with the tokens still allowed).

**Overrun.** A part may carry ``limit`` tokens: what the request still allows (its
``max_tokens``, else the context of the node serving that part, :func:`node_context`, at
most the context the request's estimate was priced at: not the context less the estimated
prompt the estimate is priced at, which an honest node may pass when the prompt has fewer
tokens than the estimate counts; :func:`token_limit`; less the tokens earlier nodes
delivered). A node's declared context counts for at most :data:`MAX_CONTEXT` tokens. Tokens are counted by content chunks (one per
token from our engines; a node's own ``usage``, when it sends one, is read as at most
``limit``); data events in all may pass ``limit`` by :data:`SLACK_EVENTS` (the role chunk,
the finish chunk, the usage chunk, an engine's empty deltas). :func:`over_limit` says when
a part went past. Cheap by construction: while a part has sent at most ``limit`` data
events it cannot have sent more than ``limit`` content chunks, so the caller counts
events (an integer compare per event; and, for the floor below, the events with output:
:func:`carries_output`, a few dictionary look-ups for a token) and asks :func:`overrun`
only past ``limit`` events (an honest node's last few).

**Trickle.** After its first token a part must average ``min_rate`` events *with output*
a second (:func:`carries_output`: text, or another field an answer's output is priced by;
not a role-only delta, an empty one, a chunk of no choice), counted from its first token
after ``grace_s``: with ``n`` such events it is too slow
at any ``t > first + grace_s + n / min_rate`` (:func:`slow_at`). Before its first
token it has ``first_token_s`` from its stream's opening. The caller compares one clock
reading per read with the last :func:`slow_at` and recomputes it only once that moment
passed (for an honest node: rarely, the moment moves ahead faster than time does). A
``min_rate`` of 0 turns the trickle rule off. Events without output count for nothing
(found 2026-12-05: every data event counted, so a node sending its first token and then
empty deltas at the floor's rate held the client and its slot, and was paid as a normal
answer, until its ``limit`` + :data:`SLACK_EVENTS` events: ~5 min a 64 tokens at the
default floor, a ``max_tokens`` of 4,096 past the client's 30 min).

**Padding.** A part past ``limit`` + :data:`SLACK_EVENTS` data events with fewer than
``limit`` events with output has not reached its limit: it padded its answer with events
without output (an honest engine sends one event a token, and a few more), so it is a
break like a cut, continued elsewhere, not the limit's normal end
(:func:`overrun`; found 2026-12-05: such an answer of one token, or none, ended as
``finish_reason: "length"``, recorded ``ok``).

**Keep-alives.** Events without data (comments) carry no token, so neither rule above
counts them, and each costs the gateway an event's work (256 KiB of ``:\\n\\n`` a read held
its event loop ~230 ms): a part may send :data:`NO_DATA_EVENTS` of them and 2 more per event
with output (:func:`too_many_without_data`); an honest node's keep-alives (sse-starlette
pings every 15 s) stay far below.

**The floor is per node.** The seconds in those rules are the node's *share* of its
time: while ``k`` requests are in flight on the node, each of them is charged ``1/k`` of
every second (:class:`SharedTime`, fed by the router's attempts). So ``k`` streams of a
slow honest node, each at ``1/k`` of its rate, are held to the floor together, not each;
a node trickling its only stream is held to the full floor (``k = 1``: its share is the
whole second). In practice: :meth:`SharedTime.lost` is the time a node's requests gave up
to each other (``∫ (1 - 1/k) dt``); a part's moment moves later by what its node lost
since the part's clock started. The number in flight, not the node's declared
``max_concurrency``: a node declaring a large concurrency gains nothing while it serves
one stream.

``k`` (:func:`sharers`) counts this gateway's requests in flight on the node and those
the other live gateway replicas published in flight there (:meth:`SharedTime.set_others`,
refreshed at every replica beat): clients spread over replicas do not make the node's
rate look divided among fewer streams than it serves. And ``k`` is bounded, so a node
that gathers many requests and trickles them all is cut in bounded time: a part after
its first token shares the node with at most the node's declared ``max_concurrency``
streams (an honest node generates no more at once; the others wait in its queue), one
waiting for its first token with at most ``max_concurrency + max_queue`` requests (an
honest node holds no more), and either with at most :data:`MAX_SHARERS` (8): no stream's
share of the floor is below ``floor / 8``, so after its first token a trickling part is
cut within ``8 × (grace + events / min_rate)`` at most, and a node declaring one slot is
held to the whole floor per stream.

Why these defaults cannot hurt an honest node: a 270M model on a 2-core CPU streams 10-60
tokens/s, a big model on a weak node 1-2; the floor (0.25/s) is 4-8× below the slowest,
and the grace (60 s) covers a stall (swapping, a busy neighbour) on top of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.answer_text import choice_fault, chunk_text
from LLM_Mesh.core.delivered import chunk_bytes

__all__ = ["DEFAULT_GRACE_S", "DEFAULT_MIN_RATE", "MAX_CONTEXT", "MAX_SHARERS",
           "NO_DATA_EVENTS", "OVER", "PADDED", "SLACK_EVENTS", "SharedTime", "StreamFloor",
           "carries_output", "chunk_reading", "node_context", "over_limit", "overrun",
           "sharers", "slow_at", "token_limit", "too_many_without_data"]  # fmt: skip

# data events a part may send past its token limit that carry no token: the role chunk,
# the finish chunk, the final usage chunk and a few empty deltas
SLACK_EVENTS = 8
# events without data (keep-alive comments) a part may send, beyond 2 per event with output
NO_DATA_EVENTS = 64
DEFAULT_MIN_RATE = 0.25
DEFAULT_GRACE_S = 60.0
# the most context a node's declaration counts for (2^20 tokens; the catalog's largest is
# 32,768): a node declaring more is read as this, so no declaration makes a stream unbounded
MAX_CONTEXT = 1 << 20
# the most requests a node's time is divided among for the floor: no stream's share of the
# floor is below floor / MAX_SHARERS, however many requests its node gathers
MAX_SHARERS = 8


def node_context(declared: object, default: int) -> int:
    """The context a node serves a model with, as the stream limit reads its declaration:
    ``declared`` when a whole number >= 1 (else ``default``), at most :data:`MAX_CONTEXT`."""
    if type(declared) is not int or declared < 1:
        declared = default
    return min(int(declared), MAX_CONTEXT)


def token_limit(max_tokens: int, context: int, choices: int = 1, echo: bool = False) -> int:
    """The content chunks a stream's answer may have: ``max_tokens``, or without one the
    whole ``context`` (at least 1), for each of ``choices`` choices, and one more for a
    completion's echoed prompt (our nodes send it as one chunk)."""
    bound = (max_tokens if max_tokens > 0 else max(1, context)) * max(1, choices)
    return bound + 1 if echo else bound


def over_limit(limit: int, content_chunks: int, events: int) -> bool:
    """Whether a part with ``content_chunks`` tokens in ``events`` data events went past
    ``limit`` tokens (events: past ``limit`` + :data:`SLACK_EVENTS`)."""
    return content_chunks > limit or events > limit + SLACK_EVENTS


# :func:`overrun`'s verdicts: past the limit (its normal end), padded (a break)
OVER, PADDED = 1, 2


def overrun(limit: int, content_chunks: int, outputs: int, events: int) -> int:
    """Whether a part with ``content_chunks`` tokens, ``outputs`` events with output
    (:func:`carries_output`) and ``events`` data events went past ``limit`` (:data:`OVER`:
    cut at the limit, the stream's normal end) or padded its answer (:data:`PADDED`: past
    the events :func:`over_limit` allows with fewer than ``limit`` events with output: a
    break); 0: neither."""
    if not over_limit(limit, content_chunks, events):
        return 0
    return OVER if content_chunks > limit or outputs >= limit else PADDED


def chunk_reading(obj: dict[str, Any], choices: int = 1) -> tuple[str | None, str, int]:
    """One look at a stream chunk (a data event's JSON object) for the gateway's part
    reader (``registry/stream_part.py``), each rule applied once: why its choices are not
    the request's ``choices`` (``n``; ``core/answer_text.choice_fault``; ``None``: they
    are, else nothing more is read: ``"", 0``), the text it adds
    (``core/answer_text.chunk_text``: the receipt's text, a content chunk when not empty)
    and the UTF-8 bytes its choices generated (``core/delivered.chunk_bytes``: what its part
    is priced by). It carries output (:func:`carries_output`) when it has no fault and
    either is not empty. The reader passes these along: the floor's count, the limit's
    count of content chunks and the receipt's text and bytes come from this one look (until
    2026-12-05 the choices were judged twice a chunk, and a part's data lines parsed again
    at its limit and at its end: ``stream32``)."""
    why = choice_fault(obj, choices)
    if why is not None:
        return why, "", 0
    return None, chunk_text(obj), chunk_bytes((obj,), choices)


def carries_output(obj: dict[str, Any], choices: int = 1) -> bool:
    """Whether a stream chunk (a data event's JSON object) carries output: text (a chat
    ``delta.content``, a completion's ``text``), or another field a choice's output is
    priced by (``reasoning_content``, ``refusal``, a tool call's name or arguments:
    ``core/delivered.chunk_bytes``). A role-only delta, an empty one, a finish chunk, a
    chunk of no choice (a usage-only one) carry none: no progress for the floor; nor a
    chunk whose choices are not the request's ``choices`` (``n``):
    ``core/answer_text.choice_fault``, an index outside ``[0, n)``, not an integer, or
    twice in the chunk (found 2026-12-05, ``choiceidx31``: a chunk of ``index`` 1 only
    counted, so its text held the floor while the client's choice 0 got nothing)."""
    if choice_fault(obj, choices) is not None:
        return False
    return bool(chunk_text(obj)) or chunk_bytes((obj,), choices) > 0


def too_many_without_data(no_data: int, outputs: int) -> bool:
    """Whether a part's ``no_data`` events without data (comments) are a flood: more than
    :data:`NO_DATA_EVENTS` + 2 per event with output (``outputs``)."""
    return no_data > NO_DATA_EVENTS + 2 * outputs


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
    (``None``: not yet) and ``events`` events with output so far (:func:`carries_output`)
    is too slow unless it sends more (``inf``: never; the floor is off)."""
    rate = floor.min_rate
    if rate <= 0:
        return math.inf
    if first is None:
        return opened + floor.first_token_s
    return first + floor.grace_s + events / rate


def sharers(in_flight: int, bound: int) -> int:
    """``k``, the requests a node's time is divided among: ``in_flight`` (this gateway's and
    the other replicas' published ones), at least 1, at most ``bound`` (the node's declared
    slots, or slots and queue, see the module docstring) and :data:`MAX_SHARERS`."""
    return max(1, min(in_flight, bound, MAX_SHARERS))


class _Share:
    """One node's sharing: this gateway's requests in flight, the other replicas', the
    declared bounds, since when the lost times run, and the time lost so far by a part
    waiting for its first token (``wait``) and by one streaming (``stream``)."""

    __slots__ = ("capacity", "here", "others", "since", "slots", "stream", "wait")

    def __init__(self, now: float, slots: int, capacity: int) -> None:
        self.here, self.others, self.since = 1, 0, now
        self.wait = self.stream = 0.0
        self.slots, self.capacity = slots, capacity

    def rates(self) -> tuple[float, float]:
        """The share of each second lost (``1 - 1/k``): waiting, streaming."""
        n = self.here + self.others
        return 1.0 - 1.0 / sharers(n, self.capacity), 1.0 - 1.0 / sharers(n, self.slots)

    def advance(self, now: float) -> None:
        if now > self.since:
            wait, stream = self.rates()
            self.wait += (now - self.since) * wait
            self.stream += (now - self.since) * stream
            self.since = now


class SharedTime:
    """What each node's requests lost to each other: ``∫ (1 - 1/k) dt`` over the time this
    gateway had requests in flight on it, ``k`` by :func:`sharers` (see the module docstring).

    :meth:`begin` and :meth:`end` as attempts start and end (O(1) each), with the node's
    declared ``slots`` and ``capacity`` (slots and queue); :meth:`set_others` as the other
    replicas' published counts change; :meth:`lost` when a part's floor moment is
    recomputed. A node with nothing in flight here is forgotten (its count restarts at 0: a
    part reads differences while its own request is in flight, so never across a restart).
    """

    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[str, _Share] = {}

    def begin(
        self, node: str, now: float, slots: int = MAX_SHARERS, capacity: int = MAX_SHARERS,
        others: int | None = None,
    ) -> None:  # fmt: skip
        """One more request on ``node``; ``others``: the other replicas' count now (None:
        as it was)."""
        s = self._nodes.get(node)
        if s is None:
            s = self._nodes[node] = _Share(now, slots, capacity)
        else:
            s.advance(now)
            s.here += 1
            s.slots, s.capacity = slots, capacity
        if others is not None:
            s.others = max(0, others)

    def end(self, node: str, now: float) -> None:
        s = self._nodes.get(node)
        if s is None:
            return
        if s.here <= 1:
            del self._nodes[node]
            return
        s.advance(now)
        s.here -= 1

    def set_others(self, node: str, others: int, now: float) -> None:
        """The requests other replicas published in flight on ``node`` from ``now`` (only
        while this gateway has one there)."""
        s = self._nodes.get(node)
        if s is not None and s.others != max(0, others):
            s.advance(now)
            s.others = max(0, others)

    def nodes(self) -> list[str]:
        """The nodes this gateway has requests in flight on."""
        return list(self._nodes)

    def in_flight(self, node: str) -> int:
        s = self._nodes.get(node)
        return 0 if s is None else s.here

    def lost(self, node: str, now: float, *, streaming: bool = True) -> float:
        """The seconds the node's requests lost to each other by ``now`` (0: never shared),
        as a part after its first token (``streaming``) or before it reads them."""
        s = self._nodes.get(node)
        if s is None:
            return 0.0
        wait, stream = s.rates()
        gone = max(0.0, now - s.since)
        return s.stream + gone * stream if streaming else s.wait + gone * wait
