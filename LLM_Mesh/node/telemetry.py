"""One finished node request: its metrics and its log line, exactly once.

The node app opens a :class:`NodeRequest` per inference request
(:meth:`NodeTelemetry.begin`) and ends it where the request ends: refused or rejected
before a generation (:meth:`NodeRequest.refused`: the gateway's signature, limits,
parse, unknown model, a full queue, a paused node, an engine failing before its first
token), the client gone while it waited (:meth:`NodeRequest.gone`), or a generation's
end (:meth:`NodeRequest.ended`: ok, error or cancelled, with its timings: admission
wait, time to first token, latency, tokens). A second end is ignored.

The line (logger ``LLM_Mesh.requests.node``, INFO; ``LLM_MESH_LOG_REQUESTS=0`` turns it
off; format by :mod:`LLM_Mesh.logs`) has ``request_id`` (the gateway's signed
``X-Request-Id``: the same id as the gateway's line), ``node``, ``path``, ``model``,
``stream``, ``status``, ``outcome``, ``code``, ``latency_ms``, ``ttft_ms``, ``wait_ms``,
``prompt_tokens`` and ``completion_tokens``: never the prompt, the output or an error
message.

A generation's end is also a line of the node's served log (``node/served_log.py``,
``core/served.py``; ``served`` ``None``: none kept), with the gateway's time and, when it
signed rather than MACed the request, its signature (:meth:`NodeRequest.known`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from LLM_Mesh.core.b64url import encode as b64url
from LLM_Mesh.core.gateway_auth import GatewayHeaders
from LLM_Mesh.core.served import Served
from LLM_Mesh.errors import ERROR_CODES, MeshError
from LLM_Mesh.logs import log_request
from LLM_Mesh.node.metrics import NodeMetrics

if TYPE_CHECKING:
    from LLM_Mesh.node.generation import Generation
    from LLM_Mesh.node.served_log import ServedLog

__all__ = ["CLIENT_GONE", "REQUEST_LOGGER", "NodeRequest", "NodeTelemetry", "outcome_of"]

REQUEST_LOGGER = "LLM_Mesh.requests.node"
CLIENT_GONE = 499  # nginx's "client closed request": logged and counted, never read


def outcome_of(status: int) -> str:
    """A refusal's outcome label: ``refused`` (429/503: the node did nothing, the gateway
    tries another), ``rejected`` (another 4xx), ``cancelled`` (499), ``error`` (5xx)."""
    if status == CLIENT_GONE:
        return "cancelled"
    if status in (429, 503):
        return "refused"
    if status < 500:
        return "rejected"
    return "error"


def _code(code: str | None) -> str:
    if not code:
        return ""
    return code if code in ERROR_CODES else "other"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


class NodeTelemetry:
    """Metrics (``None``: off) and the request line (``log_requests``) of one node."""

    __slots__ = ("clock", "log", "metrics", "node_id", "served")

    def __init__(
        self,
        node_id: str,
        clock: Callable[[], float],
        metrics: NodeMetrics | None = None,
        log_requests: bool = True,
        served: ServedLog | None = None,
    ) -> None:
        self.node_id = node_id
        self.clock = clock
        self.metrics = metrics
        self.log = logging.getLogger(REQUEST_LOGGER) if log_requests else None
        self.served = served

    def begin(self, request_id: str | None, path: str) -> NodeRequest:
        return NodeRequest(self, request_id, path, self.clock())


class NodeRequest:
    """One inference request on the node, ended once (see the module docstring)."""

    __slots__ = (
        "continued", "done", "gateway", "model", "path", "request_id", "started", "stream", "tel",
    )  # fmt: skip

    def __init__(self, tel: NodeTelemetry, request_id: str | None, path: str, started: float):
        self.tel = tel
        self.request_id = request_id
        self.path = path
        self.started = started
        self.model = ""  # known once the body parsed and the node serves it
        self.stream: bool | None = None
        self.done = False
        self.gateway: GatewayHeaders | None = None  # what the gateway's headers said
        self.continued = False

    def known(
        self, model: str, stream: bool, gateway: GatewayHeaders | None, continued: bool
    ) -> None:
        """What the parsed request says: its model, stream, the gateway's checked headers
        (``GatewayGuard.precheck``'s; ``None``: a standalone node's local client) and
        whether it continues another node's stream."""
        self.model, self.stream, self.gateway, self.continued = model, stream, gateway, continued

    def refused(self, exc: MeshError) -> None:
        """Answered with ``exc`` before any generation (or its first token)."""
        self._end(exc.status, outcome_of(exc.status), _code(exc.code))

    def gone(self) -> None:
        """The client left while its request waited for a slot or its first token."""
        self._end(CLIENT_GONE, "cancelled", "")

    def _end(self, status: int, outcome: str, code: str) -> None:
        if self.done:
            return
        self.done = True
        tel = self.tel
        if tel.metrics is not None:
            tel.metrics.request(self.model, outcome, code)
        if tel.log is not None:
            latency = tel.clock() - self.started
            self._line(status, outcome, code, {"latency_ms": _ms(latency)})

    def ended(self, gen: Generation, *, status: int, error: MeshError | None = None) -> None:
        """The generation ended: ok if it finished, cancelled if the client left (the cancel
        flag was set before it ended), else an error (``error``'s code when known)."""
        if self.done:
            return
        self.done = True
        if error is None and gen.finished:
            outcome, code = "ok", ""
        elif error is None and gen.cancel.is_set():
            outcome, code, status = "cancelled", "", CLIENT_GONE
        else:
            outcome, code = "error", _code(error.code if error is not None else "engine_error")
        end = gen.ended_at if gen.ended_at is not None else self.tel.clock()
        latency = max(0.0, end - gen.started_at)
        ttft = None if gen.first_token_at is None else max(0.0, gen.first_token_at - gen.started_at)
        wait = gen.admission_wait_s
        usage = gen.final_usage()
        tel = self.tel
        if tel.metrics is not None:
            tel.metrics.generation(
                self.model, outcome, code, latency_s=latency, wait_s=wait, ttft_s=ttft,
                completion_tokens=usage.completion_tokens,
            )  # fmt: skip
        if tel.log is not None:
            self._line(status, outcome, code, {
                "latency_ms": _ms(latency), "ttft_ms": _ms(ttft), "wait_ms": _ms(wait),
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            })  # fmt: skip
        if tel.served is not None and self.request_id:
            self._served(tel.served, outcome, usage.prompt_tokens, usage.completion_tokens)

    def _served(self, served: ServedLog, outcome: str, prompt: int, completion: int) -> None:
        """The served log's line of this generation (never its text)."""
        g = self.gateway
        signed = g is not None and not g[4]
        served.write(
            Served(
                time_ms=served.now_ms(), node=self.tel.node_id, request_id=self.request_id or "",
                model=self.model, prompt_tokens=prompt, completion_tokens=completion,
                outcome=outcome, stream=bool(self.stream), continued=self.continued,
                gateway=g[0] if g else "", gateway_ms=g[2] if g else None,
                auth="" if g is None else "signature" if signed else "mac",
                signature=b64url(g[3]) if g is not None and signed else "",
                body_sha256=g[5] if g is not None and signed else "",
            )
        )  # fmt: skip

    def _line(self, status: int, outcome: str, code: str, timings: dict[str, object]) -> None:
        log = self.tel.log
        if log is None:  # pragma: no cover - callers check
            return
        log_request(log, {
            "request_id": self.request_id, "node": self.tel.node_id, "path": self.path,
            "model": self.model or None, "stream": self.stream, "status": status,
            "outcome": outcome, "code": code or None, **timings,
        })  # fmt: skip
