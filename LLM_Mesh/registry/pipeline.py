"""The gateway's request path: one way through five stages, each in its own module.

::

    bytes ─▶ parse ─▶ admit ─▶ send (route + failover) ─▶ relay ─▶ account
             Job      checks   Exchange / NodeStream      bytes     mesh, record

| stage | module | owns |
|---|---|---|
| parse and validate | :mod:`~LLM_Mesh.registry.parse` | body → :class:`~LLM_Mesh.registry.job.Job` (400/404) |
| admit | :mod:`~LLM_Mesh.registry.admit` | the admission checks, in order: API key, rate limit, price (estimate reserved, else 402), idempotency, anonymous last |
| route and send | :mod:`~LLM_Mesh.registry.send`, :mod:`~LLM_Mesh.registry.send_stream`, :mod:`~LLM_Mesh.registry.second_opinion` | every router attempt from ``begin`` to ``finish``, failover by :mod:`LLM_Mesh.core.failover`, a node refusal's second opinion, mid-stream continuation |
| relay | :mod:`~LLM_Mesh.registry.relay` | JSON or SSE bytes for the client; finishes nothing |
| account | :mod:`~LLM_Mesh.registry.account` | the ``mesh`` object, cost, payment of the reservation (before the answer is released), the request's record |

:class:`Pipeline` only wires them: a stage never calls a later one and never reaches
back into an earlier one; import-linter checks that a stage never imports a later one
(``pyproject.toml``). The POST routes call :meth:`Pipeline.serve` directly (plain
Starlette routes, no dependency injection): this is the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.account import (
    StreamAccount,
    account_failure,
    account_passthrough,
    mesh_answer,
    pay,
    record_answer,
)
from LLM_Mesh.registry.admit import Admission, AdmissionCheck, default_checks
from LLM_Mesh.registry.job import Client, Job, Tally
from LLM_Mesh.registry.parse import build_job, read_body, refusal_ids
from LLM_Mesh.registry.relay import SseRelay, asks_usage, json_answer, passthrough, stream_response
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.send import Exchange
from LLM_Mesh.registry.send_stream import NodeStream

__all__ = ["Pipeline"]


class Pipeline:
    """The stages wired for one app (see the module docstring)."""

    __slots__ = ("admission", "rt")

    def __init__(self, rt: Runtime, checks: Sequence[AdmissionCheck] | None = None) -> None:
        self.rt = rt
        self.admission = Admission(default_checks(rt) if checks is None else checks)

    async def serve(self, request: Request, path: str) -> Response:
        """One ``POST /v1/...`` request, start to end.

        A request answered before the send stage (refused by parse or admission, or
        replayed by the idempotency check) is counted and logged here; every other is
        by the account stage.
        """
        rt = self.rt
        started = rt.clock()
        raw = await read_body(request)
        try:
            job = build_job(rt, request.headers, raw, path, started)
        except MeshError as exc:
            # its id as an answer's (the client's, else a new one), in its log line too (a
            # client's own id logged as its ledger id, never in clear: Job.logged_id)
            exc.request_id, logged = refusal_ids(request.headers)
            rt.telemetry.refused(None, path, status=exc.status, code=exc.code,
                                 latency_ms=(rt.clock() - started) * 1000.0,
                                 request_id=logged)  # fmt: skip
            raise
        # the peer's host as ``request.client.host`` reads it, without the ``Address`` made
        # for it (a property and a namedtuple's ``__new__``: two Python calls; perf45)
        peer = request.scope.get("client")
        client = Client(peer[0] if peer else "unknown", request.headers.get("authorization"))
        sent = False

        async def handler(job: Job, client: Client) -> Response:
            nonlocal sent
            sent = True  # from here on the account stage records the request
            try:
                return await (self._stream if job.stream else self._complete)(job, client)
            except MeshError as exc:  # answered in admission's holds or below
                exc.request_id = job.request_id  # the SDK's ``request_id`` of the error
                raise

        try:
            response = await self.admission.run(job, client, handler)
        except MeshError as exc:
            exc.request_id = exc.request_id or job.request_id  # an admission check's refusal
            if not sent:
                rt.telemetry.refused(job, path, status=exc.status, code=exc.code,
                                     latency_ms=(rt.clock() - started) * 1000.0)  # fmt: skip
            raise
        if not sent:
            status = response.status_code
            rt.telemetry.refused(
                job, path, status=status, code=None if status < 400 else f"http_{status}",
                latency_ms=(rt.clock() - started) * 1000.0,
                outcome="replayed" if status < 400 else "refused",
            )  # fmt: skip
        return response

    async def _complete(self, job: Job, client: Client) -> Response:
        rt = self.rt
        ex = Exchange(rt, job, _keyed(rt, job, client))
        try:
            answer = await ex.complete()
        except MeshError as exc:
            account_failure(rt, job, client, exc)
            raise
        except BaseException:  # cancelled (the client left) or a bug: no answer, no tokens
            client.used(0)
            raise
        if answer.data is None:
            refusal = account_passthrough(rt, job, client, answer.node_id, answer.status,
                                          answer.content, ex.tally.attempts)  # fmt: skip
            return passthrough(job, answer.node_id, refusal)
        tally = ex.tally
        latency_ms = mesh_answer(rt, job, tally, answer.data, client.payment)
        try:
            # the answer's bytes first, then the payment: nothing that can fail comes between
            # paying and the answer's release (until 2026-12-03 a failure after paying was a
            # 500 that freed the request id: a retry ran and was paid again)
            response = json_answer(job, answer.node_id, answer.data, tally.receipt)
            await pay(job, tally, client)
            client.used(_tokens(tally))
        except BaseException:
            client.used(_tokens(tally))  # the answer's usage, as if it went out
            record_answer(rt, job, tally, latency_ms)
            raise
        # the record (request log row, metrics, log line) once the answer is written: not
        # on the client's wait; in the same loop step as the write (an async function)
        response.background = _Recorded(rt, job, tally, latency_ms)
        return response

    async def _stream(self, job: Job, client: Client) -> Response:
        rt = self.rt
        ex = Exchange(rt, job, _keyed(rt, job, client))
        upstream = NodeStream(ex)
        try:
            answer = await upstream.open()
        except MeshError as exc:
            account_failure(rt, job, client, exc)
            raise
        except BaseException:  # cancelled before its stream opened: no tokens
            client.used(0)
            raise
        if answer.status != 200:
            refusal = account_passthrough(rt, job, client, answer.node_id, answer.status,
                                          answer.content, ex.tally.attempts)  # fmt: skip
            return passthrough(job, answer.node_id, refusal)
        acct = StreamAccount(rt, job, ex.tally, client)

        async def on_close() -> None:
            await upstream.close()
            await acct.close()
            client.used(_tokens(ex.tally))

        relay = SseRelay(
            upstream.events(),
            acct.finalize,
            on_error=acct.finalize_error,
            commit=acct.commit,
            usage_chunk=asks_usage(job.body),
        )
        return stream_response(job, answer.node_id, relay, on_close)


class _Recorded(BackgroundTask):
    """A whole answer's record as its response's background task (run once the answer is
    written): Starlette's ``BackgroundTask(record, ...)`` without what its ``__init__``
    does per request (looking whether the function is a coroutine function, ~5 µs of the
    loop's CPU) or the coroutine it wraps."""

    def __init__(self, rt: Runtime, job: Job, tally: Tally, latency_ms: float) -> None:
        self.rt, self.job, self.tally, self.latency_ms = rt, job, tally, latency_ms

    async def __call__(self) -> None:
        record_answer(self.rt, self.job, self.tally, self.latency_ms)


def _keyed(rt: Runtime, job: Job, client: Client) -> bool:
    """Whether the request goes to its node as keyed (``core/priority.py``: a node serves
    it before ordinary requests), counted in the model's mix with whether its client named
    it (the probes' draws: ``core/priority_mix.py``)."""
    keyed = client.key is not None
    rt.traffic.note(job.model, keyed, job.client_id is not None)
    return keyed


def _tokens(tally: Tally) -> int:
    """The tokens a request really used (what a client's token limit is settled with)."""
    return tally.prompt_tokens + tally.completion_tokens + tally.before
