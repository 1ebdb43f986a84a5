"""Relaying a node's SSE stream to the client, failing over mid-stream.

Events pass through as they come (one write per event). The gateway parses an
event only until it has seen the first token (for its time-to-first-token) and
when it carries ``"usage"``: the node's last chunk (``"choices": []``, usage,
``mesh``) gets the gateway's ``mesh`` (latency, ttft, cost). The raw ``data:``
lines are kept (a list append) so a failover can rebuild the text so far.

If the node breaks the stream (transport error, its ``data: {"error"...}``
event, or an end without ``[DONE]``), :class:`Relay` asks another node to
continue (:mod:`LLM_Mesh.registry.continuation`) and relays its chunks
rewritten to the first node's ``id``/``created``/``model``: the client sees one
stream. Where nobody can continue (chat without a node that advertises
``continuation``, no node left, attempts or retry budget spent) the stream
ends with ``data: {"error": {...}}`` and ``data: [DONE]``, never a silent cut.

When the client goes away, :class:`ProxyStream` closes the generator and the
upstream response at once, so the node sees the disconnect and cancels.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import anyio
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.errors import MeshError, UpstreamError
from LLM_Mesh.registry.continuation import (
    CHAT_PATH,
    chunk_text,
    continuation_body,
    generated,
    remaining_tokens,
)
from LLM_Mesh.registry.dispatch import Sent, send_with_failover
from LLM_Mesh.registry.forwarding import (
    Job,
    build_mesh,
    forward_headers,
    mesh_headers,
    passthrough,
    record,
    record_failure,
    token_counts,
)
from LLM_Mesh.registry.node_client import NodeResponse, NodeTimeout, NodeTransportError
from LLM_Mesh.registry.runtime import Runtime

_SEP = (",", ":")
CONTINUE_WINDOW_S = 30.0  # time a mid-stream failover may take to find a node


class ProxyStream(StreamingResponse):
    """A StreamingResponse that always runs ``on_close`` when it ends, however it ends."""

    def __init__(
        self,
        gen: AsyncGenerator[bytes, None],
        on_close: Callable[[], Awaitable[None]],
        *,
        headers: dict[str, str],
    ) -> None:
        super().__init__(gen, headers=headers, media_type="text/event-stream")
        self._gen = gen
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._gen.aclose()
                await self._on_close()


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=_SEP, ensure_ascii=False).encode() + b"\n\n"


def _payload(job: Job, body: dict[str, Any]) -> bytes:
    options = body.get("stream_options")
    out = dict(body)
    out["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    return json.dumps(out, separators=_SEP, ensure_ascii=False).encode()


class _Broken(Exception):
    """The node broke off its stream (reason in the message)."""


class Relay:
    """One client stream over one or more node streams: events, outcome, bookkeeping."""

    def __init__(self, rt: Runtime, job: Job, sent: Sent, tried: set[str]) -> None:
        self.rt, self.job, self.tried = rt, job, tried
        self.node_id, self.resp, self.att = sent.node_id, sent.response, sent.attempt
        self.attempts = sent.attempts
        self.ttft_ms: float | None = None
        self.node_first = False  # the current node has sent a token
        self.ident: dict[str, Any] | None = None  # id/created/model of the first chunk
        self.data: list[str] = []  # raw data lines relayed (the text so far, lazily)
        self.rewrite = False  # after a failover: chunks are rewritten to ``ident``
        self.before = 0  # tokens sent by earlier nodes
        self.failed_nodes: list[str] = []
        self.prompt_tokens = self.completion_tokens = 0
        self.cost = 0.0
        self.outcome: str | None = None
        self.error_code: str | None = None
        self._closed = False

    def _elapsed_ms(self) -> float:
        return (self.rt.clock() - self.job.started) * 1000.0

    async def events(self) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                try:
                    async for ev in self._relay_one():
                        yield ev
                    self.outcome = "ok"
                    self.rt.routing.finish(
                        self.att, Outcome.SUCCESS, completion_tokens=self.completion_tokens
                    )
                    return
                except (NodeTransportError, _Broken) as exc:
                    timeout = isinstance(exc, NodeTimeout)
                    bad = Outcome.TIMEOUT if timeout else Outcome.SERVER_ERROR
                    self.rt.routing.finish(self.att, bad)
                    reason = exc.kind if isinstance(exc, NodeTransportError) else str(exc)
                    with anyio.CancelScope(shield=True):
                        await self.resp.aclose()
                    try:
                        tail = await self._continue(reason)
                    except Exception as cexc:  # never a silent cut: end with an error event
                        tail = self._fail(f"{reason}; failover failed: {cexc!r}", None)
                    if tail is not None:
                        for ev in tail:
                            yield ev
                        return
        finally:
            await self.close()

    async def _relay_one(self) -> AsyncGenerator[bytes, None]:
        lines: list[str] = []
        done = False
        async for line in self.resp.aiter_lines():
            if line:
                lines.append(line)
                continue
            if not lines:
                continue
            ev, done = self._event(lines)
            lines = []
            if ev:
                yield ev
        if lines:
            ev, done = self._event(lines)
            if ev:
                yield ev
        if not done:
            raise _Broken(f"node {self.node_id} ended its stream without [DONE]")

    def _event(self, lines: list[str]) -> tuple[bytes, bool]:
        """The bytes to send for one event, and whether it ends the stream."""
        first = lines[0]
        if first.startswith("data:"):
            if first.startswith('data: {"error"') or first.startswith('data:{"error"'):
                raise _Broken(f"node {self.node_id} reported an error mid-stream: {first[5:300]}")
            if first == "data: [DONE]":
                return b"data: [DONE]\n\n", True
            self.data.append(first)
        if self.node_first and not self.rewrite and not any('"usage"' in ln for ln in lines):
            return ("\n".join(lines) + "\n\n").encode(), False
        for i, line in enumerate(lines):
            data = line[5:].strip() if line.startswith("data:") else ""
            if not data.startswith("{"):
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if self.ident is None:
                self.ident = {k: obj[k] for k in ("id", "created", "model") if k in obj}
            has_text = bool(chunk_text(obj))
            if has_text and not self.node_first:
                self.node_first = True
                self.rt.routing.first_token(self.att)
                if self.ttft_ms is None:
                    self.ttft_ms = self._elapsed_ms()
            if self.rewrite:
                if not has_text and _role_only(obj):
                    return b"", False
                obj.update(self.ident)
            usage = obj.get("usage")
            if isinstance(usage, dict) and not obj.get("choices"):
                obj["mesh"] = self._final_mesh(obj.get("mesh"), usage)
                if self.rewrite:
                    obj["usage"] = {
                        "prompt_tokens": self.prompt_tokens,
                        "completion_tokens": self.completion_tokens + self.before,
                        "total_tokens": self.prompt_tokens + self.completion_tokens + self.before,
                    }
            elif not self.rewrite:
                continue
            lines[i] = "data: " + json.dumps(obj, separators=_SEP, ensure_ascii=False)
        return ("\n".join(lines) + "\n\n").encode(), False

    def _final_mesh(self, node_mesh: Any, usage: dict[str, Any]) -> dict[str, Any]:
        pt, ct = token_counts(usage)
        if self.rewrite and self.job.path != CHAT_PATH:
            pt = max(0, pt - self.before)  # the continuation's prompt held the text so far
        self.prompt_tokens, self.completion_tokens = pt, ct
        mesh = build_mesh(
            self.rt, self.job, self.node_id, node_mesh, latency_ms=self._elapsed_ms(),
            ttft_ms=self.ttft_ms, prompt_tokens=pt, completion_tokens=ct + self.before,
            attempts=self.attempts,
        )  # fmt: skip
        if self.failed_nodes:
            mesh["failover_from"] = list(self.failed_nodes)
            mesh["continued"] = True
        self.cost = float(mesh["cost"])
        return mesh

    async def _continue(self, reason: str) -> list[bytes] | None:
        """Switch to another node; ``None`` on success, else the events that end the stream."""
        rt, job = self.rt, self.job
        self.failed_nodes.append(self.node_id)
        text, sent = generated(self.data)
        left = remaining_tokens(job.body, sent)
        if text and left is not None and left <= 0:  # the answer was complete but for [DONE]
            self.outcome = "ok"
            return [b"data: [DONE]\n\n"]
        ext = job.ext
        if text and job.path == CHAT_PATH:
            able = frozenset(
                n for n in self._hosts() if rt.table.supports_continuation(n, job.model)
            )
            allow = able if ext.allow_nodes is None else able & ext.allow_nodes
            if not allow - self.tried:
                return self._fail(
                    f"{reason}; no other node hosting {job.model!r} can continue a chat "
                    "(none advertises 'continuation')",
                    "continuation_unsupported",
                )
            ext = dataclasses.replace(ext, allow_nodes=allow)
        body = continuation_body(job.path, job.body, job.prompt_text, text, sent)
        payload = _payload(job, body)
        cjob = dataclasses.replace(
            job,
            ext=ext,
            deadline=rt.clock() + min(CONTINUE_WINDOW_S, rt.settings.request_timeout_s),
        )
        client, headers = rt.http, forward_headers(job)

        timeout_s, connect_s = rt.settings.request_timeout_s, rt.settings.connect_timeout_s

        async def send(url: str, left_s: float) -> NodeResponse:
            return await _opened(client.stream(
                url + job.path, payload, headers, timeout_s=timeout_s,
                connect_s=min(left_s, connect_s),
            ))  # fmt: skip

        try:
            nxt = await send_with_failover(rt, cjob, send, tried=self.tried, attempts=self.attempts)
        except MeshError as exc:
            return self._fail(f"{reason}; failover found no node: {exc.message}", exc.code)
        self.attempts = nxt.attempts
        if nxt.response.status_code != 200:
            content = await nxt.response.aread()
            await nxt.response.aclose()
            rt.routing.finish(nxt.attempt, Outcome.CANCELLED)
            return self._fail(f"{reason}; node {nxt.node_id} refused to continue: "
                              f"HTTP {nxt.response.status_code} {content[:200]!r}", "upstream_error")  # fmt: skip
        self.node_id, self.resp, self.att = nxt.node_id, nxt.response, nxt.attempt
        self.before, self.node_first, self.rewrite = sent, False, True
        return None

    def _hosts(self) -> list[str]:
        return [e.node_id for e in self.rt.table.healthy_entries_for(self.job.model)]

    def _fail(self, message: str, code: str | None) -> list[bytes]:
        self.outcome, self.error_code = "error", code or UpstreamError.code
        err = UpstreamError(message, node_id=self.node_id, attempts=self.attempts)
        body = err.to_openai()
        body["error"]["code"] = self.error_code
        return [_sse(body), b"data: [DONE]\n\n"]

    async def close(self) -> None:
        """Close upstream, settle the router's attempt and record the request (once)."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self.resp.aclose()
        outcome = self.outcome or "cancelled"
        if outcome == "cancelled":
            self.rt.routing.finish(self.att, Outcome.CANCELLED)
        record(
            self.rt, self.job, node_id=self.node_id, outcome=outcome, error_code=self.error_code,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens + self.before,
            latency_ms=self._elapsed_ms(), ttft_ms=self.ttft_ms, cost=self.cost,
        )  # fmt: skip


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


def _role_only(obj: dict[str, Any]) -> bool:
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    delta = choices[0].get("delta")
    return isinstance(delta, dict) and "role" in delta and not choices[0].get("finish_reason")


async def stream(rt: Runtime, job: Job) -> Response:
    """Open the node's stream (failing over before any byte is sent) and relay it."""
    client = rt.http
    payload = _payload(job, job.body)
    headers = forward_headers(job)
    timeout = rt.settings.request_timeout_s

    async def send(url: str, left: float) -> NodeResponse:
        return await _opened(client.stream(
            url + job.path, payload, headers, timeout_s=timeout,
            connect_s=min(left, rt.settings.connect_timeout_s),
        ))  # fmt: skip

    tried: set[str] = set()
    try:
        sent = await send_with_failover(rt, job, send, tried=tried)
    except MeshError as exc:
        record_failure(rt, job, exc)
        raise
    if sent.response.status_code != 200:
        content = await sent.response.aread()
        await sent.response.aclose()
        return passthrough(rt, job, sent.node_id, sent.attempt, sent.response.status_code, content)
    relay = Relay(rt, job, sent, tried)
    out_headers = mesh_headers(sent.node_id, job)
    out_headers["Cache-Control"] = "no-cache"
    return ProxyStream(relay.events(), relay.close, headers=out_headers)
