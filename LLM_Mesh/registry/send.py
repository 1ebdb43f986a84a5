"""Stage 3, route and send with failover: every attempt of a request, opened and finished here.

An :class:`Exchange` is one request's traffic with nodes. It is the only owner of
router attempts: each one runs from ``routing.begin`` to ``routing.finish`` in this
module's code, mid-stream continuations included. The node side of a stream
(:mod:`~LLM_Mesh.registry.send_stream`) reports what it reads through the exchange
(:meth:`Exchange.first_token`, :meth:`Exchange.finish`, :meth:`Exchange.broke`,
:meth:`Exchange.resume`); the relay and the account stage never touch an attempt.

The decisions come from the pure failover policy,
:class:`~LLM_Mesh.core.failover.Failover` (the same code the fleet simulator runs).
Here they are fed with what came back, classified into router outcomes (a status by
:func:`~LLM_Mesh.core.failover.status_outcome`)::

    connect error / connect timeout   CONNECT_ERROR   refused: another node at once
    429                               OVERLOADED      refused: another node at once
    503 (paused, draining, no memory) UNAVAILABLE     refused: another node at once
    401 (refused the gateway's key)   UNAVAILABLE     refused: another node at once
    read timeout before an answer     TIMEOUT         failed: another node after a backoff
    other transport error, other 5xx, SERVER_ERROR    failed: another node after a backoff
      a 200 that is no JSON answer (or
      past the request's bound:
      node_answer.py),
      any status but 200 that is no
      4xx (1xx, 204, 299, 3xx, 600+)
    other 4xx (400, 404, 413, 422...) REJECTED        the node's own refusal: a second
                                                      opinion (below)
    200                               SUCCESS         the answer

A refusal is no health failure: no outlier ejection, no retry-budget token (the
failover budget's instead). What a node's answer says of its uptime (a 401, a 429/503, an
answer) goes to the node table (``NodeTable.refused_gateway``, ``refused_request``,
``answered``). A node's own refusal (a 4xx) is held for its one second opinion, and its
node blamed if another node takes the request, by
:mod:`~LLM_Mesh.registry.second_opinion`.

Every attempt goes to a *different* node, none starts at or after the request's deadline
(``request_timeout_s`` from arrival), and a non-streaming exchange is cut at that deadline
even if the node trickles bytes (504).

When every node refused, the client gets the last refusal's kind (429
``overloaded`` or 503 ``model_unavailable``) with ``Retry-After`` = the soonest any
refusing node asked for (the first moment a node may take the request). No node at
all for the first attempt: 503 ``model_unavailable`` (none up) or 429 ``overloaded``
(all saturated, ``Retry-After`` = the router's estimated wait), unless the client opted
into a bounded wait (``mesh_wait_s`` / ``X-Mesh-Wait``), which looks again at every
change of routing, else at the router's estimate but no sooner than
:data:`~LLM_Mesh.core.slot_wait.RECHECK_S`, until a node frees or the wait ends; at most
:data:`~LLM_Mesh.core.slot_wait.MAX_SEND_WAITERS` wait at once in a process, shared among
API keys by push-out (``slot_wait.place_for``: with every place taken, a key's request
takes the newest place of the key holding two more than it; one with none to take, and the
waiter pushed out, are answered as without a wait). Either refusal counts as refused
demand (:mod:`~LLM_Mesh.registry.demand`). Nodes that may keep prompts are held out of
every attempt unless the request or its key opts in (``core/prompt_keeping.py``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from LLM_Mesh.core.anonymous_share import ASKS_THE_SHARE
from LLM_Mesh.core.answer_text import answer_text, output_sha256
from LLM_Mesh.core.client_retry import deadline_message
from LLM_Mesh.core.delivered import (
    answer_bytes,
    completion_cap,
    counted_completion,
    priced_completion,
    states_completion,
)
from LLM_Mesh.core.failover import Action, Failover, Step, Stop, status_outcome
from LLM_Mesh.core.identity import sha256_hex
from LLM_Mesh.core.node_refusal import node_message
from LLM_Mesh.core.priority import keyed_raw
from LLM_Mesh.core.receipt_check import Observed
from LLM_Mesh.core.route_types import Attempt, Decision, Outcome, Verdict
from LLM_Mesh.core.scoring import RouteRequest
from LLM_Mesh.core.slot_wait import Next, SlotWait
from LLM_Mesh.core.validation import check_context, context_source
from LLM_Mesh.errors import (
    ContextLengthExceeded,
    MeshError,
    ModelUnavailable,
    Overloaded,
    UpstreamError,
    UpstreamTimeout,
)
from LLM_Mesh.registry.demand import NO_NODE, SATURATED
from LLM_Mesh.registry.extensions import Extensions
from LLM_Mesh.registry.job import Job, Tally, usage_counts
from LLM_Mesh.registry.no_node import constraints_said, no_node
from LLM_Mesh.registry.node_answer import bound_for, nonstream_ttft, read_answer
from LLM_Mesh.registry.node_client import (
    DEADLINE_PASSED,
    NodeConnectError,
    NodeResponse,
    NodeTimeout,
    NodeTransportError,
    within,
)
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.second_opinion import Rejection, hold, overruled

__all__ = ["MAX_NODE_RETRY_AFTER_S", "Answer", "Exchange", "Sender", "error_message",
           "forward_headers"]  # fmt: skip

CONTINUE_WINDOW_S = 30.0  # time a mid-stream failover may take to find a node

# (node id, url, seconds left before the deadline) -> the node's response
Sender = Callable[[str, str, float], Awaitable[NodeResponse]]


class Answer:
    """A node's answer that ends the send stage: 200 (``data`` parsed for a non-stream)
    or a node's own 4xx refusal the relay passes on (``content``)."""

    __slots__ = ("content", "data", "node_id", "status")

    def __init__(
        self, node_id: str, status: int, content: bytes, data: dict[str, Any] | None
    ) -> None:
        self.node_id = node_id
        self.status = status
        self.content = content
        self.data = data


_READ_LATER = (Outcome.SUCCESS, Outcome.REJECTED)  # bodies the caller reads (answer, refusal)


def forward_headers(rt: Runtime, job: Job, node_id: str, body_sha256: str) -> dict[str, str]:
    """A forwarded request's headers: JSON, ``X-Request-Id`` (the job's gateway-made
    ``forwarded_id``, never the client's own id) and the gateway's signature of
    this body (given by its SHA-256, hex) for ``node_id`` (``core/gateway_auth.py``)."""
    headers = rt.signer.headers(node_id, job.forwarded_id, job.path, body_sha256)
    headers["Content-Type"] = "application/json"
    return headers


def error_message(content: bytes) -> str:
    """The ``error.message`` of a node's OpenAI error body when it may be shown (a short
    printable string, ``core/node_refusal.py``), else a note that it had none: a node's
    body (HTML, control characters, megabytes) never becomes part of the gateway's message."""
    return node_message(content) or "(no usable error message)"


async def _exchange(
    sender: Sender, node: str, url: str, left: float
) -> tuple[NodeResponse, int, bytes]:
    """One call to a node: its response, status, and the body of a refusal or failure
    (read here: a body cut off is a failure too); a node's own refusal (a 4xx) and its
    answer are read by the caller."""
    resp = await sender(node, url, left)
    status = resp.status_code
    content = b""
    if status_outcome(status) not in _READ_LATER:
        content = await resp.aread()
        await resp.aclose()
    return resp, status, content


# the longest a node's own Retry-After counts: what the client is told and how long the
# router holds the node out (a node's "inf" was a 500; 10^18 s told clients to go away)
MAX_NODE_RETRY_AFTER_S = 3600


def _retry_after(resp: NodeResponse) -> int:
    try:
        wait = float(resp.headers.get("retry-after", "1"))
    except ValueError:
        return 1
    if wait != wait:  # NaN
        return 1
    return int(min(max(1.0, wait), MAX_NODE_RETRY_AFTER_S))


def _failure(exc: NodeTransportError) -> Outcome:
    if isinstance(exc, NodeConnectError):
        return Outcome.CONNECT_ERROR
    if isinstance(exc, NodeTimeout):
        return Outcome.TIMEOUT
    return Outcome.SERVER_ERROR


@lru_cache(maxsize=1024)
def _plain_route(model: str, tokens: int | None, keyed: bool, keepers: bool) -> RouteRequest:
    """``RouteRequest((model,), expected_tokens=..., keyed=..., keepers=...)``,
    unconstrained (immutable: shared)."""
    return RouteRequest((model,), expected_tokens=tokens, keyed=keyed, keepers=keepers)


class Exchange:
    """One request's attempts on nodes (see the module docstring)."""

    __slots__ = (
        "att",
        "deadline",
        "ext",
        "failover",
        "job",
        "keyed",
        "node_wait",
        "rejection",
        "retry_after",
        "routing",
        "rt",
        "tally",
        "tried",
    )

    def __init__(self, rt: Runtime, job: Job, keyed: bool = False) -> None:
        self.rt = rt
        self.job = job
        # nodes serve it before ordinary requests (core/priority.py): in its signed body
        self.keyed = keyed
        self.routing = rt.routing
        self.tally = Tally()
        self.tried: set[str] = set()
        self.failover: Failover | None = None
        self.att: Attempt | None = None  # the attempt whose answer is still open (a stream's)
        self.ext: Extensions = job.ext  # a chat continuation narrows allow_nodes
        self.deadline = job.deadline  # a continuation has its own window
        self.retry_after: int | None = None  # the soonest Retry-After a refusing node gave
        self.node_wait: float | None = None  # the last attempt's node's own Retry-After
        # the first node refusal awaiting its second opinion (registry/second_opinion.py)
        self.rejection: Rejection | None = None

    # -- the failover loop --------------------------------------------------------------
    async def send(self, sender: Sender, *, bounded: bool = False) -> tuple[str, NodeResponse]:
        """The first node answer that is not a failover reason; its attempt stays open
        (``self.att``). Or the first node refusal (a 4xx) when its second opinion gave no
        answer (its attempt ended: ``self.att`` is ``None``). Raises the last node's error
        (502/504/429/503, naming ``node_id`` and ``attempts``) when the policy stops; a
        first call's 503 no-node or 429 counts as refused demand. ``bounded``: the sender
        keeps each call within the seconds it is given itself (``NodeClient.post_by``,
        a :class:`NodeTimeout` of ``DEADLINE_PASSED``), else each call is cut here."""
        rt, job, routing = self.rt, self.job, self.routing
        fo = self.failover
        first = fo is None
        if fo is None:
            fo = self.failover = Failover(
                rt.failover_policy, routing.retry_budget, routing.failover_budget,
                rt.clock(), deadline=self.deadline, trace=rt.observer is not None,
            )  # fmt: skip
        last: MeshError | None = None
        too_small: ContextLengthExceeded | None = None  # the largest skipped node's refusal
        try:
            while True:
                t0 = rt.clock()
                d = await self._choose(first and not self.tried)
                if first and not self.tried:
                    self.tally.waited_s = rt.clock() - t0
                if d.node_id is None:
                    if too_small is not None and last is None and self.rejection is None:
                        raise too_small
                    self.stop(Stop.NO_NODE)
                    break
                node = d.node_id
                entry = rt.table.get(node)
                if entry is None:  # pragma: no cover - removed between pick and send
                    self.tried.add(node)
                    continue
                try:  # a node declaring a smaller context is skipped, not the request
                    self._check_context(node)
                except ContextLengthExceeded as exc:
                    self.tried.add(node)
                    too_small = max(too_small or exc, exc, key=lambda e: e.extra["context_length"])
                    continue
                left = self.deadline - rt.clock()
                if left <= 0:
                    self.stop(Stop.DEADLINE)
                    break
                self.tried.add(node)
                fo.begin()
                att = routing.begin(node, job.model, self.keyed)
                outcome, err, resp = await self._attempt(
                    sender, node, entry.url, left, att, fo, bounded
                )
                if outcome is Outcome.SUCCESS and resp is not None:
                    self.att = att
                    self.tally.node_id = node
                    self.tally.attempts = fo.attempts
                    if fo.accepted() is not None:  # a 200: the only answer
                        overruled(rt, job, self.rejection, node)
                        self.rejection = None
                    return node, resp
                if outcome is Outcome.REJECTED and resp is not None:
                    if self.rejection is None:
                        self.rejection = hold(node, resp, att)
                else:
                    last = err
                # a refusing node's own Retry-After holds it out of the router that long
                step = self.finish(att, outcome, retry_after_s=self.node_wait)
                over = None if self.keyed or outcome not in ASKS_THE_SHARE else rt.over_share
                if over is not None and await over(job.model, job.ext.allow_prompt_keeping):
                    step = self.stop(Stop.NO_NODE)  # anonymous, past its share: not into kept slots
                if step.action is Action.STOP:
                    break
                if step.delay_s > 0:
                    await asyncio.sleep(step.delay_s)
        except (ModelUnavailable, Overloaded) as exc:
            if first and last is None:
                reason = NO_NODE if isinstance(exc, ModelUnavailable) else SATURATED
                routing.demand.refuse(job.model, reason)
            raise
        self.tally.attempts = fo.attempts
        if self.rejection is not None:  # no second opinion took it: the first refusal
            node, resp, _ = self.rejection
            self.rejection = None
            self.tally.node_id = node
            return node, resp
        if last is None:
            last = self._no_node(routing.pick(self._route_request()))
        elif fo.budget_exhausted:
            last.extra["retry_budget_exhausted"] = True
        elif type(last) is UpstreamError and fo.stopped in (Stop.NO_NODE, Stop.MAX_ATTEMPTS):
            # a 502's Retry-After: a node not tried takes it now or then, or a tried one is back
            last.estimated(routing.retry_estimate(self._route_request(), self.tried))
        if first and isinstance(last, (ModelUnavailable, Overloaded)):
            routing.demand.refuse(job.model, NO_NODE if isinstance(last, ModelUnavailable)
                                  else SATURATED)  # fmt: skip
        raise last

    async def _attempt(
        self, sender: Sender, node: str, url: str, left: float, att: Attempt, fo: Failover,
        bounded: bool = False,
    ) -> tuple[Outcome, MeshError | None, NodeResponse | None]:  # fmt: skip
        """One attempt: the answer to keep, or the outcome and the error it makes."""
        attempts = fo.attempts
        self.node_wait = None
        try:
            try:
                # the whole exchange, not only each read: a node trickling bytes must not
                # carry the request past its deadline (a bounded sender cuts it itself)
                pending = _exchange(sender, node, url, left)
                resp, status, content = await (pending if bounded else within(left, pending))
            except TimeoutError:
                raise NodeTimeout(*DEADLINE_PASSED) from None
        except NodeTransportError as exc:
            outcome = _failure(exc)
            kind = exc.kind
            # the client learns the node's id and the error's class, never its URL: that is
            # its operator's address (docs/security.md, "Public listings"), and the
            # transport's own text names it (aiohttp's "Cannot connect to host …", a URL)
            if outcome is Outcome.TIMEOUT:  # the deadline spent: no retry, what to change
                msg = deadline_message(node, kind, self.rt.settings.request_timeout_s,
                                       stream=self.job.stream)  # fmt: skip
                return outcome, UpstreamTimeout(msg, node_id=node, attempts=attempts), None
            if outcome is Outcome.CONNECT_ERROR:
                msg = f"node {node} is unreachable: {kind}"
                return outcome, UpstreamError(msg, node_id=node, attempts=attempts), None
            msg = f"node {node} failed: {kind}"
            return outcome, UpstreamError(msg, node_id=node, attempts=attempts), None
        except BaseException:
            self.finish(att, Outcome.CANCELLED)
            raise
        outcome = status_outcome(status)  # the policy's (core/failover.py)
        if outcome is Outcome.SUCCESS:  # a 200: nothing else is an answer
            self.rt.table.answered(node)
            return outcome, None, resp
        if outcome is Outcome.REJECTED:  # the node's own refusal
            self.rt.table.answered(node)  # it took the gateway's signature
            return outcome, None, resp
        if status == 401:  # the node refused the gateway's signature (a key not pinned yet)
            self.rt.table.refused_gateway(node, self.rt.wall_clock())
            return Outcome.UNAVAILABLE, ModelUnavailable(
                f"node {node} refused the gateway: {error_message(content)}",
                model=self.job.model, reason="node_unavailable", node_id=node, attempts=attempts,
            ), None  # fmt: skip
        if outcome is not Outcome.SERVER_ERROR:  # 429 or 503
            self.rt.table.refused_request(node, self.rt.wall_clock())
            wait = _retry_after(resp)
            self.node_wait = float(wait)
            self.retry_after = wait if self.retry_after is None else min(self.retry_after, wait)
            text = error_message(content)
            if status == 429:
                return Outcome.OVERLOADED, Overloaded(
                    f"node {node} is busy: {text}", retry_after=self.retry_after,
                    node_id=node, attempts=attempts,
                ), None  # fmt: skip
            return Outcome.UNAVAILABLE, ModelUnavailable(
                f"node {node} cannot serve {self.job.model!r} now: {text}", model=self.job.model,
                retry_after=self.retry_after, reason="node_unavailable", node_id=node,
                attempts=attempts,
            ), None  # fmt: skip
        # a 5xx, or a status that is neither an answer nor a refusal (a 1xx, 204, 299, a 3xx:
        # never followed, its Location never passed on): the node's failure
        msg = f"node {node} answered HTTP {status}: {error_message(content)}"
        return outcome, UpstreamError(msg, node_id=node, attempts=attempts), None

    def finish(
        self,
        att: Attempt,
        outcome: Outcome,
        *,
        completion_tokens: int = 0,
        ttft_ms: float | None = None,
        retry_after_s: float | None = None,
    ) -> Step:
        """End an attempt: the router learns the outcome (a refusal's ``Retry-After`` too),
        the policy decides what next."""
        self.routing.finish(
            att,
            outcome,
            completion_tokens=completion_tokens,
            ttft_ms=ttft_ms,
            retry_after_s=retry_after_s,
        )
        if self.att is att:
            self.att = None
        fo = self.failover
        if fo is None:  # pragma: no cover - an attempt is only begun under a Failover
            raise MeshError("an attempt outside the failover policy")
        return self._observed(fo.after(att.node_id, outcome, self.rt.clock(), random.random()))

    def first_token(self) -> None:
        """The open attempt's node sent its first token (the gateway's ttft: the first
        node's, across a continuation)."""
        att = self.att
        if att is not None:
            self.routing.first_token(att)
        if self.tally.ttft_ms is None:
            self.tally.ttft_ms = (self.rt.clock() - self.job.started) * 1000.0

    def broke(self, outcome: Outcome) -> str | None:
        """The node of the open attempt broke its stream: the router hears it now (the
        policy decides in :meth:`resume`). Returns that node."""
        att = self.att
        if att is None:
            return None
        self.att = None
        self.routing.finish(att, outcome)
        return att.node_id

    def resume(self, node_id: str, outcome: Outcome) -> Step:
        """Whether a mid-stream continuation may start after ``node_id`` broke with
        ``outcome``: the policy's decision under the continuation's own failover state
        and time window (:data:`CONTINUE_WINDOW_S`)."""
        fo = self.failover
        if fo is None:  # pragma: no cover - a stream is only open under a Failover
            raise MeshError("a continuation outside the failover policy")
        now = self.rt.clock()
        self.deadline = now + min(CONTINUE_WINDOW_S, self.rt.settings.request_timeout_s)
        self.failover = fo = fo.continuation(now, self.deadline)
        step = self._observed(fo.after(node_id, outcome, now, random.random()))
        metrics = self.rt.metrics
        if metrics is not None and step.action is not Action.STOP:
            metrics.continuation()
        return step

    def stop(self, reason: Stop) -> Step:
        """A stop the policy cannot see (no node left, no time left)."""
        fo = self.failover
        if fo is None:  # pragma: no cover
            raise MeshError("a stop outside the failover policy")
        return self._observed(fo.stop(reason))

    def _observed(self, step: Step) -> Step:
        """Every failover decision passes here: the metrics count it, the observer (tests)
        sees a request's decisions when it stops."""
        metrics = self.rt.metrics
        if metrics is not None:
            metrics.step(step)
        observer = self.rt.observer
        if observer is not None and step.action is Action.STOP and self.failover is not None:
            observer(self.job, self.failover)
        return step

    # -- choosing a node ------------------------------------------------------------------
    def _route_request(self, model: str | None = None) -> RouteRequest:
        """The next attempt's route; ``model``: another's under the same constraints."""
        ext, m = self.ext, model or self.job.model
        allow, keepers = ext.allow_nodes, ext.allow_prompt_keeping  # else none (keeppick34)
        if model is None and allow is None and not (self.tried or ext.avoid_regions
                                                     or ext.deny_nodes or ext.trusted_only):  # fmt: skip
            # the common request: one made once per model and max_tokens (an equal one)
            return _plain_route(m, self.job.max_tokens or None, self.keyed, keepers)
        if ext.trusted_only and self.rt.quality is not None:  # only nodes trusted now
            trusted = self.rt.quality.trusted_nodes(m)
            allow = trusted if allow is None else allow & trusted
        return RouteRequest(  # keepers: opted in to nodes that may keep prompts (router)
            (m,), expected_tokens=self.job.max_tokens or None, avoid_regions=ext.avoid_regions,
            allow_nodes=allow, deny_nodes=ext.deny_nodes, keepers=keepers,
            exclude=frozenset(self.tried) if model is None else frozenset(),
            keyed=self.keyed,  # it may take the places nodes keep for keyed requests
        )  # fmt: skip

    def _check_context(self, node_id: str) -> None:
        job = self.job
        hosted = self.rt.table.hosted(node_id, job.model)
        ctx = (hosted.context_length if hosted is not None else None) or job.catalog_context
        # parse checked the served context (<= the catalog's) with max_tokens or 1: not again
        if ctx and ctx != job.catalog_context:
            check_context(job.prompt_text, job.max_tokens, ctx, job.model,
                          context_source(ctx, job.context, constrained=True))  # fmt: skip

    def _no_node(self, d: Decision, full: str = "") -> MeshError:
        ext = self.ext
        # the models that would answer (routed: not a quarantined node's), within constraints
        up = self.routing.models_within(self.rt.table.models_up(), self._route_request)
        keep = self.routing.keepers_for(self.job.model, ext.allow_prompt_keeping)
        keeping = self.routing.up_among(keep)  # the nodes up held out for keeping prompts
        said = constraints_said(ext)  # "": none
        return no_node(d, self.job.model, up, self.rt.retry_after_s, constrained=said, full=full,
                       resting=self.rt.table.resting_for(self.job.model),
                       keeping=keeping)  # fmt: skip

    async def _choose(self, first: bool) -> Decision:
        """A node for the next attempt; for the first, 503/429 or the opt-in bounded wait."""
        rt, job, routing = self.rt, self.job, self.routing
        req = self._route_request()
        d = routing.pick(req)
        if d.verdict is Verdict.OK or not first:
            return d
        waiter = self.ext.waiter  # its API key's id (access.Authenticate)
        place = routing.take_place(waiter)  # (it may push out another key's waiter)
        if isinstance(place, str):  # every place taken, none to push out: as without a wait
            raise self._no_node(d, full=place)
        # the decisions are core/slot_wait.py's (the fleet simulator runs the same)
        wait = SlotWait(job.started, self.ext.wait_s, self.deadline,
                        trace=rt.wait_observer is not None)  # fmt: skip
        loop = asyncio.get_running_loop()
        hard_stop = loop.time() + self.ext.wait_s  # bounded even if the runtime clock stands still
        routing.demand.wait_begin(job.model)
        woken: bool | None = None
        try:
            while True:
                left = min(wait.left(rt.clock()), hard_stop - loop.time())
                look = wait.look(d.verdict, d.wait_s, left, woken)
                if look.next is Next.SEND:
                    return d
                if look.next is Next.RAN_OUT:
                    raise self._no_node(d, look.why)
                # woken by every change; else at the estimate, never sooner than RECHECK_S
                woken = await routing.wait_change(look.sleep_s, job.model, place)
                if place.out:  # pushed out for another key's request: as without a wait
                    raise self._no_node(d, full=place.out)
                d = routing.pick(req)
        finally:
            routing.leave_place(place)
            routing.demand.wait_end(job.model)
            if rt.wait_observer is not None:
                rt.wait_observer(job, wait)

    # -- a non-streaming request ----------------------------------------------------------
    async def complete(self) -> Answer:
        """Send a non-streaming request; its attempt is finished before this returns."""
        rt, job = self.rt, self.job
        client = rt.http
        payload = keyed_raw(job.raw, job.body) if self.keyed else job.raw
        body_sha256 = sha256_hex(payload)
        connect_s = rt.settings.connect_timeout_s
        parsed: list[dict[str, Any]] = []

        async def sender(node: str, url: str, left: float) -> NodeResponse:
            headers = forward_headers(rt, job, node, body_sha256)
            hosted = rt.table.hosted(node, job.model)  # the bound at its context (node_answer)
            bound = bound_for(job, hosted.context_length if hosted is not None else None)
            resp = await client.post_by(
                url + job.path, payload, headers, left=left, connect_s=min(left, connect_s),
                limit=bound.bytes,
            )  # fmt: skip
            if resp.status_code == 200:  # within the bound, JSON, an answer (node_answer.py)
                parsed.append(read_answer(resp.content, bound, job.model, job.choices))
            return resp

        node, resp = await self.send(sender, bounded=True)
        att = self.att
        if resp.status_code != 200:  # a node's own refusal (a 4xx): its attempt ended
            return Answer(node, resp.status_code, resp.content, None)
        if att is None:  # pragma: no cover - send() leaves an answer's attempt open
            raise MeshError("no open attempt")
        data = parsed[-1]
        tally = self.tally
        latency_ms = (rt.clock() - job.started) * 1000.0
        tally.prompt_tokens, reported = usage_counts(data.get("usage"))
        echoed = job.prompt_text if job.echo else ""  # (the client's text, not generated)
        if not states_completion(data.get("usage")):  # no count: the gateway's (usual) count
            reported = counted_completion(data, job.choices, job.token_limit, echoed, job.text_only)
        node_mesh = data.get("mesh")
        tally.ttft_ms = nonstream_ttft(node_mesh, latency_ms)
        # what the gateway relays, for the receipt (hashed once; the account stage checks it)
        tally.output_sha256 = digest = output_sha256(answer_text(data))
        claim = node_mesh.get("receipt") if isinstance(node_mesh, dict) else None
        # the receipt keeps the node's count; the count priced is at most what it delivered
        tally.outputs.append(Observed(node, tally.prompt_tokens, reported, digest, claim))
        delivered = answer_bytes(data, job.choices, echoed, job.text_only)
        # its cap, for the usage audit, from these bytes (not counted again: mesh_answer)
        tally.completion_cap = completion_cap(delivered, job.choices, job.stop_bytes)
        tally.completion_tokens = priced_completion(
            reported, delivered, job.choices, job.stop_bytes
        )
        self.finish(
            att, Outcome.SUCCESS, completion_tokens=tally.completion_tokens, ttft_ms=tally.ttft_ms
        )
        return Answer(node, 200, resp.content, data)
