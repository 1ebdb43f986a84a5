"""A stream's pieces for :meth:`LLM_Mesh.client.MeshClient.stream`: its time bound, its
error answer and its events, read from a gateway the client does not trust.

- :func:`stream_max_s`: a stream's whole time (``$LLM_MESH_STREAM_MAX_S``, else
  :data:`DEFAULT_STREAM_MAX_S`).
- :class:`Bound`: the stream's deadline, kept by every step that waits on the gateway.
- :func:`stream_error`: the mesh error a stream's error answer stands for, read to at most
  :data:`MAX_STREAM_EVENT_BYTES`.
- :func:`events`: each ``data:`` line's JSON object (an event longer than
  :data:`MAX_STREAM_EVENT_BYTES` refused; one that is not a JSON object, or nested too
  deep: :class:`~LLM_Mesh.errors.UpstreamError`, found 2026-12-04: a list was handed on).
- :class:`QuietStream`: what a stream raises past its bound on events without output (an
  empty, role-only or choice-less chunk, a comment): twice what a gateway keeping its own
  rules sends for the request (``core/client_floor.py``; found 2026-12-05: a hostile gateway
  held a stream for its 30 min with such events).
- :data:`CUT_SHORT`: what a stream that ends without ``[DONE]`` raises (an
  ``UpstreamError``; found 2026-12-04: it passed as a complete answer).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

import httpx

from LLM_Mesh.bounded_http import AnswerRefused, decoded, raise_for_error, read_body
from LLM_Mesh.core.answer_text import choice_fault
from LLM_Mesh.core.client_floor import QuietCount
from LLM_Mesh.core.sse_frame import MAX_EVENT_BYTES, SseFramer
from LLM_Mesh.errors import MeshError, UpstreamError, error_from_payload

__all__ = [
    "CUT_SHORT", "DEFAULT_STREAM_MAX_S", "MAX_STREAM_EVENT_BYTES", "STREAM_MAX_ENV", "Bound",
    "QuietStream", "events", "positive", "quiet_message", "stream_error", "stream_max_s",
]  # fmt: skip

# what a stream (``MeshClient.stream``) reads of one event, and of an error answer, decoded
# (found 2026-12-03: an error answer was read whole, and an event line that never ended
# grew in memory without end); an honest stream's events are ~200 bytes each, any number
MAX_STREAM_EVENT_BYTES = MAX_EVENT_BYTES
STREAM_MAX_ENV = "LLM_MESH_STREAM_MAX_S"  # a stream's whole time, in seconds (client.py)
# the longest a stream runs, from its request to its last event, unless the caller or
# $LLM_MESH_STREAM_MAX_S says otherwise (found 2026-12-03: bounded per event only, a gateway
# sending an honest event now and then, each within the read timeout, held it for ever);
# an honest stream of 32k tokens at 20 tokens a second takes ~27 min
DEFAULT_STREAM_MAX_S = 1800.0
# a stream that ends without ``data: [DONE]``: an UpstreamError with these words (client.py)
CUT_SHORT = "the stream ended before [DONE]: the answer may be cut short"

T = TypeVar("T")


def stream_max_s(env: Mapping[str, str] | None = None) -> float:
    """A stream's time bound: ``$LLM_MESH_STREAM_MAX_S`` (seconds, > 0) or the default."""
    raw = ((os.environ if env is None else env).get(STREAM_MAX_ENV) or "").strip()
    if not raw:
        return DEFAULT_STREAM_MAX_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{STREAM_MAX_ENV} must be a number of seconds, got {raw!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{STREAM_MAX_ENV} must be > 0 seconds, got {raw!r}")
    return value


def positive(seconds: float) -> float:
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"a stream's time bound must be > 0 seconds, got {seconds!r}")
    return float(seconds)


class QuietStream(AnswerRefused):
    """A stream past its bound on events without output (``core/client_floor.py``): a
    gateway that keeps its own rules never sends so many; ended, not read further."""


class Bound:
    """A stream's deadline (the event loop's clock), kept by every step that waits on the
    gateway; past it :class:`AnswerRefused` naming the bound."""

    __slots__ = ("deadline", "limit_s")

    def __init__(self, deadline: float, limit_s: float) -> None:
        self.deadline = deadline
        self.limit_s = limit_s

    async def by(self, step: Awaitable[T], what: str) -> T:
        """``await step``, cut at the deadline."""
        timeout = asyncio.timeout_at(self.deadline)
        try:
            async with timeout:
                return await step
        except TimeoutError:
            if not timeout.expired():
                raise
            raise AnswerRefused(
                f"{what} ran longer than {self.limit_s:g} s (the stream's bound: max_s, "
                f"{STREAM_MAX_ENV}): not read further"
            ) from None

    async def each(self, items: AsyncGenerator[T, None], what: str) -> AsyncIterator[T]:
        """``items`` as they come, each by the deadline; closed when done or cut."""
        try:
            while True:
                try:
                    item = await self.by(anext(items), what)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            await items.aclose()


async def stream_error(r: httpx.Response, url: str) -> MeshError:
    """The mesh error a stream's error answer stands for, its body read to at most
    :data:`MAX_STREAM_EVENT_BYTES` (past it: :class:`AnswerRefused`)."""
    what = f"the error answer ({r.status_code}) of {url}"
    body = await read_body(r, MAX_STREAM_EVENT_BYTES, what=what)
    try:
        raise_for_error(httpx.Response(r.status_code, content=body))
    except MeshError as exc:
        return exc
    raise AssertionError("unreachable: the status is an error's")  # pragma: no cover


async def events(
    r: httpx.Response, base: str, quiet: QuietCount | None = None
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """Each ``data:`` line's JSON of a stream's events, ``None`` for ``[DONE]``; an event
    longer than :data:`MAX_STREAM_EVENT_BYTES` (or a line that never ends) is refused,
    not gathered further (:class:`~LLM_Mesh.core.sse_frame.SseFramer`). With ``quiet``,
    each event without output is counted, and past its bound the stream is refused
    (:class:`QuietStream`, ``core/client_floor.py``)."""
    framer = SseFramer(MAX_STREAM_EVENT_BYTES)
    what = f"the stream from {base}"
    async for piece in decoded(r, what=what):
        for event in framer.feed(piece):
            for item in _counted(event, base, quiet):
                yield item
        if quiet is not None and framer.blank:  # blank lines, no event: counted as one each
            passed, framer.blank = quiet.quiet(framer.blank, framer.blank), 0
            if passed is not None:
                raise QuietStream(quiet_message(quiet, passed, base))
        if framer.over:
            raise AnswerRefused(
                f"{what} sent an event longer than {MAX_STREAM_EVENT_BYTES} bytes: not read further"
            )
    for event in framer.end():
        for item in _counted(event, base, quiet):
            yield item


def _counted(event: bytes, base: str, quiet: QuietCount | None) -> list[dict[str, Any] | None]:
    """An event's items (:func:`_data`), counted by ``quiet`` (``[DONE]`` is not)."""
    items = _data(event, base, quiet.choices if quiet is not None else 1)
    if quiet is None or (items and items[-1] is None):
        return items
    passed = quiet.event([item for item in items if item is not None], len(event))
    if passed is not None:
        raise QuietStream(quiet_message(quiet, passed, base))
    return items


def quiet_message(quiet: QuietCount, passed: str, base: str) -> str:
    """What a user reads when a stream passed its bound on events without output."""
    bound = quiet.bound
    said = {
        "in a row": f"{quiet.run:,} events in a row without output (more than {bound.run:,})",
        "in all": f"{quiet.events:,} events without output (more than {bound.events:,})",
        "bytes": f"{quiet.bytes:,} bytes of events without output (more than {bound.bytes:,})",
    }[passed]
    return (
        f"the stream from {base} sent {said}: empty, role-only or choice-less chunks, "
        "comments or blank lines, twice what a gateway keeping its own rules sends for this request's "
        "max_tokens; ended, not read further"
    )


def _data(event: bytes, base: str, choices: int = 1) -> list[dict[str, Any] | None]:
    """An event's ``data:`` lines, parsed (``None``: ``[DONE]``, nothing after it). A chunk
    whose choices are not those of a request of ``choices`` (``n``): an index outside
    ``[0, n)``, not an integer, or twice in it (``core/answer_text.choice_fault``) is
    refused: a gateway keeping its rules relays none (found 2026-12-05, ``choiceidx31``:
    a reader of ``choices[0]`` took another choice's text for the answer's)."""
    out: list[dict[str, Any] | None] = []
    for line in event.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            out.append(None)
            return out
        try:
            chunk = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):  # (invalid UTF-8 too)
            raise UpstreamError(
                f"the stream from {base} sent an event that is not JSON: {data[:80]!r}"
            ) from None
        if not isinstance(chunk, dict):
            raise UpstreamError(f"the stream from {base} sent an event that is not a JSON object")
        if "error" in chunk and "choices" not in chunk:
            raise error_from_payload(502, chunk)
        if (why := choice_fault(chunk, choices)) is not None:
            raise UpstreamError(f"the stream from {base} sent a chunk outside the protocol: {why}")
        out.append(chunk)
    return out
