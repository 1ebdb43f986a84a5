"""A node's Prometheus metrics, on a registry of this app's own (``GET /metrics``).

Events: a request's end (:meth:`NodeMetrics.request`, from
:mod:`~LLM_Mesh.node.telemetry`), with the generation's timings when it had one.
States, read when Prometheus scrapes (:class:`_StateCollector`, never per request):
in flight, queued, capacity, the admission state, the measured service time, each
hosted model loaded or not, token totals. Names and labels: ``docs/operations.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from LLM_Mesh import __version__
from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.metrics_http import (
    LATENCY_BUCKETS_S,
    TOKENS_PER_S_BUCKETS,
    TTFT_BUCKETS_S,
    WAIT_BUCKETS_S,
    Children,
    new_registry,
)

if TYPE_CHECKING:
    from LLM_Mesh.node.engines.base import Engine
    from LLM_Mesh.node.service import NodeService

__all__ = ["NodeMetrics"]


class NodeMetrics:
    """The node's metrics; ``registry`` is what ``/metrics`` shows."""

    def __init__(self, service: NodeService) -> None:
        reg = self.registry = new_registry()
        self._requests: Children[tuple[str, str, str], Counter] = Children(Counter(
            "llm_mesh_node_requests",
            "Inference requests by model, outcome (ok | error | cancelled | refused: 429/503, "
            "the node did nothing | rejected: another 4xx) and error code",
            ["model", "outcome", "code"], registry=reg,
        ))  # fmt: skip
        self._duration: Children[tuple[str, str], Histogram] = Children(Histogram(
            "llm_mesh_node_request_duration_seconds",
            "Time from arrival to the end of generations (queue wait included), by outcome",
            ["model", "outcome"], buckets=LATENCY_BUCKETS_S, registry=reg,
        ))  # fmt: skip
        self._ttft: Children[str, Histogram] = Children(Histogram(
            "llm_mesh_node_ttft_seconds", "Time from arrival to the first token, answered requests",
            ["model"], buckets=TTFT_BUCKETS_S, registry=reg,
        ))  # fmt: skip
        self._tps: Children[str, Histogram] = Children(Histogram(
            "llm_mesh_node_tokens_per_second",
            "Completion tokens per second after the first token, answered requests",
            ["model"], buckets=TOKENS_PER_S_BUCKETS, registry=reg,
        ))  # fmt: skip
        self._wait: Children[str, Histogram] = Children(Histogram(
            "llm_mesh_node_admission_wait_seconds",
            "Time a generation waited in the admission queue for its slot",
            ["model"], buckets=WAIT_BUCKETS_S, registry=reg,
        ))  # fmt: skip
        reg.register(_StateCollector(service))

    def request(self, model: str, outcome: str, code: str) -> None:
        """A request that never got a generation (refused, rejected, client gone waiting)."""
        self._requests((model, outcome, code)).inc()

    def generation(
        self, model: str, outcome: str, code: str, *, latency_s: float, wait_s: float | None,
        ttft_s: float | None, completion_tokens: int,
    ) -> None:  # fmt: skip
        """A generation ended (``wait_s``: its admission wait, ``None`` without a slot)."""
        self._requests((model, outcome, code)).inc()
        self._duration((model, outcome)).observe(latency_s)
        if wait_s is not None:
            self._wait(model).observe(wait_s)
        if outcome != "ok" or ttft_s is None:
            return
        self._ttft(model).observe(ttft_s)
        gen_s = latency_s - ttft_s
        if completion_tokens and gen_s > 0:
            self._tps(model).observe(completion_tokens / gen_s)


class _StateCollector(Collector):
    """The service's state and totals, read at scrape time."""

    def __init__(self, service: NodeService) -> None:
        self.service = service

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        svc = self.service
        adm = svc.admission
        yield GaugeMetricFamily("llm_mesh_node_in_flight", "Generations running now",
                                value=adm.in_flight)  # fmt: skip
        yield GaugeMetricFamily(
            "llm_mesh_node_queued", "Requests waiting in the admission queue now", value=adm.queued
        )
        yield GaugeMetricFamily("llm_mesh_node_max_concurrency", "Generations at once",
                                value=adm.max_concurrency)  # fmt: skip
        yield GaugeMetricFamily("llm_mesh_node_max_queue", "Admission queue length",
                                value=adm.max_queue)  # fmt: skip
        state = GaugeMetricFamily(
            "llm_mesh_node_state", "1 for the node's state now, 0 for the others", labels=["state"]
        )
        now = svc.state
        for s in NodeState:
            state.add_metric([s.value], 1 if s is now else 0)
        yield state
        measured = adm.service.measured_s
        if measured is not None:
            yield GaugeMetricFamily(
                "llm_mesh_node_service_seconds",
                "Measured time a request holds its slot (EWMA; what a 429's Retry-After uses)",
                value=measured,
            )
        loaded = GaugeMetricFamily(
            "llm_mesh_node_model_loaded", "1: the hosted model is loaded, 0: it could be loaded",
            labels=["model"],
        )  # fmt: skip
        for m in svc.models():
            loaded.add_metric([m.id], 1 if m.loaded else 0)
        yield loaded
        tokens = CounterMetricFamily(
            "llm_mesh_node_tokens", "Tokens processed since start, by kind (prompt | completion)",
            labels=["kind"],
        )  # fmt: skip
        tokens.add_metric(["prompt"], svc.prompt_tokens)
        tokens.add_metric(["completion"], svc.tokens_generated)
        yield tokens
        try:
            engine: Engine | None = svc.engine
        except RuntimeError:  # not started
            engine = None
        info = GaugeMetricFamily(
            "llm_mesh_node_info", "The node's id, engine and version (value 1)",
            labels=["node_id", "engine", "simulated", "version"],
        )  # fmt: skip
        simulated = engine.simulated if engine is not None else svc.config.engine == "sim"
        info.add_metric([svc.node_id, engine.name if engine is not None else svc.config.engine,
                         "true" if simulated else "false", __version__], 1)  # fmt: skip
        yield info
