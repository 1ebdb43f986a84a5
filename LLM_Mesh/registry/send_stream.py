"""Stage 3 for a stream: the node side of one client stream, over one or more nodes.

:class:`NodeStream` opens the first node's stream through the
:class:`~LLM_Mesh.registry.send.Exchange` (failing over before any byte reaches the
client), then reads the node's SSE events and hands each to the relay as an
:class:`Event`. It owns every attempt of the stream: the router hears of the first
token, the success (``[DONE]``, with the node's own completion tokens) or the break,
here and nowhere else.

Events come in batches: those read from the node together (one per read while the
gateway keeps up), which the relay writes to the client in one go. The node's bytes are
framed into events as bytes (:mod:`~LLM_Mesh.core.sse_frame`: an event the gateway need
not change goes to the client as read, this runs per token; an event past
:data:`~LLM_Mesh.core.sse_frame.MAX_EVENT_BYTES` breaks the stream). Each data line is
parsed once, strictly (:mod:`~LLM_Mesh.core.strict_json`): one that is not a JSON
object, or holds ``NaN``, ``Infinity`` or a number past a float's range, breaks the stream
like a cut (so the client only ever gets JSON); the parsed object is kept (for the relay)
only until the node's first token (the gateway's time to first token) and when the event
carries ``"usage"`` (the node's final chunk). The raw ``data:`` lines of the current
node are kept (a list append) so a failover can rebuild the text so far, and the receipt
can hash what was relayed: they are parsed once, all in one ``json.loads``, when the
node's part ends (its final chunk, a break, the client's leaving), and the part goes into
``Tally.outputs`` (``core/receipt.py``).

If the node breaks the stream (transport error, its ``data: {"error"...}`` event, a data line
that is not JSON, or an end without ``[DONE]``), another node is asked to continue
(:mod:`~LLM_Mesh.registry.continuation`) under the same failover policy
(:meth:`~LLM_Mesh.core.failover.Failover.continuation`: the attempts nodes worked on carry over,
refusals before the stream reached its node do not); its events come marked ``continued`` so the
relay rewrites them into the first node's stream; each node that broke off is kept in
``Tally.parts`` with the tokens it delivered (the account stage pays it for them). Where nobody
can continue (chat without a node that advertises ``continuation``, no node left, attempts or
retry budget spent) the last event is a ``FAIL`` with an OpenAI error body: never a silent cut.

Tokens across a continuation: a node that sent its final ``usage`` chunk finished its answer
(only ``[DONE]`` was missing), so its own count is the answer's and the stream ends there; so
does one that sent ``[DONE]`` and then held its connection until it broke. A node that broke
before its usage, or sent ``[DONE]`` without it (its part ``missing``), is counted by its
content chunks: our engines send one chunk per generated token, so for them this is the node's
count; an engine that batches tokens into chunks is undercounted by it (nothing better is known
at the gateway: the node never said, and the gateway has no tokenizer). The continuing node's
prompt held the text so far (``mesh_continue`` or the completion prompt), so its
``prompt_tokens`` less the tokens already sent is the request's prompt.

Bounds (:mod:`~LLM_Mesh.core.stream_guard`): a node part past the tokens the request still
allows (``Job.token_limit``; without ``max_tokens`` ``Job.limit_on`` the context its node
declares, read again as each part opens; less those already sent) is cut off at the limit:
nothing of the event past it is relayed, the node's stream is closed, the router hears
``SERVER_ERROR`` and the client's stream ends as a normal one does (a chunk with
``finish_reason: "length"``, the final chunk with ``usage`` and ``mesh``, ``[DONE]``); a
node's ``usage`` past the limit is read as the limit (and is ``SERVER_ERROR`` too). Per
event this costs a ``len()`` of the part's data lines (kept anyway) and an integer
compare; a part that reaches its limit has its data lines parsed once more there (one
``json.loads``, to count its content chunks exactly). A part slower than the
floor (``Runtime.stream_floor``) breaks like a cut (``TIMEOUT``), checked with one clock
reading per read from the node; the time the relay spends writing to the client is not
counted against the node (a client that reads slowly must not get an honest node ejected),
nor the time its node spent on the mesh's other requests (``Routing.shares``: the
floor holds per node, counting the other replicas' published requests there, each
stream's share bounded: ``core/stream_guard.sharers``), both read only when the part's
floor moment is recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

import anyio

from LLM_Mesh.core import strict_json
from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.delivered import priced_completion
from LLM_Mesh.core.failover import Action, Stop
from LLM_Mesh.core.receipt import PartStatus
from LLM_Mesh.core.receipt_check import Observed
from LLM_Mesh.core.sse_frame import MAX_EVENT_BYTES, SseFramer
from LLM_Mesh.core.stream_guard import over_limit, slow_at
from LLM_Mesh.errors import MeshError, UpstreamError
from LLM_Mesh.registry.continuation import (
    CHAT_PATH,
    chunk_text,
    continuation_body,
    delivered,
    generated,
    length_ending,
    remaining_tokens,
)
from LLM_Mesh.registry.job import usage_counts
from LLM_Mesh.registry.node_client import NodeResponse, NodeTimeout, NodeTransportError
from LLM_Mesh.registry.send import Answer, Exchange, Sender, forward_headers

__all__ = ["DATA", "DONE", "FAIL", "Event", "NodeStream"]

_SEP = (",", ":")

DATA, DONE, FAIL = 0, 1, 2


class Event:
    """One SSE event for the relay: the node's bytes of it (its lines without their line
    endings, joined by ``\\n``; not the blank line that ends it), the first data line's
    JSON when this stage parsed it, whether it comes from a continuing node (or was made or
    corrected by this stage: the relay rewrites such an event to the stream's ``id`` and, on
    the final chunk, to the tally's ``usage``); ``DONE`` ends the stream, ``FAIL`` ends it
    with ``error`` (an OpenAI error body)."""

    __slots__ = ("continued", "error", "kind", "obj", "raw")

    def __init__(
        self,
        kind: int,
        raw: bytes = b"",
        obj: dict[str, Any] | None = None,
        continued: bool = False,
        error: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.raw = raw
        self.obj = obj
        self.continued = continued
        self.error = error

    @property
    def lines(self) -> list[str]:
        """The event's lines, decoded (for the relay's rewrites)."""
        return self.raw.decode("utf-8", "replace").split("\n")


_DONE = Event(DONE)
_NO_EVENTS: list[Event] = []  # (never appended to)


class _Broken(Exception):
    """The node broke off its stream (reason in the message)."""

    outcome = Outcome.SERVER_ERROR


class _TooSlow(_Broken):
    """The node's stream fell below the floor (``core/stream_guard.py``)."""

    outcome = Outcome.TIMEOUT


class _Overrun(_Broken):
    """The node went past the tokens the request allows: cut off at the limit."""


_UNBOUNDED = 2**62  # a job without a token limit


def stream_payload(body: dict[str, Any]) -> bytes:
    """The body a node gets for a stream: with ``stream_options.include_usage``."""
    options = body.get("stream_options")
    out = dict(body)
    out["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    return json.dumps(out, separators=_SEP, ensure_ascii=False).encode()


async def _opened(pending: Awaitable[NodeResponse]) -> NodeResponse:
    """A node's stream answer; a non-200's body is read (and closed) here, inside the attempt,
    so a body cut off is the node's transport failure, never a leaked attempt."""
    resp = await pending
    if resp.status_code != 200:
        try:
            await resp.aread()
        finally:
            await resp.aclose()
    return resp


class NodeStream:
    """See the module docstring. ``open``, then ``events``; ``close`` always (idempotent)."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.resp: NodeResponse | None = None
        self.data: list[bytes] = []  # the current node's data lines (first of each event)
        self._done = False  # the current node sent [DONE]
        self.text = ""  # text the client got from earlier nodes
        self.node_first = False  # the current node has sent a token
        self.usage_seen = False  # the current node sent its final usage chunk
        self.continued = False
        self._closed = False
        # the current node part's bounds (core/stream_guard.py)
        self.limit = _UNBOUNDED  # tokens it may still send (set as its stream opens)
        self.content = -1  # its content chunks, counted only past ``limit`` events
        self.clipped = False  # its usage said more than ``limit``: read as ``limit``
        self.opened = 0.0  # when its stream opened
        self.first_at: float | None = None  # when it sent its first token
        self.client_s = 0.0  # time spent writing its events to the client: not its own
        self.slow_at = math.inf  # the moment it is too slow unless it sends more
        self.lost0 = 0.0  # its node's shared time lost when its floor's clock started

    def _part(self) -> None:
        """A node part starts (its stream just opened, ``tally.node_id`` its node), with
        the tokens the request still allows on that node (:meth:`_left`)."""
        self.limit = self._left()
        self.content, self.clipped = -1, False
        self.opened = self.ex.rt.clock()
        self.first_at, self.client_s = None, 0.0
        self.lost0 = self._lost(self.opened)
        self.slow_at = slow_at(self.ex.rt.stream_floor, self.opened, None, 0)

    def _left(self) -> int:
        """The tokens the current node may still send: the job's limit (without
        ``max_tokens``: at the context its node declares, at most the one the estimate was
        priced at: ``Job.limit_on``), less those earlier nodes delivered."""
        ex = self.ex
        job, node = ex.job, ex.tally.node_id
        if job.token_limit <= 0:
            return _UNBOUNDED
        limit = job.token_limit
        if job.max_tokens <= 0 and node is not None:
            hosted = ex.rt.table.hosted(node, job.model)
            limit = job.limit_on(hosted.context_length if hosted is not None else None)
        return limit - ex.tally.before

    def _lost(self, now: float) -> float:
        """The time the current node's requests lost to each other by ``now``
        (``core/stream_guard.SharedTime``; as a part streaming once it sent its first token,
        else as one waiting for it): not counted against this part."""
        node = self.ex.tally.node_id
        if node is None:
            return 0.0
        return self.ex.routing.shares.lost(node, now, streaming=self.first_at is not None)

    def _sender(self, payload: bytes) -> Sender:
        rt, job = self.ex.rt, self.ex.job
        client, body_sha256 = rt.http, hashlib.sha256(payload).hexdigest()
        timeout_s, connect_s = rt.settings.request_timeout_s, rt.settings.connect_timeout_s

        async def send(node: str, url: str, left: float) -> NodeResponse:
            headers = forward_headers(rt, job, node, body_sha256)
            return await _opened(client.stream(
                url + job.path, payload, headers, timeout_s=timeout_s,
                connect_s=min(left, connect_s),
            ))  # fmt: skip

        return send

    async def open(self) -> Answer:
        """The first node's answer: 200 (its stream now open) or a node's own 4xx refusal
        to pass on (its attempt ended; any other status is the node's failure, failed over
        in :meth:`Exchange.send`: ``core/failover.status_outcome``)."""
        ex = self.ex
        node, resp = await ex.send(self._sender(stream_payload(ex.job.body)))
        if resp.status_code != 200:
            return Answer(node, resp.status_code, resp.content, None)
        self.resp = resp
        self._part()
        return Answer(node, 200, b"", None)

    async def events(self) -> AsyncGenerator[list[Event], None]:
        """The client stream's events across failovers, in batches (those read from the
        node together; an event cut by a read waits for the next); the last event is
        ``DONE`` or ``FAIL``."""
        ex, tally, clock = self.ex, self.ex.tally, self.ex.rt.clock
        while True:
            try:
                resp = self.resp
                if resp is None:  # pragma: no cover - events() before open()
                    raise _Broken("no node stream is open")
                # the node's events, read here (no generator in between: this runs per token)
                framer, self._done = SseFramer(), False
                async for got in resp.aiter_raw():
                    if self._done:  # its [DONE] ended its part: the rest is read, not kept
                        continue
                    batch, broken = self._events(framer.feed(got))
                    if framer.over and broken is None and not self._done:
                        broken = self._too_big()
                    now = clock()
                    slow = self._too_slow(now) if now > self.slow_at else None
                    if batch:
                        yield batch
                        spent = clock() - now  # writing to the client: not the node's time
                        self.client_s += spent
                        self.slow_at += spent
                    if broken is not None:  # what came before the error event went first
                        raise broken
                    if slow is not None:
                        raise slow
                batch, broken = _NO_EVENTS, None
                if not self._done:  # its last event, if unterminated
                    batch, broken = self._events(framer.end())
                if broken is None and not self._done:
                    broken = _Broken(f"node {tally.node_id} ended its stream without [DONE]")
                if batch:
                    yield batch
                if broken is not None:
                    raise broken
                if not self.usage_seen:  # [DONE] without a final chunk: no receipt, and
                    # its content chunks are its count (found 2026-12-04: 0, so the text
                    # delivered was neither charged nor paid; and the router heard 0)
                    tally.completion_tokens = self._unsigned_part(PartStatus.MISSING)
                att = ex.att
                if att is not None and self.clipped:  # its usage said more than allowed
                    ex.broke(Outcome.SERVER_ERROR)
                    ex.stop(Stop.SUCCEEDED)
                elif att is not None:
                    ex.finish(att, Outcome.SUCCESS, completion_tokens=tally.completion_tokens)
                tally.outcome = "ok"
                yield [_DONE]
                return
            except (NodeTransportError, _Broken) as exc:
                if isinstance(exc, _Overrun):
                    yield await self._at_limit()
                    return
                if isinstance(exc, _Broken):
                    bad = exc.outcome
                else:
                    bad = Outcome.TIMEOUT if isinstance(exc, NodeTimeout) else Outcome.SERVER_ERROR
                reason = exc.kind if isinstance(exc, NodeTransportError) else str(exc)
                try:
                    end = await self._continue(bad, reason)
                except Exception as cexc:  # never a silent cut: end with an error event
                    end = self._fail(f"{reason}; failover failed: {cexc!r}", None)
                if end is not None:
                    yield [end]
                    return

    def _too_big(self) -> _Broken:
        """The break when the event being read is past :data:`MAX_EVENT_BYTES`."""
        node = self.ex.tally.node_id
        return _Broken(f"node {node} sent an event over {MAX_EVENT_BYTES} bytes")

    def _events(self, blobs: list[bytes]) -> tuple[list[Event], _Broken | None]:
        """The events of ``blobs`` (whole SSE events, from the framer) up to the one that
        breaks the stream, and that break; ``[DONE]`` is noted, not passed on."""
        batch: list[Event] = []
        for blob in blobs:
            if self._done:  # its [DONE] ended its part: nothing after it (found 2026-12-04)
                break
            try:
                ev = self._event(blob)
            except _Broken as exc:
                return batch, exc
            if ev is _DONE:
                self._done = True
            else:
                batch.append(ev)
        return batch, None

    def _event(self, blob: bytes) -> Event:
        if not blob.startswith(b"data:") or b"\n" in blob:  # rare: other fields, or lines
            first = self._data_line(blob)
            if not first:  # a comment, an event name alone: no data, relayed as sent
                return Event(DATA, blob, None, self.continued)
        else:
            first = blob
        if first == b"data: [DONE]":
            return _DONE
        obj = self._checked(first)
        if "error" in obj:  # the parsed key: `{ "error"` and "\u0065rror" too (found 2026-12-04)
            node = self.ex.tally.node_id
            said = first.decode("utf-8", "replace")
            raise _Broken(f"node {node} reported an error mid-stream: {said[5:300]}")
        if self.usage_seen:  # its final chunk went out: nothing of the node's after it
            node = self.ex.tally.node_id
            raise _Broken(f"node {node} sent an event after its final (usage) chunk")
        data = self.data  # the part's data events so far: one a line
        if len(data) >= self.limit and self._past_limit(obj):  # an honest node: its last few
            node = self.ex.tally.node_id
            raise _Overrun(f"node {node} went past the {self.limit} tokens allowed")
        data.append(first)
        # the parsed key, not the bytes: "\u0075sage" is "usage" to every reader (found
        # 2026-12-04: such a final chunk was relayed as the node wrote it, its own mesh)
        if not self.node_first or "usage" in obj:
            self._read(obj)
            # a usage read as the limit: the relay writes the tally's instead
            return Event(DATA, first, obj, self.continued or self.clipped)
        if "mesh" in obj:  # the relay drops it: only the gateway's final chunk has one
            return Event(DATA, first, obj, self.continued)
        return Event(DATA, first, None, self.continued)

    def _past_limit(self, obj: dict[str, Any]) -> bool:
        """Whether this data event (``obj``) takes the part past its limit: its content
        chunks are counted once (those relayed so far: one parse of its data lines), then
        one by one."""
        if self.content < 0:
            self.content = generated(self.data)[1]
        if chunk_text(obj):
            self.content += 1
        return over_limit(self.limit, self.content, len(self.data) + 1)

    def _too_slow(self, now: float) -> _TooSlow | None:
        """The part's floor moment passed: it is recomputed with the events sent since
        (less the time the client took); past it still, the part is too slow."""
        floor = self.ex.rt.stream_floor
        shared = self._lost(now) - self.lost0  # its node's time went to other requests too
        base = slow_at(floor, self.opened, self.first_at, len(self.data))
        self.slow_at = base + self.client_s + shared
        if now <= self.slow_at:
            return None
        node = self.ex.tally.node_id
        if self.first_at is None:
            return _TooSlow(f"node {node} sent no token within {floor.first_token_s:g} s")
        return _TooSlow(
            f"node {node} is too slow: {len(self.data)} events in "
            f"{now - self.first_at - self.client_s - shared:.1f} s of its time after its "
            f"first token (floor: {floor.min_rate:g}/s after {floor.grace_s:g} s)"
        )

    def _data_line(self, blob: bytes) -> bytes:
        """An event's one ``data:`` line, its other fields (a comment, ``event:``, ``id:``,
        ``retry:``) dropped; ``b""`` when it has none. Each is checked and relayed as an
        event of that line alone (found 2026-12-04: an event not beginning with its data
        line was relayed untouched: its content uncounted, a final chunk's ``mesh`` the
        node's). An event of several data lines (read line by line by ``receipt verify``,
        unreadable JSON to clients once joined) breaks the stream (found 2026-12-04: a
        final chunk or a ``mesh`` on its second line reached the client)."""
        lines = [line for line in blob.split(b"\n") if line.startswith(b"data:")]
        if len(lines) > 1:
            raise _Broken(f"node {self.ex.tally.node_id} sent an event of several data lines")
        return lines[0] if lines else b""

    def _checked(self, first: bytes) -> dict[str, Any]:
        """The data line's JSON object; a data line that is not one (not JSON, a non-finite
        number: ``core/strict_json.py``) breaks the stream: the client gets only JSON.
        Every data line is parsed once, here (about 2-3 us a token)."""
        try:
            return strict_json.loads_object(first[5:])
        except (ValueError, RecursionError):  # nested past the parser's limit
            node = self.ex.tally.node_id
            said = first[5:80].decode("utf-8", "replace")
            raise _Broken(f"node {node} sent an event that is not JSON: {said!r}") from None

    def _read(self, obj: dict[str, Any]) -> None:
        """The first token (the gateway's time to first token) and the final chunk's usage."""
        ex = self.ex
        if not self.node_first and chunk_text(obj):
            self.node_first = True
            ex.first_token()
            real = ex.rt.clock()
            self.first_at = now = real - self.client_s  # on the node's own time
            self.lost0 = self._lost(real)  # the floor's clock starts again here
            self.slow_at = slow_at(ex.rt.stream_floor, self.opened, now, len(self.data))
            self.slow_at += self.client_s
        usage = obj.get("usage")
        if isinstance(usage, dict) and not obj.get("choices"):
            tally = ex.tally
            pt, ct = usage_counts(usage)
            if ct > self.limit:  # more than the request allows: read as the limit
                ct, self.clipped = self.limit, True
            # a continuing node's prompt held the text so far
            tally.prompt_tokens = max(0, pt - tally.before) if self.continued else pt
            tally.completion_tokens = self._observe(pt, ct, obj.get("mesh"))  # (read once)
            self.usage_seen = True

    def _observe(self, pt: int, ct: int, node_mesh: Any) -> int:
        """The current node's part for the receipt: its text as relayed (its data lines,
        parsed once, here at its final chunk), its counts and its ``mesh.receipt``. Returns
        the count priced: ``ct``, at most the bytes it delivered (``core/delivered.py``)."""
        tally, job = self.ex.tally, self.ex.job
        text, _, nbytes = delivered(self.data, job.choices)
        digest = output_sha256(text)
        claim = node_mesh.get("receipt") if isinstance(node_mesh, dict) else None
        tally.outputs.append(Observed(tally.node_id or "", pt, ct, digest, claim))
        tally.output_sha256 = output_sha256(self.text + text) if self.text else digest
        return priced_completion(ct, nbytes, job.choices, job.stop_bytes)

    async def _continue(self, bad: Outcome, reason: str) -> Event | None:
        """Fail over mid-stream; ``None`` when another node now streams, else the last event."""
        ex, rt, job, tally = self.ex, self.ex.rt, self.ex.job, self.ex.tally
        failed = ex.broke(bad) or tally.node_id or "?"
        if self.resp is not None:
            with anyio.CancelScope(shield=True):
                await self.resp.aclose()
        tally.failed_nodes.append(failed)
        if self.usage_seen or self._done:  # it finished (only [DONE] missing, or it held on
            if not self.usage_seen:  # after [DONE]: found 2026-12-04, then continued elsewhere)
                tally.completion_tokens = self._unsigned_part(PartStatus.MISSING)
            ex.stop(Stop.SUCCEEDED)
            tally.outcome = "ok"
            return _DONE
        seg_chunks = self._unsigned_part(PartStatus.BROKEN, failed)
        tally.before += seg_chunks
        tally.parts.append((failed, seg_chunks))  # what this node delivered: its pay
        tally.completion_tokens = 0  # the next node's own count comes with its usage
        left = remaining_tokens(job.body, tally.before)
        if self.text and left is not None and left <= 0:  # complete but for [DONE]
            ex.stop(Stop.SUCCEEDED)
            tally.outcome = "ok"
            return _DONE
        if self.text and job.choices > 1:  # the text so far is every choice's, run together
            ex.stop(Stop.NO_NODE)
            return self._fail(f"{reason}; a stream of n={job.choices} choices cannot be "
                              "continued on another node", "continuation_unsupported")  # fmt: skip
        ext = ex.ext
        if self.text and job.path == CHAT_PATH:
            able = frozenset(
                e.node_id
                for e in rt.table.healthy_entries_for(job.model)
                if rt.table.supports_continuation(e.node_id, job.model)
            )
            allow = able if ext.allow_nodes is None else able & ext.allow_nodes
            if not allow - ex.tried:
                ex.stop(Stop.NO_NODE)
                return self._fail(
                    f"{reason}; no other node hosting {job.model!r} can continue a chat "
                    "(none advertises 'continuation')",
                    "continuation_unsupported",
                )
            ext = dataclasses.replace(ext, allow_nodes=allow)
        step = ex.resume(failed, bad)
        if step.action is Action.STOP:
            why = step.stop.value if step.stop is not None else "stop"
            extra = {"retry_budget_exhausted": True} if step.stop is Stop.RETRY_BUDGET else {}
            return self._fail(f"{reason}; no failover ({why})", None, **extra)
        if step.delay_s > 0:
            await anyio.sleep(step.delay_s)
        ex.ext = ext
        body = continuation_body(job.path, job.body, job.prompt_text, self.text, tally.before)
        try:
            node, resp = await ex.send(self._sender(stream_payload(body)))
        except MeshError as exc:
            return self._fail(f"{reason}; failover found no node: {exc.message}", exc.code)
        if resp.status_code != 200:  # a node's own refusal (its attempt ended)
            return self._fail(
                f"{reason}; node {node} refused to continue: "
                f"HTTP {resp.status_code} {resp.content[:200]!r}",
                "upstream_error",
            )
        self.resp = resp
        self.node_first = self.usage_seen = False
        self.continued = True
        self._part()
        return None

    async def _at_limit(self) -> list[Event]:
        """The node went past the limit: its stream is closed, the router hears
        a failure, and the client's stream ends as a normal one does: a chunk with
        ``finish_reason: "length"``, the final chunk (``usage`` and ``mesh`` from the account
        stage: the relay rewrites a ``continued`` event to the stream's id and the tally's
        usage), ``[DONE]``. Charged: the tokens relayed."""
        ex, job, tally = self.ex, self.ex.job, self.ex.tally
        node = ex.broke(Outcome.SERVER_ERROR) or tally.node_id or "?"  # broke its contract
        if self.resp is not None:
            with anyio.CancelScope(shield=True):
                await self.resp.aclose()
        ex.stop(Stop.SUCCEEDED)
        tally.completion_tokens = self._unsigned_part(PartStatus.BROKEN, node)
        tally.outcome = "ok"
        finish, last = length_ending(job.path, job.request_id, job.model, ex.rt.wall_clock())
        return [
            Event(DATA, b"data: {}", finish, continued=True),
            Event(DATA, b"data: {}", last, continued=True),
            _DONE,
        ]

    def _fail(self, message: str, code: str | None, **extra: Any) -> Event:
        tally = self.ex.tally
        tally.outcome, tally.error_code = "error", code or UpstreamError.code
        err = UpstreamError(message, node_id=tally.node_id, attempts=tally.attempts, **extra)
        body = err.to_openai()
        body["error"]["code"] = tally.error_code
        return Event(FAIL, error=body)

    def _unsigned_part(self, status: PartStatus, node: str | None = None) -> int:
        """The current node's part when it sent no final chunk (``status`` says why): its
        relayed text joins the text so far; its data lines are done with. Its chunks, priced
        as any part (at most its bytes + slack: never less, each chunk counted holds text)."""
        tally, job = self.ex.tally, self.ex.job
        text, chunks, nbytes = delivered(self.data, job.choices)
        self.data = []
        self.text += text
        if chunks:
            node = node or tally.node_id or "?"
            tally.outputs.append(Observed(node, 0, chunks, output_sha256(text), no_receipt=status))
            tally.output_sha256 = output_sha256(self.text)
        return priced_completion(chunks, nbytes, job.choices, job.stop_bytes)

    async def close(self) -> None:
        """Close upstream and settle an attempt still open (the client went away). Once."""
        if self._closed:
            return
        self._closed = True
        cut = 0
        if self.data and not self.usage_seen:  # cut off before the node's final chunk
            cut = self._unsigned_part(PartStatus.CUT)
        if self.resp is not None:
            with anyio.CancelScope(shield=True):
                await self.resp.aclose()
        att = self.ex.att
        if att is not None:
            self.ex.finish(att, Outcome.CANCELLED)
        tally = self.ex.tally
        if tally.outcome is None:
            tally.outcome = "cancelled"
            if not self.usage_seen:  # what this node delivered before the client left
                tally.completion_tokens = cut
