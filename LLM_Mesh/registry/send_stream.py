"""Stage 3 for a stream: the node side of one client stream, over one or more nodes.

:class:`NodeStream` opens the first node's stream through the
:class:`~LLM_Mesh.registry.send.Exchange` (failing over before any byte reaches the
client), then reads the node's SSE events and hands each to the relay as an
:class:`Event`. It owns every attempt of the stream: the router hears of the first
token, the success (``[DONE]``, with the node's own completion tokens) or the break,
here and nowhere else.

Reading one node's part of the stream (its bytes framed into events, each checked,
the part's bounds, what it delivered for the receipt) is
:class:`~LLM_Mesh.registry.stream_part.PartReader`'s, which :class:`NodeStream` extends.

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
(only ``[DONE]`` was missing), so its own count is the answer's and the stream ends there.
Nothing after a node's ``[DONE]`` is read: the client's ``[DONE]`` goes out at once and the
connection is let go (``NodeResponse.done_reading``: reused only if its answer ends cleanly
at once). A node that broke
before its usage, or sent ``[DONE]`` without it (its part ``missing``), is counted by its
content chunks: our engines send one chunk per generated token, so for them this is the node's
count; an engine that batches tokens into chunks is undercounted by it (nothing better is known
at the gateway: the node never said, and the gateway has no tokenizer). The continuing node's
prompt held the text so far (``mesh_continue`` or the completion prompt), so its
``prompt_tokens`` less the tokens already sent is the request's prompt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

import anyio

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.failover import Action, Stop
from LLM_Mesh.core.node_refusal import node_refusal
from LLM_Mesh.core.priority import keyed_body
from LLM_Mesh.core.prompt_count import (
    HDR_PROMPT_SIGNATURE,
    HDR_PROMPT_TOKENS,
    checked_claim,
    said_prompt_tokens,
)
from LLM_Mesh.core.receipt import PartStatus
from LLM_Mesh.core.sse_frame import SseFramer
from LLM_Mesh.errors import MeshError, UpstreamError
from LLM_Mesh.registry.continuation import (
    CHAT_PATH,
    continuation_body,
    length_ending,
    remaining_tokens,
)
from LLM_Mesh.registry.node_client import NodeResponse, NodeTimeout, NodeTransportError
from LLM_Mesh.registry.send import Answer, Exchange, Sender, forward_headers
from LLM_Mesh.registry.stream_part import (
    DATA,
    DONE,
    DONE_EVENT,
    FAIL,
    NO_EVENTS,
    Broken,
    Event,
    Overrun,
    PartReader,
)

__all__ = ["DATA", "DONE", "FAIL", "Event", "NodeStream"]

_SEP = (",", ":")


def stream_payload(body: dict[str, Any], keyed: bool = False) -> bytes:
    """The body a node gets for a stream: with ``stream_options.include_usage`` (and the
    keyed class, first, for a keyed request: ``core/priority.py``)."""
    options = body.get("stream_options")
    out = keyed_body(body) if keyed else dict(body)
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


class NodeStream(PartReader):
    """See the module docstring. ``open``, then ``events``; ``close`` always (idempotent)."""

    def __init__(self, ex: Exchange) -> None:
        super().__init__(ex)
        self.resp: NodeResponse | None = None
        self._closed = False
        # the current part's said prompt count, not yet checked (_part, _said_claim)
        self._said: tuple[int, str | None, str, int | None] | None = None

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

    def _part(self) -> None:
        """A node part starts (``PartReader._part``), with the prompt count its node said as
        its stream opened (``core/prompt_count.py``; a continuing node's less the tokens
        already sent, as its final count is read): what a stream the client cuts pays. Only
        a count its node signed (``checked_claim``: for this registry, request and model, by
        the key of the node routed to; since 2026-12-06, money36); else not said.

        The signature is checked when the count is needed (:meth:`_said_claim`: the client
        cut the stream before the node's final chunk), not here: the check (one Ed25519
        verify, ~80-130 µs) sat on the first token's way, and a stream that ends with its
        node's usage never reads the count (2026-12-06, ttft37). What is checked is read
        now: the node's headers, the node routed to, the tokens already sent."""
        super()._part()
        ex = self.ex
        resp, tally = self.resp, ex.tally
        tally.said_prompt_tokens, tally.prompt_claim = 0, None
        self._said = None
        if resp is not None and tally.node_id is not None:
            said = said_prompt_tokens(resp.headers.get(HDR_PROMPT_TOKENS))
            if said > 0:
                before = tally.before if self.continued else None
                self._said = (said, resp.headers.get(HDR_PROMPT_SIGNATURE), tally.node_id, before)

    def _said_claim(self) -> None:
        """Check the count the current part's node said (:meth:`_part`), once: a believed
        one sets ``tally.prompt_claim`` and ``tally.said_prompt_tokens``."""
        pending, self._said = self._said, None
        if pending is None:
            return
        said, value, node_id, before = pending
        ex, tally = self.ex, self.ex.tally
        claim = checked_claim(
            said, value, registry_id=ex.rt.signer.registry_id, node_id=node_id,
            request_id=ex.job.forwarded_id, model=ex.job.model, keys=ex.rt.node_keys,
        )  # fmt: skip
        tally.prompt_claim = claim
        said = 0 if claim is None else claim.prompt_tokens
        tally.said_prompt_tokens = said if before is None else max(0, said - before)

    async def open(self) -> Answer:
        """The first node's answer: 200 (its stream now open) or a node's own 4xx refusal
        to pass on (its attempt ended; any other status is the node's failure, failed over
        in :meth:`Exchange.send`: ``core/failover.status_outcome``)."""
        ex = self.ex
        node, resp = await ex.send(self._sender(stream_payload(ex.job.body, ex.keyed)))
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
                    raise Broken("no node stream is open")
                # the node's events, read here (no generator in between: this runs per token)
                framer, self._done = SseFramer(), False
                async for got in resp.aiter_raw():
                    outputs = self.outputs
                    batch, broken = self._events(framer.feed(got))
                    if framer.over and broken is None and not self._done:
                        broken = self._too_big()
                    now = clock()
                    slow = self._too_slow(now) if now > self.slow_at else None
                    if self.outputs != outputs:  # not quiet (core/prompt_count.stalled)
                        self.quiet_from, self.quiet_client = now, self.client_s
                        self.quiet_lost = self._lost(now)
                    if batch:
                        self.writing = now
                        yield batch
                        self.writing = None
                        spent = clock() - now  # writing to the client: not the node's time
                        self.client_s += spent
                        self.slow_at += spent
                    if broken is not None:  # what came before the error event went first
                        raise broken
                    if slow is not None:
                        raise slow
                    if self._done:  # its [DONE] ended its part: nothing more is read (found
                        break  # 2026-12-05: the end was awaited, a silent node held the
                        # client's [DONE] and the attempt up to the read timeout)
                if self._done:  # its connection is kept only if its answer ends at once
                    await resp.done_reading()
                batch, broken = NO_EVENTS, None
                if not self._done:  # its last event, if unterminated
                    batch, broken = self._events(framer.end())
                if broken is None and not self._done:
                    broken = Broken(f"node {tally.node_id} ended its stream without [DONE]")
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
                yield [DONE_EVENT]
                return
            except (NodeTransportError, Broken) as exc:
                if isinstance(exc, Overrun):
                    yield await self._at_limit()
                    return
                if isinstance(exc, Broken):
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

    async def _continue(self, bad: Outcome, reason: str) -> Event | None:
        """Fail over mid-stream; ``None`` when another node now streams, else the last event."""
        ex, rt, job, tally = self.ex, self.ex.rt, self.ex.job, self.ex.tally
        failed = ex.broke(bad) or tally.node_id or "?"
        if self.resp is not None:
            with anyio.CancelScope(shield=True):
                await self.resp.aclose()
        tally.failed_nodes.append(failed)
        if self.usage_seen or self._done or self.finished:  # it finished (only [DONE]
            # missing, or it held on after [DONE]: found 2026-12-04; or its usage chunk
            # missing after its finish chunk: found 2026-12-05), then continued elsewhere
            if not self.usage_seen:
                tally.completion_tokens = self._unsigned_part(PartStatus.MISSING)
            ex.stop(Stop.SUCCEEDED)
            tally.outcome = "ok"
            return DONE_EVENT
        seg_chunks = self._unsigned_part(PartStatus.BROKEN, failed)
        tally.before += seg_chunks
        tally.parts.append((failed, seg_chunks))  # what this node delivered: its pay
        tally.completion_tokens = 0  # the next node's own count comes with its usage
        # a node that broke is not believed on its prompt count (core/prompt_count.py): a
        # client leaving before the next node opens pays the usual count (found 2026-12-06)
        tally.said_prompt_tokens, tally.prompt_claim, self._said = 0, None, None
        left = remaining_tokens(job.body, tally.before)
        if self.text and left is not None and left <= 0:  # complete but for [DONE]
            ex.stop(Stop.SUCCEEDED)
            tally.outcome = "ok"
            return DONE_EVENT
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
            node, resp = await ex.send(self._sender(stream_payload(body, ex.keyed)))
        except MeshError as exc:
            return self._fail(f"{reason}; failover found no node: {exc.message}", exc.code)
        if resp.status_code != 200:  # a node's own refusal (its attempt ended): its words
            # as a refusal's to a client, never its body (found 2026-12-05)
            said = node_refusal(resp.status_code, resp.content).message
            return self._fail(
                f"{reason}; node {node} refused to continue: {said}", "upstream_error"
            )
        self.resp = resp
        self.node_first = self.usage_seen = self.finished = False
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
            DONE_EVENT,
        ]

    def _fail(self, message: str, code: str | None, **extra: Any) -> Event:
        tally = self.ex.tally
        tally.outcome, tally.error_code = "error", code or UpstreamError.code
        err = UpstreamError(message, node_id=tally.node_id, attempts=tally.attempts, **extra)
        body = err.to_openai()
        body["error"]["code"] = tally.error_code
        return Event(FAIL, error=body)

    async def close(self) -> None:
        """Close upstream and settle an attempt still open (the client went away). Once."""
        if self._closed:
            return
        self._closed = True
        # its prompt count, unless it had stalled as the client left: the leave then its
        # doing (core/prompt_count.py, stall35); judged while its attempt is still open;
        # its signature checked only now, and only when no final chunk came (ttft37)
        if not self.usage_seen:
            self._said_claim()
        said = self._said_at_cut()
        cut = 0
        if self.data and not self.usage_seen:  # cut off before the node's final chunk
            # its signed count, when believed, goes with its part into the receipt
            claim = self.ex.tally.prompt_claim if said else None
            cut = self._unsigned_part(PartStatus.CUT, claim=claim)
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
                tally.said_prompt_tokens = said
