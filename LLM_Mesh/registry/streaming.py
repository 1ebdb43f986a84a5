"""Relaying a node's SSE stream to the client.

Events pass through as they come (one write per event). The gateway parses an
event only until it has seen the first token (for its time-to-first-token) and
when it carries ``"usage"``: the node's last chunk (``"choices": []``, usage,
``mesh``) gets the gateway's ``mesh`` (latency, ttft, cost). When the client
goes away, :class:`ProxyStream` closes the generator and the upstream response
at once, so the node sees the disconnect and cancels the generation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import anyio
import httpx
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from LLM_Mesh.core.selection import Candidate
from LLM_Mesh.errors import MeshError, UpstreamError
from LLM_Mesh.registry.forwarding import (
    Job,
    build_mesh,
    forward_headers,
    mesh_headers,
    passthrough,
    record,
    record_failure,
    send_with_retries,
    token_counts,
)
from LLM_Mesh.registry.runtime import Runtime

_SEP = (",", ":")


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


def _has_token(obj: dict[str, Any]) -> bool:
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    first = choices[0]
    delta = first.get("delta")
    if isinstance(delta, dict) and delta.get("content"):
        return True
    return bool(first.get("text"))


class Relay:
    """One upstream stream: its events, its outcome, its bookkeeping (done once)."""

    def __init__(self, rt: Runtime, job: Job, node_id: str, resp: httpx.Response, attempts: int):
        self.rt, self.job, self.node_id, self.resp, self.attempts = rt, job, node_id, resp, attempts
        self.ttft_ms: float | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self.outcome: str | None = None
        self.error_code: str | None = None
        self._closed = False

    def _elapsed_ms(self) -> float:
        return (self.rt.clock() - self.job.started) * 1000.0

    async def events(self) -> AsyncGenerator[bytes, None]:
        lines: list[str] = []
        try:
            async for line in self.resp.aiter_lines():
                if line:
                    lines.append(line)
                elif lines:
                    yield self._event(lines)
                    lines = []
            if lines:
                yield self._event(lines)
            self.outcome = "ok"
        except httpx.HTTPError as exc:
            self.outcome, self.error_code = "error", UpstreamError.code
            err = UpstreamError(
                f"node {self.node_id} broke off the stream: {type(exc).__name__}",
                node_id=self.node_id,
            )
            yield b"data: " + json.dumps(err.to_openai(), separators=_SEP).encode() + b"\n\n"
        finally:
            await self.close()

    def _event(self, lines: list[str]) -> bytes:
        if self.ttft_ms is not None and not any('"usage"' in line for line in lines):
            return ("\n".join(lines) + "\n\n").encode()
        for i, line in enumerate(lines):
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if self.ttft_ms is None and _has_token(obj):
                self.ttft_ms = self._elapsed_ms()
            usage = obj.get("usage")
            if isinstance(usage, dict) and not obj.get("choices"):
                obj["mesh"] = self._final_mesh(obj.get("mesh"), usage)
                lines[i] = "data: " + json.dumps(obj, separators=_SEP, ensure_ascii=False)
        return ("\n".join(lines) + "\n\n").encode()

    def _final_mesh(self, node_mesh: Any, usage: dict[str, Any]) -> dict[str, Any]:
        self.prompt_tokens, self.completion_tokens = token_counts(usage)
        mesh = build_mesh(
            self.rt,
            self.job,
            self.node_id,
            node_mesh,
            latency_ms=self._elapsed_ms(),
            ttft_ms=self.ttft_ms,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            attempts=self.attempts,
        )
        self.cost = float(mesh["cost"])
        return mesh

    async def close(self) -> None:
        """Close upstream, settle the node's counters and record the request (once)."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self.resp.aclose()
        outcome = self.outcome or "cancelled"
        latency_ms = self._elapsed_ms()
        table = self.rt.table
        if outcome == "cancelled":
            table.release(self.node_id)
        else:
            ok = outcome == "ok"
            table.end(
                self.node_id,
                ok=ok,
                latency_ms=latency_ms if ok else None,
                ttft_ms=self.ttft_ms,
                tokens=self.completion_tokens,
            )
        record(
            self.rt,
            self.job,
            node_id=self.node_id,
            outcome=outcome,
            error_code=self.error_code,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            latency_ms=latency_ms,
            ttft_ms=self.ttft_ms,
            cost=self.cost,
        )


async def stream(rt: Runtime, job: Job) -> Response:
    """Open the node's stream (retrying before any byte is sent) and relay it."""
    client = rt.http
    options = job.body.get("stream_options")
    body = dict(job.body)
    body["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    payload = json.dumps(body, separators=_SEP, ensure_ascii=False).encode()
    headers = forward_headers(job)

    async def send(c: Candidate) -> httpx.Response:
        request = client.build_request("POST", c.url + job.path, content=payload, headers=headers)
        return await client.send(request, stream=True)

    try:
        cand, resp, attempts = await send_with_retries(rt, job, send)
    except MeshError as exc:
        record_failure(rt, job, exc)
        raise
    if resp.status_code != 200:
        content = await resp.aread()
        await resp.aclose()
        return passthrough(rt, job, cand.node_id, resp.status_code, content)
    relay = Relay(rt, job, cand.node_id, resp, attempts)
    out_headers = mesh_headers(cand.node_id, job)
    out_headers["Cache-Control"] = "no-cache"
    return ProxyStream(relay.events(), relay.close, headers=out_headers)
