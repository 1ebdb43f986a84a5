"""Getting one request onto a node: choice, bounded wait, failover, retry budget.

:func:`send_with_failover` asks :class:`~LLM_Mesh.registry.routing.Routing` for
a node, sends, and classifies what came back into a router
:class:`~LLM_Mesh.core.balancer.Outcome`:

    connect error / connect timeout   CONNECT_ERROR   try another node at once
    read timeout before an answer     TIMEOUT         another node, after a jittered backoff
    other transport error, 5xx        SERVER_ERROR    another node, after a jittered backoff
    429                               OVERLOADED      another node at once
    anything else                     (returned: 2xx, or a 4xx the caller passes through)

Every attempt after the first needs a *different* node and time left before
the request's deadline (``request_timeout_s`` from arrival). After a node that
did nothing with the request (connection refused, 429) the next node is tried
at once, up to ``max_failovers`` (10) more, each needing a token of the
failover budget (100 % of requests + 50/s). After a node that may have worked
on it (timeout, 5xx, broken answer) a retry needs a free attempt
(``max_attempts`` in all, 3, counting only such attempts) and a token from the
:class:`~LLM_Mesh.core.retry.RetryBudget` (20 % of requests + 10/s), so a sick
network cannot multiply its own load. Nothing reached the client yet, so a
failover costs it only time. The fleet simulator's gateway
(``LLM_Mesh/simulator/gateway.py``) applies the same policy.

No node at all for the first attempt: 503 ``model_unavailable`` (none up) or
429 ``overloaded`` (all saturated, ``Retry-After`` = the router's estimated
wait), unless the caller opted into a bounded wait (``mesh_wait_s`` /
``X-Mesh-Wait``), which polls the router on every change until a node frees or
the wait ends.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from LLM_Mesh.core.balancer import Attempt, Decision, Outcome, Verdict
from LLM_Mesh.core.retry import Backoff
from LLM_Mesh.core.scoring import RouteRequest
from LLM_Mesh.core.validation import check_context
from LLM_Mesh.errors import MeshError, ModelUnavailable, Overloaded, UpstreamError, UpstreamTimeout
from LLM_Mesh.registry.demand import NO_NODE, SATURATED
from LLM_Mesh.registry.node_client import (
    NodeConnectError,
    NodeResponse,
    NodeTimeout,
    NodeTransportError,
)
from LLM_Mesh.registry.runtime import Runtime

if TYPE_CHECKING:
    from LLM_Mesh.registry.forwarding import Job

__all__ = ["Sender", "Sent", "send_with_failover"]

BACKOFF = Backoff(base_s=0.02, max_s=0.5, multiplier=2.0, max_attempts=8)

# (url, seconds left before the deadline) -> the node's response
Sender = Callable[[str, float], Awaitable[NodeResponse]]


class Sent:
    """A node's answer that is not a failover reason, with its router attempt (still open)."""

    __slots__ = ("attempt", "attempts", "node_id", "response", "waited_s")

    def __init__(
        self,
        node_id: str,
        response: NodeResponse,
        attempt: Attempt,
        attempts: int,
        waited_s: float,
    ) -> None:
        self.node_id = node_id
        self.response = response
        self.attempt = attempt
        self.attempts = attempts
        self.waited_s = waited_s


def route_request(job: Job, tried: frozenset[str]) -> RouteRequest:
    ext = job.ext
    return RouteRequest(
        (job.model,),
        expected_tokens=job.max_tokens or None,
        avoid_regions=ext.avoid_regions,
        allow_nodes=ext.allow_nodes,
        deny_nodes=ext.deny_nodes,
        exclude=tried,
    )


def _retry_after(resp: NodeResponse) -> int:
    try:
        return max(1, int(float(resp.headers.get("retry-after", "1"))))
    except ValueError:
        return 1


def error_message(content: bytes) -> str:
    """The ``error.message`` of an OpenAI error body, else its first bytes."""
    try:
        err = json.loads(content).get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    except (ValueError, AttributeError):
        pass
    return content[:200].decode("utf-8", "replace")


def _check_context(rt: Runtime, job: Job, node_id: str) -> None:
    hosted = rt.table.hosted(node_id, job.model)
    ctx = hosted.context_length if hosted is not None and hosted.context_length else None
    ctx = ctx or job.catalog_context
    if ctx:
        check_context(job.prompt_text, job.max_tokens, ctx, job.model)


def _no_node(rt: Runtime, job: Job, d: Decision) -> MeshError:
    if d.verdict is Verdict.SATURATED:
        wait = d.wait_s or 1.0
        return Overloaded(
            f"every node serving {job.model!r} is saturated; estimated wait {wait:.2f} s "
            f"(send X-Mesh-Wait or mesh_wait_s to wait for a slot)",
            retry_after=max(1, math.ceil(wait)),
            reason="saturated",
            wait_s=round(wait, 3),
            model=job.model,
        )
    constrained = job.ext.present
    return ModelUnavailable(
        f"no healthy node serves {job.model!r} right now"
        + (" within the request's constraints" if constrained else ""),
        model=job.model,
        available=rt.table.models_up(),
        retry_after=rt.retry_after_s,
        reason="no_node",
    )


async def choose(rt: Runtime, job: Job, tried: frozenset[str], first: bool) -> Decision:
    """A node for the next attempt; for the first, 503/429 or the opt-in bounded wait."""
    routing = rt.routing
    req = route_request(job, tried)
    d = routing.pick(req)
    if d.verdict is Verdict.OK or not first:
        return d
    until = min(job.started + job.ext.wait_s, job.deadline)
    loop = asyncio.get_running_loop()
    hard_stop = loop.time() + job.ext.wait_s  # bounded even if the runtime clock stands still
    routing.demand.wait_begin(job.model)
    try:
        while True:
            left = until - rt.clock()
            if left <= 0 or loop.time() >= hard_stop:
                raise _no_node(rt, job, d)
            hint = d.wait_s if d.wait_s is not None else 0.25
            await routing.wait_change(min(left, max(0.005, hint)))
            d = routing.pick(req)
            if d.verdict is Verdict.OK:
                return d
    finally:
        routing.demand.wait_end(job.model)


def _failure(exc: NodeTransportError) -> Outcome:
    if isinstance(exc, NodeConnectError):
        return Outcome.CONNECT_ERROR
    if isinstance(exc, NodeTimeout):
        return Outcome.TIMEOUT
    return Outcome.SERVER_ERROR


async def send_with_failover(
    rt: Runtime,
    job: Job,
    send: Sender,
    *,
    tried: set[str] | None = None,
    attempts: int = 0,
) -> Sent:
    """The first answer that is not a failover reason (see the module docstring).

    ``tried``/``attempts`` carry over from earlier attempts of the same request
    (mid-stream continuation). Raises the last node's error (502/504/429, naming
    ``node_id`` and ``attempts``) when attempts, time or the retry budget run out.
    A request's first call answered 503 no-node or 429 counts as refused demand.
    """
    try:
        return await _send(rt, job, send, tried, attempts)
    except (ModelUnavailable, Overloaded) as exc:
        if attempts == 0:
            reason = NO_NODE if isinstance(exc, ModelUnavailable) else SATURATED
            rt.routing.demand.refuse(job.model, reason)
        raise


async def _send(rt: Runtime, job: Job, send: Sender, tried: set[str] | None, attempts: int) -> Sent:
    routing = rt.routing
    tried = set() if tried is None else tried
    first_call = attempts == 0
    if first_call:
        routing.retry_budget.record_request(rt.clock())
        routing.failover_budget.record_request(rt.clock())
    last: MeshError | None = None
    last_free = False  # did the last node do nothing with the request (refused, 429)?
    free = 0  # failovers after such nodes; ``attempts - free`` may have done work
    backoff_n = 0
    waited = 0.0
    while True:
        if attempts and last_free:
            if free >= rt.max_failovers:
                break
            if not routing.failover_budget.try_retry(rt.clock()):
                if last is not None:
                    last.extra["retry_budget_exhausted"] = True
                break
            free += 1
        elif attempts:
            if attempts - free >= rt.max_attempts:
                break
            if not routing.retry_budget.try_retry(rt.clock()):
                if last is not None:
                    last.extra["retry_budget_exhausted"] = True
                break
        t0 = rt.clock()
        d = await choose(rt, job, frozenset(tried), first_call and not tried)
        if first_call and not tried:
            waited = rt.clock() - t0
        if d.node_id is None:
            break
        node = d.node_id
        entry = rt.table.get(node)
        if entry is None:  # pragma: no cover - removed between pick and send
            tried.add(node)
            continue
        _check_context(rt, job, node)
        left = job.deadline - rt.clock()
        if left <= 0:
            break
        tried.add(node)
        attempts += 1
        att = routing.begin(node, job.model)
        try:
            try:
                # the whole exchange, not only each read: a node trickling bytes must not
                # carry the request past its deadline
                with anyio.fail_after(left):
                    resp = await send(entry.url, left)
                    status = resp.status_code
                    if status == 429 or status >= 500:  # a body cut off is a failure too
                        content = await resp.aread()
                        await resp.aclose()
            except TimeoutError:
                raise NodeTimeout("the request's deadline passed", "DeadlineExceeded") from None
        except NodeTransportError as exc:
            outcome = _failure(exc)
            routing.finish(att, outcome)
            last_free = outcome is Outcome.CONNECT_ERROR
            kind = exc.kind
            if outcome is Outcome.TIMEOUT:
                last = UpstreamTimeout(
                    f"node {node} ({entry.url}) timed out: {kind}", node_id=node, attempts=attempts
                )
            elif outcome is Outcome.CONNECT_ERROR:
                last = UpstreamError(
                    f"node {node} ({entry.url}) is unreachable: {kind}",
                    node_id=node,
                    attempts=attempts,
                )
                continue
            else:
                detail = str(exc) if str(exc) != kind else ""
                last = UpstreamError(
                    f"node {node} ({entry.url}) failed: {kind}: {detail}".rstrip(": "),
                    node_id=node,
                    attempts=attempts,
                )
        except BaseException:
            routing.finish(att, Outcome.CANCELLED)
            raise
        else:
            if status != 429 and status < 500:
                return Sent(node, resp, att, attempts, waited)
            last_free = status == 429
            if status == 429:
                routing.finish(att, Outcome.OVERLOADED)
                last = Overloaded(
                    f"node {node} is busy: {error_message(content)}",
                    retry_after=_retry_after(resp),
                    node_id=node,
                    attempts=attempts,
                )
                continue
            routing.finish(att, Outcome.SERVER_ERROR)
            last = UpstreamError(
                f"node {node} answered HTTP {status}: {error_message(content)}",
                node_id=node,
                attempts=attempts,
            )
        backoff_n += 1
        delay = BACKOFF.delay(min(backoff_n, BACKOFF.max_attempts), random.random())
        await asyncio.sleep(min(delay, max(0.0, job.deadline - rt.clock())))
    if last is not None:
        raise last
    raise _no_node(rt, job, routing.pick(route_request(job, frozenset(tried))))
