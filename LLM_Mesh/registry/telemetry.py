"""One finished gateway request: its metrics and its log line, from one call.

The account stage's record (``account._record``) calls :meth:`Telemetry.request` for
every request that reached the send stage (ok, error or cancelled; a stream when it
ends); ``Pipeline.serve`` calls :meth:`Telemetry.refused` for a request answered before
it (a parse or admission refusal, or an answer replayed from the idempotency cache).
So each request is counted once and has one line.

The line (logger ``LLM_Mesh.requests.gateway``, INFO; ``LLM_MESH_LOG_REQUESTS=0`` turns
it off; format by :mod:`LLM_Mesh.logs`) has ``request_id`` (the gateway's ``req-`` id, or for
an id the client chose its hash, ``c-`` + 24 hex digits: :attr:`Job.logged_id`), ``path``, ``model``,
``stream``, ``node``, ``status``, ``outcome``, ``code``, ``attempts``, ``latency_ms``,
``ttft_ms``, ``prompt_tokens``, ``completion_tokens`` and ``cost`` (and, when the client
chose the request id, ``node_request_id``: the id its node got and logged): ids, numbers and
bounded codes (:func:`~LLM_Mesh.registry.metrics.code_label`), never a prompt, an
answer or an error message.
"""

from __future__ import annotations

import logging

from LLM_Mesh.logs import log_request
from LLM_Mesh.registry.job import Job
from LLM_Mesh.registry.metrics import GatewayMetrics, code_label
from LLM_Mesh.registry.ports import RequestRecord

__all__ = ["REQUEST_LOGGER", "Telemetry"]

REQUEST_LOGGER = "LLM_Mesh.requests.gateway"


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class Telemetry:
    """Metrics (``None``: off) and the request line (``log_requests``) of one gateway."""

    __slots__ = ("log", "metrics")

    def __init__(self, metrics: GatewayMetrics | None = None, log_requests: bool = True) -> None:
        self.metrics = metrics
        self.log = logging.getLogger(REQUEST_LOGGER) if log_requests else None

    def request(
        self, job: Job, rec: RequestRecord, *, status: int, attempts: int, latency_ms: float
    ) -> None:
        """A request that reached the send stage ended as ``rec`` says."""
        error = rec.error_code
        code = code_label(error) if error else ""  # (code_label's "" for none, without a call)
        ttft = rec.ttft_ms
        m = self.metrics
        if m is not None:
            m.request(
                job.model, rec.node_id or "", rec.outcome, code, latency_s=latency_ms / 1000.0,
                ttft_s=None if ttft is None else ttft / 1000.0,
                prompt_tokens=rec.prompt_tokens, completion_tokens=rec.completion_tokens,
            )  # fmt: skip
        log = self.log
        if log is not None:
            line = {
                "request_id": job.logged_id, "path": job.path, "model": job.model,
                "stream": job.stream, "node": rec.node_id, "status": status,
                "outcome": rec.outcome, "code": code or None, "attempts": attempts,
                "latency_ms": round(latency_ms, 3),
                "ttft_ms": None if ttft is None else round(ttft, 3),
                "prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens,
                "cost": rec.cost,
            }  # fmt: skip
            if job.node_request_id:  # the client chose the id: the one the node's line has
                line["node_request_id"] = job.node_request_id
            log_request(log, line)

    def refused(
        self, job: Job | None, path: str, *, status: int, code: str | None, latency_ms: float,
        outcome: str = "refused", request_id: str | None = None,
    ) -> None:  # fmt: skip
        """A request answered before the send stage: refused (``job`` is ``None`` when it
        did not parse: ``request_id`` the id its refusal names) or ``outcome="replayed"``
        from the idempotency cache."""
        label = code_label(code)
        model = job.model if job is not None else ""
        m = self.metrics
        if m is not None:
            m.request(model, "", outcome, label)
        log = self.log
        if log is not None:
            log_request(log, {
                "request_id": job.logged_id if job is not None else request_id, "path": path,
                "model": model or None, "stream": job.stream if job is not None else None,
                "status": status, "outcome": outcome, "code": label or None, "attempts": 0,
                "latency_ms": _ms(latency_ms),
            })  # fmt: skip
