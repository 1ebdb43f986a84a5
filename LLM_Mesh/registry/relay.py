"""Stage 4, relay: the node's answer as the client's bytes (JSON or SSE). Finishes nothing.

A JSON answer is the node's body with the gateway's ``mesh`` object and its receipt
also in ``X-Mesh-Receipt`` (:func:`json_answer`); a 4xx the node decided passes on with its
status as OpenAI's error object, rebuilt from what of the node's body may be kept
(:func:`passthrough`, ``core/node_refusal.py``). Both carry ``X-Mesh-Node``, ``X-Mesh-Model`` and
``X-Mesh-Request-Id``.

A stream (:class:`SseRelay`) writes the :class:`~LLM_Mesh.registry.stream_part.Event`
batches the send stage hands over as they come (one write per batch: the events read
from the node together), each event untouched unless it must change: the node's final chunk (``"choices": []``, ``usage``) gets the gateway's
``mesh`` (and, after a continuation, the summed ``usage``) from the account stage's
``finalize`` (and ``commit``, awaited before that chunk is sent: the settlement
records the answer first); chunks of a continuing node are rewritten to the first chunk's
``id``/``created``/``model`` and its leading role-only chunk is dropped, so the client
sees one stream. That final ``"choices": []`` chunk reaches the client only when it asked
``stream_options.include_usage`` (OpenAI's shape; the node is always asked); otherwise a
chunk with a ``finish_reason`` string is held back until the next event, and when that is
the final chunk its ``usage`` and ``mesh`` go on the held one instead (found 2026-12-05: the
naive SDK loop ``chunk.choices[0]`` raised IndexError on the empty chunk). A held chunk
goes out as it was before any other event (an SSE comment excepted). A ``FAIL`` event ends
the stream with ``data: {"error": {...}}`` (with ``mesh.receipt`` from the account
stage's ``on_error`` when text was delivered) then ``data: [DONE]``.

When the client goes away, :class:`ProxyStream` closes the relay's generator (which
closes the send stage's) and runs ``on_close`` (the send stage settles its attempt, the
account stage records the request) at once, however the response ends. A response the
server never runs (the connection dropped between the handler returning and the response
starting) is ended the same way :data:`START_S` after it was made: upstream closed,
``on_close`` run, then its ``when_ended`` callbacks (the request id's hold: the normal
window after a stream's end, as the node was already called); a server that runs it later
gets a 502 and nothing of the node's (found 2026-12-03: its id stayed held 24 h).

A keyed SDK attempt's stream keeps the bytes it sends when asked
(:meth:`ProxyStream.keep_answer`), within a :class:`KeepBudget` that all the streams kept
at once share (the cache's ``max_bytes``; past it a stream keeps none, its retry refused as
before; cut off or failed, or once replayed to the cache, its bytes go back); once it completed (``[DONE]`` after its final chunk,
finalized and committed) :meth:`ProxyStream.kept_answer` is the whole stream, replayed to
the SDK's retry (``registry/idempotency.py``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Protocol

import anyio
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from LLM_Mesh.core import strict_json
from LLM_Mesh.core.client_retry import retry_header
from LLM_Mesh.core.node_refusal import Refusal
from LLM_Mesh.core.receipt import HDR_RECEIPT, encode_header
from LLM_Mesh.registry.continuation import chunk_text
from LLM_Mesh.registry.errors import NOSNIFF, json_response
from LLM_Mesh.registry.job import Job
from LLM_Mesh.registry.stream_part import DATA, DONE, FAIL, Event

__all__ = [
    "Commit",
    "Finalize",
    "KeepBudget",
    "ProxyStream",
    "SseRelay",
    "asks_usage",
    "json_answer",
    "mesh_headers",
    "passthrough",
    "stream_response",
]

_DONE_BYTES = b"data: [DONE]\n\n"
_END = b"\n\n"  # the blank line that ends an event
# a chunk whose finish_reason is a string (not null): it may be the last with choices
_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')
# seconds from a stream response's making (the handler returning it) to the server running
# it, past which it is ended as never run: the server runs it at once in the same task, so
# only a dropped connection (or a loop stalled this long) gets here; a slow first byte
# from the node does not (the response has started and waits for the node)
START_S = 30.0

# (the node's final chunk, whether it comes from a continuing node) -> None: sets its
# "mesh" (and, continued, its "usage") in place
Finalize = Callable[[dict[str, Any], bool], None]
# awaited after Finalize and before the final chunk is sent (settlement records the answer)
Commit = Callable[[], Awaitable[None]]


def mesh_headers(node_id: str, job: Job) -> dict[str, str]:
    """The mesh's headers of an answer; the request id also as OpenAI's ``X-Request-Id``
    (the openai SDK's ``_request_id``, what users quote in a report)."""
    return {
        "X-Mesh-Node": node_id,
        "X-Mesh-Model": job.model,
        "X-Mesh-Request-Id": job.request_id,
        "X-Request-Id": job.request_id,
    }


# mesh_headers' names and X-Mesh-Receipt's as a Response stores them (lower case, bytes)
_NODE, _MODEL, _REQUEST_ID, _OPENAI_REQUEST_ID, _RECEIPT = (
    name.lower().encode("latin-1")
    for name in ("X-Mesh-Node", "X-Mesh-Model", "X-Mesh-Request-Id", "X-Request-Id", HDR_RECEIPT)
)


def json_answer(
    job: Job, node_id: str, data: dict[str, Any], receipt: dict[str, Any] | None = None
) -> Response:
    """A non-stream's answer: the node's body (``mesh`` already the gateway's), with the
    countersigned receipt also in ``X-Mesh-Receipt`` (base64url of its JSON).

    The headers are ``json_response(data, 200, mesh_headers(...) + X-Mesh-Receipt)``'s, in
    its order, put in as the bytes it would make of them (its look at each header's name
    and the ``dict`` of them were ~3 µs of the loop's CPU a request)."""
    response = json_response(data, 200)  # content-length, content-type, nosniff
    head = [
        (_NODE, node_id.encode("latin-1")),
        (_MODEL, job.model.encode("latin-1")),
        (_REQUEST_ID, job.request_id.encode("latin-1")),
        (_OPENAI_REQUEST_ID, job.request_id.encode("latin-1")),
    ]
    if receipt is not None:
        head.append((_RECEIPT, encode_header(receipt).encode("latin-1")))
    response.raw_headers[:0] = head
    return response


def passthrough(job: Job, node_id: str, refusal: Refusal) -> Response:
    """A 4xx the node decided (e.g. its exact context check): OpenAI's error object with
    what of the node's may be kept, never its bytes (``core/node_refusal.py``)."""
    head = {**mesh_headers(node_id, job), **retry_header(refusal.status)}  # 4xx: no retry
    return json_response(refusal.body(), refusal.status, head)


def asks_usage(body: dict[str, Any]) -> bool:
    """Whether a stream's client asked ``stream_options.include_usage`` (OpenAI's final
    ``"choices": []`` chunk; :class:`SseRelay`'s ``usage_chunk``)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + strict_json.dumps(obj) + b"\n\n"


def _role_only(obj: dict[str, Any]) -> bool:
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    delta = choices[0].get("delta")
    return isinstance(delta, dict) and "role" in delta and not choices[0].get("finish_reason")


class KeepBudget(Protocol):
    """Bytes that the streams kept at once may hold, all together
    (``idempotency.StreamBudget``): found 2026-12-05 (review32), each kept its own
    ``max_bytes``, so concurrent keyed SDK streams held that many times over."""

    def take(self, n: int) -> bool: ...

    def give(self, n: int) -> None: ...


class SseRelay:
    """One client stream's bytes from the send stage's events (see the module docstring)."""

    __slots__ = (
        "budget", "commit", "completed", "final", "finalize", "finalized", "held", "ident", "kept",
        "kept_bytes", "on_error", "source", "usage_chunk",
    )  # fmt: skip

    def __init__(
        self,
        source: AsyncGenerator[list[Event], None],
        finalize: Finalize,
        on_error: Callable[[dict[str, Any]], None] | None = None,
        commit: Commit | None = None,
        *,
        usage_chunk: bool = True,
    ) -> None:
        self.source = source
        self.finalize = finalize
        self.on_error = on_error  # sets the error event's "mesh" (its receipt) in place
        self.commit = commit
        self.finalized = False  # the final chunk went through finalize (commit still due)
        self.ident: dict[str, Any] | None = None  # id/created/model of the first chunk
        # the client asked stream_options.include_usage: the final chunk goes out as its
        # own ("choices": []); else its usage and mesh ride on the last chunk with choices
        self.usage_chunk = usage_chunk
        self.final: dict[str, Any] | None = None  # the final chunk, once finalized
        self.held: bytes | None = None  # a chunk that may be the last with choices
        # the stream ended with [DONE] after its final chunk, finalized and committed (paid)
        self.completed = False
        # the bytes sent, kept when asked (:meth:`keep`); None: not kept, or past the budget
        self.kept: list[bytes] | None = None
        self.kept_bytes = 0  # taken from ``budget``, given back when dropped or answered
        self.budget: KeepBudget | None = None

    def keep(self, budget: KeepBudget) -> None:
        """Keep the bytes this stream sends, taken from ``budget`` (shared by all the
        streams kept at once; past it, none): a keyed SDK attempt's, for its retry's replay
        (``registry/idempotency.py``)."""
        self.kept, self.kept_bytes, self.budget = [], 0, budget

    def answer(self) -> bytes | None:
        """The whole stream's bytes, if it was kept and :attr:`completed`; once: what was
        kept goes back to the budget."""
        body = b"".join(self.kept) if self.completed and self.kept is not None else None
        self._drop()
        return body

    def _drop(self) -> None:
        """No longer keep this stream's bytes: they go back to the budget."""
        if self.budget is not None and self.kept_bytes:
            self.budget.give(self.kept_bytes)
        self.kept, self.kept_bytes = None, 0

    def _sent(self, data: bytes) -> bytes:
        """``data``, kept if asked (:meth:`keep`) and the budget has room."""
        if self.kept is not None and self.budget is not None:
            if self.budget.take(len(data)):
                self.kept_bytes += len(data)
                self.kept.append(data)
            else:
                self._drop()  # too large to keep: its retry is refused as before
        return data

    async def events(self) -> AsyncGenerator[bytes, None]:
        try:
            async for batch in self.source:
                out: list[bytes] = []
                for ev in batch:
                    if ev.kind != DATA and self.held is not None:
                        out.append(self.held)
                        self.held = None
                    if ev.kind == DONE:
                        out.append(_DONE_BYTES)
                        # finished: its final chunk finalized and committed (paid), if any
                        self.completed = self.finalized and self.commit is None
                        yield self._sent(b"".join(out))
                        return
                    if ev.kind == FAIL:
                        body = ev.error or {"error": {}}
                        if self.on_error is not None:
                            self.on_error(body)
                        out += (_sse(body), _DONE_BYTES)
                        yield self._sent(b"".join(out))
                        return
                    if ev.obj is None and not ev.continued:  # as the node sent it
                        if self.usage_chunk:
                            out += (ev.raw, _END)
                        else:
                            self._put(out, ev.raw + _END)
                        continue
                    final = self.final
                    data = self._shape(ev)
                    if self.finalized and self.commit is not None:
                        commit, self.commit = self.commit, None
                        await commit()
                    if not data:
                        continue
                    if self.usage_chunk:
                        out.append(data)
                    elif final is None and self.final is not None:  # this is the final chunk
                        out.append(self._merged(data, self.final))
                    else:
                        self._put(out, data)
                if out:
                    yield self._sent(b"".join(out))
        finally:
            if not self.completed:
                self._drop()  # cut off or failed: nothing to replay
            with anyio.CancelScope(shield=True):
                await self.source.aclose()

    def _put(self, out: list[bytes], data: bytes) -> None:
        """Without ``include_usage``: a chunk that may end the answer (a ``finish_reason``
        string) is held back until the next event (the final chunk's fields go on it);
        one held before goes out first, so the order is the node's (an SSE comment, a
        keep-alive, passes it)."""
        if data[:1] == b":":
            out.append(data)
            return
        if self.held is not None:
            out.append(self.held)
            self.held = None
        if _FINISHED.search(data) is None:
            out.append(data)
        else:
            self.held = data

    def _merged(self, data: bytes, final: dict[str, Any]) -> bytes:
        """The final chunk's ``usage`` and ``mesh`` on the held chunk (its last data line
        with choices), which goes out instead of it; with none held, the final chunk."""
        held, self.held = self.held, None
        if held is None:
            return data
        lines = held.decode().split("\n")
        for i in range(len(lines) - 1, -1, -1):
            line = lines[i]
            if not line.startswith("data:") or not line[5:].strip().startswith("{"):
                continue
            obj = strict_json.loads(line[5:].strip())  # (checked by the send stage)
            if not isinstance(obj, dict) or not obj.get("choices"):
                continue
            for key in ("usage", "mesh"):
                if key in final:
                    obj[key] = final[key]
            lines[i] = "data: " + strict_json.dumps(obj).decode()
            return "\n".join(lines).encode()
        return held + data  # pragma: no cover - a held chunk has a finish_reason's choice

    def _shape(self, ev: Event) -> bytes:
        lines = ev.lines
        for i, line in enumerate(lines):
            obj = ev.obj if i == 0 else None
            if obj is None:
                data = line[5:].strip() if line.startswith("data:") else ""
                if not data.startswith("{"):
                    continue
                try:  # (the send stage checked it: it is a JSON object)
                    parsed = strict_json.loads(data)
                except (ValueError, RecursionError):  # pragma: no cover - checked before
                    continue
                if not isinstance(parsed, dict):
                    continue
                obj = parsed
            if self.ident is None:
                self.ident = {k: obj[k] for k in ("id", "created", "model") if k in obj}
            if ev.continued:
                if _role_only(obj) and not chunk_text(obj):
                    return b""
                obj.update(self.ident)
            usage = obj.get("usage")
            if isinstance(usage, dict) and not obj.get("choices"):
                self.finalize(obj, ev.continued)
                self.finalized = True
                self.final = obj
            elif "mesh" in obj:  # a node's mesh elsewhere is never passed on as the gateway's
                del obj["mesh"]
            elif not ev.continued:
                continue
            lines[i] = "data: " + strict_json.dumps(obj).decode()
        return ("\n".join(lines) + "\n\n").encode()


_LATE = {
    "error": {
        "message": f"the stream was not started within {START_S:g} s and was ended",
        "type": "api_error",
        "code": "upstream_error",
        "param": None,
    }
}


class ProxyStream(StreamingResponse):
    """A StreamingResponse that always runs ``on_close`` when it ends, however it ends.

    The bytes are sent from the request's own task; a watcher task waits for the
    client's ``http.disconnect`` and cancels that task (the relay's generator is then
    closed, upstream with it). Starlette's own streaming on ASGI < 2.4 runs an anyio
    task group per response instead, whose set-up and cancellation cost CPU on every
    streamed request (the node's measurements: docs/benchmarks.md).
    """

    def __init__(
        self,
        gen: AsyncGenerator[bytes, None],
        on_close: Callable[[], Awaitable[None]],
        *,
        headers: dict[str, str],
        relay: SseRelay | None = None,
    ) -> None:
        super().__init__(gen, headers=headers, media_type="text/event-stream")
        self.raw_headers.append(NOSNIFF)
        self._gen = gen
        self.relay = relay  # the stream's relay, whose bytes may be kept (keep_answer)
        self._on_close = on_close
        self._ended: list[Callable[[], None]] = []
        self._started = self._expired = self._done = False
        self._expiry: asyncio.Future[None] | None = None
        try:
            self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
                START_S, self._never_started
            )
        except RuntimeError:  # pragma: no cover - made outside a loop (never by the relay)
            self._timer = None

    def _never_started(self) -> None:
        """:data:`START_S` passed and the server never ran this response: end it now."""
        if self._started:  # pragma: no cover - the timer is cancelled when it starts
            return
        self._expired = True
        self._expiry = asyncio.ensure_future(self._end())

    async def _end(self) -> None:
        """Close upstream, run ``on_close``, then the ``when_ended`` callbacks (once)."""
        try:
            with anyio.CancelScope(shield=True):
                await self._gen.aclose()
                await self._on_close()
        finally:
            self._done = True
            ended, self._ended = self._ended, []
            for fn in ended:
                fn()

    def keep_answer(self, budget: KeepBudget) -> None:
        """Keep the bytes this stream sends, within ``budget``: :meth:`kept_answer` once it
        completed (a keyed SDK attempt's stream, replayed to its retry)."""
        if self.relay is not None:
            self.relay.keep(budget)

    def kept_answer(self) -> Response | None:
        """The whole stream as one answer (its status, headers and bytes), when it was
        kept (:meth:`keep_answer`) and completed: its final chunk committed (paid), then
        ``[DONE]``; ``None`` otherwise (cut off, failed, too large, or not kept)."""
        body = None if self.relay is None else self.relay.answer()
        if body is None:
            return None
        answer = Response(body, 200, media_type=self.media_type)
        answer.raw_headers[:0] = [
            (k, v) for k, v in self.raw_headers if k not in (b"content-type", b"content-length")
        ]
        return answer

    def when_ended(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once the stream has ended, however (after ``on_close``): the
        admission stage's holds learn it (a stream's request id is held until then)."""
        if self._done:  # pragma: no cover - told before its end in practice
            fn()
        else:
            self._ended.append(fn)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._expired:  # ended as never run: its hold is ended, its node closed
            late = json_response(_LATE, 502)
            await late(scope, receive, send)
            return
        self._started = True
        task = asyncio.current_task()
        streaming = True
        left = False

        async def watch() -> None:
            nonlocal left
            # after the request body was read the server sends nothing but the disconnect
            # (uvicorn also ends the wait once the response is complete)
            while (await receive())["type"] != "http.disconnect":
                pass
            if streaming and task is not None:
                left = True
                task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await self.stream_response(send)
        except OSError:  # ASGI >= 2.4 servers raise on a client that is gone
            pass
        except asyncio.CancelledError:
            if not left or task is None:
                raise
            task.uncancel()  # the watcher's: the client left; not the server's
        finally:
            streaming = False
            watcher.cancel()
            await self._end()
        if self.background is not None:
            await self.background()


def stream_response(
    job: Job, node_id: str, relay: SseRelay, on_close: Callable[[], Awaitable[None]]
) -> ProxyStream:
    """The client's SSE response over ``relay``."""
    headers = mesh_headers(node_id, job)
    headers["Cache-Control"] = "no-cache"
    return ProxyStream(relay.events(), on_close, headers=headers, relay=relay)
