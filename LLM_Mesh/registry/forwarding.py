"""Sending one validated request to a node: node choice, retries, non-stream answers.

:func:`send_with_retries` picks the least-loaded healthy node, checks the
context against *that* node's model, sends, and on a connect error, a 429 or a
5xx tries a *different* node, up to ``Runtime.max_attempts`` nodes (nothing has
reached the client yet, so a retry is invisible to it). :func:`complete`
returns a non-streaming answer with the gateway's ``mesh``; streams live in
``LLM_Mesh.registry.streaming``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
from starlette.responses import Response

from LLM_Mesh.core.pricing import request_cost
from LLM_Mesh.core.selection import Candidate, pick_least_loaded
from LLM_Mesh.core.validation import check_context
from LLM_Mesh.errors import (
    MeshError,
    ModelUnavailable,
    Overloaded,
    UpstreamError,
    UpstreamTimeout,
)
from LLM_Mesh.registry.errors import json_response
from LLM_Mesh.registry.ports import RequestRecord
from LLM_Mesh.registry.runtime import Runtime


@dataclass(frozen=True)
class Job:
    """One validated request, ready to forward."""

    path: str  # "/v1/chat/completions" or "/v1/completions"
    model: str
    body: dict[str, Any]
    raw: bytes  # the client's body: forwarded unchanged on non-streams
    stream: bool
    prompt_text: str
    max_tokens: int
    price_per_1k: float
    catalog_context: int | None
    request_id: str
    started: float  # runtime clock when the gateway received it


Sender = Callable[[Candidate], Awaitable[httpx.Response]]


def forward_headers(job: Job) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Request-Id": job.request_id}


def mesh_headers(node_id: str, job: Job) -> dict[str, str]:
    return {"X-Mesh-Node": node_id, "X-Mesh-Model": job.model, "X-Mesh-Request-Id": job.request_id}


def _check_context(rt: Runtime, job: Job, node_id: str) -> None:
    hosted = rt.table.hosted(node_id, job.model)
    ctx = hosted.context_length if hosted is not None and hosted.context_length else None
    ctx = ctx or job.catalog_context
    if ctx:
        check_context(job.prompt_text, job.max_tokens, ctx, job.model)


def _retry_after(resp: httpx.Response) -> int:
    try:
        return max(1, int(float(resp.headers.get("retry-after", "1"))))
    except ValueError:
        return 1


def _error_message(content: bytes) -> str:
    try:
        err = json.loads(content).get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    except (ValueError, AttributeError):
        pass
    return content[:200].decode("utf-8", "replace")


async def send_with_retries(
    rt: Runtime, job: Job, send: Sender
) -> tuple[Candidate, httpx.Response, int]:
    """The first node answer that is not a connect error, 429 or 5xx.

    Returns (node, response, attempts). Raises ``ModelUnavailable`` when no
    healthy node hosts the model, else the last node's error (502/504/429),
    with ``node_id`` in the error body.
    """
    tried: list[str] = []
    last: MeshError | None = None
    for _ in range(rt.max_attempts):
        cand = pick_least_loaded(rt.table.candidates_for(job.model), exclude=tried)
        if cand is None:
            break
        _check_context(rt, job, cand.node_id)
        tried.append(cand.node_id)
        node = cand.node_id
        rt.table.begin(node)
        try:
            resp = await send(cand)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            rt.table.end(node, ok=False)
            last = UpstreamError(
                f"node {node} ({cand.url}) is unreachable: {type(exc).__name__}",
                node_id=node,
                attempts=len(tried),
            )
            continue
        except httpx.TimeoutException as exc:
            rt.table.end(node, ok=False)
            raise UpstreamTimeout(
                f"node {node} ({cand.url}) timed out: {type(exc).__name__}",
                node_id=node,
                attempts=len(tried),
            ) from None
        except httpx.HTTPError as exc:
            rt.table.end(node, ok=False)
            raise UpstreamError(
                f"node {node} ({cand.url}) failed: {type(exc).__name__}: {exc}",
                node_id=node,
                attempts=len(tried),
            ) from None
        status = resp.status_code
        if status != 429 and status < 500:
            return cand, resp, len(tried)
        content = await resp.aread()
        await resp.aclose()
        if status == 429:
            rt.table.release(node)
            last = Overloaded(
                f"node {node} is busy: {_error_message(content)}",
                retry_after=_retry_after(resp),
                node_id=node,
                attempts=len(tried),
            )
        else:
            rt.table.end(node, ok=False)
            last = UpstreamError(
                f"node {node} answered HTTP {status}: {_error_message(content)}",
                node_id=node,
                attempts=len(tried),
            )
    if last is not None:
        raise last
    raise ModelUnavailable(
        f"no healthy node serves {job.model!r} right now",
        model=job.model,
        available=rt.table.models_up(),
        retry_after=rt.retry_after_s,
    )


def record(
    rt: Runtime,
    job: Job,
    *,
    node_id: str | None,
    outcome: str,
    error_code: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    latency_ms: float | None = None,
    ttft_ms: float | None = None,
    cost: float = 0.0,
) -> None:
    """Queue the request's record for the store (no text, no I/O here)."""
    rt.writer.submit(
        RequestRecord(
            request_id=job.request_id,
            node_id=node_id,
            model=job.model,
            stream=job.stream,
            outcome=outcome,
            error_code=error_code,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            cost=cost,
            created_at=datetime.now(timezone.utc),
        )
    )


def record_failure(rt: Runtime, job: Job, exc: MeshError) -> None:
    node = exc.extra.get("node_id")
    record(
        rt,
        job,
        node_id=node if isinstance(node, str) else None,
        outcome="error",
        error_code=exc.code,
        latency_ms=(rt.clock() - job.started) * 1000.0,
    )


def token_counts(usage: Any) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return 0, 0
    pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (pt if isinstance(pt, int) else 0), (ct if isinstance(ct, int) else 0)


def build_mesh(
    rt: Runtime,
    job: Job,
    node_id: str,
    node_mesh: Any,
    *,
    latency_ms: float,
    ttft_ms: float | None,
    prompt_tokens: int,
    completion_tokens: int,
    attempts: int,
) -> dict[str, Any]:
    """The node's ``mesh`` completed with the gateway's view (who, how fast, what cost)."""
    mesh: dict[str, Any] = dict(node_mesh) if isinstance(node_mesh, dict) else {}
    hosted = rt.table.hosted(node_id, job.model)
    mesh["node_id"] = node_id
    mesh.setdefault("model", job.model)
    if hosted is not None:
        mesh.setdefault("engine", hosted.engine)
        mesh["simulated"] = bool(mesh.get("simulated")) or hosted.simulated
    mesh["request_id"] = job.request_id
    mesh["latency_ms"] = round(latency_ms, 3)
    mesh["ttft_ms"] = None if ttft_ms is None else round(ttft_ms, 3)
    mesh["prompt_tokens"] = prompt_tokens
    mesh["completion_tokens"] = completion_tokens
    mesh["cost"] = request_cost(prompt_tokens, completion_tokens, job.price_per_1k)
    mesh["currency"] = "NetworkToken"
    mesh["attempts"] = attempts
    return mesh


def passthrough(rt: Runtime, job: Job, node_id: str, status: int, content: bytes) -> Response:
    """A 4xx the node decided (e.g. its exact context check): its body, as is."""
    rt.table.release(node_id)
    code: str | None = None
    try:
        err = json.loads(content).get("error")
        code = str(err.get("code")) if isinstance(err, dict) and err.get("code") else None
    except (ValueError, AttributeError):
        pass
    record(rt, job, node_id=node_id, outcome="error", error_code=code or f"http_{status}")
    return Response(
        content, status, headers=mesh_headers(node_id, job), media_type="application/json"
    )


async def complete(rt: Runtime, job: Job) -> Response:
    """Forward a non-streaming request; the node's body with the gateway's ``mesh``."""
    client = rt.http
    headers = forward_headers(job)

    async def send(c: Candidate) -> httpx.Response:
        return await client.post(c.url + job.path, content=job.raw, headers=headers)

    try:
        cand, resp, attempts = await send_with_retries(rt, job, send)
    except MeshError as exc:
        record_failure(rt, job, exc)
        raise
    node = cand.node_id
    if resp.status_code != 200:
        return passthrough(rt, job, node, resp.status_code, resp.content)
    try:
        data = json.loads(resp.content)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError:
        rt.table.end(node, ok=False)
        bad = UpstreamError(f"node {node} sent an answer that is not a JSON object", node_id=node)
        record_failure(rt, job, bad)
        raise bad from None
    latency_ms = (rt.clock() - job.started) * 1000.0
    pt, ct = token_counts(data.get("usage"))
    node_mesh = data.get("mesh")
    ttft_ms = _nonstream_ttft(node_mesh, latency_ms)
    mesh = build_mesh(
        rt,
        job,
        node,
        node_mesh,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        prompt_tokens=pt,
        completion_tokens=ct,
        attempts=attempts,
    )
    data["mesh"] = mesh
    rt.table.end(node, ok=True, latency_ms=latency_ms, ttft_ms=ttft_ms, tokens=ct)
    record(
        rt,
        job,
        node_id=node,
        outcome="ok",
        prompt_tokens=pt,
        completion_tokens=ct,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        cost=mesh["cost"],
    )
    return json_response(data, 200, mesh_headers(node, job))


def _nonstream_ttft(node_mesh: Any, latency_ms: float) -> float | None:
    """The node's time to first token plus the gateway's and the network's share."""
    if not isinstance(node_mesh, dict):
        return None
    ttft, node_latency = node_mesh.get("ttft_ms"), node_mesh.get("latency_ms")
    if not isinstance(ttft, (int, float)):
        return None
    overhead = latency_ms - node_latency if isinstance(node_latency, (int, float)) else 0.0
    return min(latency_ms, float(ttft) + max(0.0, overhead))
