"""Forwarding one validated request: the :class:`Job`, non-stream answers, bookkeeping.

:func:`complete` gets a node through
:func:`~LLM_Mesh.registry.dispatch.send_with_failover` (connect errors, timeouts,
5xx, 429 and answers that are not JSON fail over to another node; the client
sees one answer) and returns the node's body with the gateway's ``mesh``.
Streams live in :mod:`LLM_Mesh.registry.streaming`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from starlette.responses import Response

from LLM_Mesh.core.balancer import Attempt, Outcome
from LLM_Mesh.core.pricing import request_cost
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.dispatch import send_with_failover
from LLM_Mesh.registry.errors import json_response
from LLM_Mesh.registry.extensions import NONE, Extensions
from LLM_Mesh.registry.node_client import NodeProtocolError, NodeResponse
from LLM_Mesh.registry.ports import RequestRecord
from LLM_Mesh.registry.runtime import Runtime


@dataclass(frozen=True)
class Job:
    """One validated request, ready to forward."""

    path: str  # "/v1/chat/completions" or "/v1/completions"
    model: str
    body: dict[str, Any]  # without the mesh extension fields
    raw: bytes  # what a non-stream forwards: the client's bytes unless extensions were stripped
    stream: bool
    prompt_text: str
    max_tokens: int
    price_per_1k: float
    catalog_context: int | None
    request_id: str
    started: float  # runtime clock when the gateway received it
    deadline: float = float("inf")  # started + request_timeout_s: no new attempt after it
    ext: Extensions = NONE


def forward_headers(job: Job) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Request-Id": job.request_id}


def mesh_headers(node_id: str, job: Job) -> dict[str, str]:
    return {"X-Mesh-Node": node_id, "X-Mesh-Model": job.model, "X-Mesh-Request-Id": job.request_id}


class _NotJson(NodeProtocolError):
    """A node's 200 whose body is not a JSON object: a server error, fail over."""


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
    # a node's numbers are not trusted: a negative count would fail pricing (and leak
    # the attempt) instead of answering
    return (max(0, pt) if isinstance(pt, int) else 0), (max(0, ct) if isinstance(ct, int) else 0)


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


def passthrough(
    rt: Runtime, job: Job, node_id: str, att: Attempt, status: int, content: bytes
) -> Response:
    """A 4xx the node decided (e.g. its exact context check): its body, as is.

    Says nothing about the node's health: the attempt ends ``CANCELLED`` (neutral).
    """
    rt.routing.finish(att, Outcome.CANCELLED)
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
    parsed: dict[int, dict[str, Any]] = {}

    connect_s = rt.settings.connect_timeout_s

    async def send(url: str, left: float) -> NodeResponse:
        resp = await client.post(
            url + job.path, job.raw, headers, timeout_s=left, connect_s=min(left, connect_s)
        )
        if resp.status_code == 200:
            try:
                data = json.loads(resp.content)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise _NotJson("the node's answer is not a JSON object")
            parsed[id(resp)] = data
        return resp

    try:
        sent = await send_with_failover(rt, job, send)
    except MeshError as exc:
        record_failure(rt, job, exc)
        raise
    node, resp, att = sent.node_id, sent.response, sent.attempt
    if resp.status_code != 200:
        return passthrough(rt, job, node, att, resp.status_code, resp.content)
    data = parsed.pop(id(resp))
    latency_ms = (rt.clock() - job.started) * 1000.0
    pt, ct = token_counts(data.get("usage"))
    node_mesh = data.get("mesh")
    ttft_ms = _nonstream_ttft(node_mesh, latency_ms)
    mesh = build_mesh(
        rt, job, node, node_mesh, latency_ms=latency_ms, ttft_ms=ttft_ms,
        prompt_tokens=pt, completion_tokens=ct, attempts=sent.attempts,
    )  # fmt: skip
    if sent.waited_s > 0:
        mesh["waited_ms"] = round(sent.waited_s * 1000.0, 3)
    data["mesh"] = mesh
    rt.routing.finish(att, Outcome.SUCCESS, completion_tokens=ct, ttft_ms=ttft_ms)
    record(
        rt, job, node_id=node, outcome="ok", prompt_tokens=pt, completion_tokens=ct,
        latency_ms=latency_ms, ttft_ms=ttft_ms, cost=mesh["cost"],
    )  # fmt: skip
    return json_response(data, 200, mesh_headers(node, job))


def _nonstream_ttft(node_mesh: Any, latency_ms: float) -> float | None:
    """The node's time to first token plus the gateway's and the network's share."""
    if not isinstance(node_mesh, dict):
        return None
    ttft, node_latency = node_mesh.get("ttft_ms"), node_mesh.get("latency_ms")
    if not isinstance(ttft, (int, float)) or not math.isfinite(ttft):
        return None
    overhead = latency_ms - node_latency if isinstance(node_latency, (int, float)) else 0.0
    if not math.isfinite(overhead):
        overhead = 0.0
    # within [0, end to end]: a negative ttft would make the node look fastest to the router
    return max(0.0, min(latency_ms, float(ttft) + max(0.0, overhead)))
