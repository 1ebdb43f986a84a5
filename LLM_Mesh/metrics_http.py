"""``GET /metrics`` for the registry and the node: one app's own Prometheus registry, exposed.

Shared by both apps (they never import each other): the route (Prometheus text format,
or OpenMetrics when the scraper's ``Accept`` asks for it, encoded by ``prometheus-client``
itself), its access rule (:mod:`LLM_Mesh.core.metrics_access`: loopback, the metrics
token, or ``--metrics-public``), the histogram buckets both sides use, and
:class:`Children`, the hot path's cache of labelled children.

prometheus-client's multiprocess mode (``registry serve --workers N``: the supervisor gives
its workers ``PROMETHEUS_MULTIPROC_DIR``, which prometheus-client reads when it is imported)
keeps each process's Counter and Histogram values in files of that directory:
:func:`multiprocess_dir` says so, and :func:`events_registry` then registers them nowhere,
the served registry showing instead their sum over every file there
(``MultiProcessCollector``: every worker's, dead ones' too, so no counter goes back).
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, ProcessCollector, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from LLM_Mesh.config import Settings
from LLM_Mesh.core.browser_origin import loopback_refusal
from LLM_Mesh.core.metrics_access import MetricsAccess, Verdict, is_loopback

__all__ = [
    "LATENCY_BUCKETS_S",
    "OTHER_NODES",
    "TOKENS_PER_S_BUCKETS",
    "TTFT_BUCKETS_S",
    "WAIT_BUCKETS_S",
    "WORKERS_METRICS_ENV",
    "Children",
    "NodeLabels",
    "events_registry",
    "install_metrics",
    "multiprocess_dir",
    "new_registry",
]

# seconds, end to end (a 1-token sim answer is ~ms; a 7B model's long answer is minutes)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                     120.0, 300.0)  # fmt: skip
TTFT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                  30.0)  # fmt: skip
TOKENS_PER_S_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
                        5000.0)  # fmt: skip
WAIT_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

METRICS_PATH = "/metrics"

K = TypeVar("K", bound=Hashable)
C = TypeVar("C")


# a registry's children by node label: (their Children, their key), for Children.drop
ByNode = dict[str, list[tuple["Children[Any, Any]", Any]]]


OTHER_NODES = "other"  # the node label of the nodes past a process's NodeLabels bound


class NodeLabels:
    """The node label values one process writes, at most ``limit``; a node past them is
    counted as :data:`OTHER_NODES`. For prometheus-client's multiprocess mode, whose files
    keep every label value written until the directory goes (no child can be removed)."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, node: str) -> str:
        if node not in self.seen:
            if len(self.seen) >= self.limit:
                return OTHER_NODES
            self.seen.add(node)
        return node


class Children(Generic[K, C]):
    """A metric's children by label tuple: one dict hit on the hot path instead of
    ``labels()`` (which validates and locks every call). ``by_node``: a child made is noted
    there under its node label (the key's item ``node_at``; ``None``: the key is the node),
    so the children of a node that left can go (:meth:`drop`). ``fold``: a new child's node
    label goes through it (:class:`NodeLabels`), a folded one kept under the folded key."""

    __slots__ = ("_by_node", "_fold", "_make", "_metric", "_node_at", "_seen")

    def __init__(
        self,
        metric: object,
        by_node: ByNode | None = None,
        node_at: int | None = None,
        fold: NodeLabels | None = None,
    ) -> None:
        self._metric = metric
        self._make = metric.labels  # type: ignore[attr-defined]
        self._seen: dict[K, C] = {}
        self._by_node = by_node
        self._node_at = node_at
        self._fold = fold

    def __call__(self, key: K) -> C:
        child = self._seen.get(key)
        if child is None:
            labels = key if isinstance(key, tuple) else (key,)
            if self._fold is not None:
                at = self._node_at or 0
                folded = self._fold(str(labels[at]))
                if folded != labels[at]:  # past the bound: the folded key's child
                    labels = (*labels[:at], folded, *labels[at + 1 :])
                    return self(labels if isinstance(key, tuple) else folded)  # type: ignore[arg-type]
            child = self._seen[key] = self._make(*labels)
            if self._by_node is not None:
                node = labels[self._node_at] if self._node_at is not None else key
                self._by_node.setdefault(str(node), []).append((self, key))
        return child

    def drop(self, key: K) -> None:
        """The child of ``key`` leaves the metric (and ``/metrics``); made again if counted."""
        if self._seen.pop(key, None) is not None:
            labels = key if isinstance(key, tuple) else (key,)
            self._metric.remove(*labels)  # type: ignore[attr-defined]


def new_registry() -> CollectorRegistry:
    """A registry of one app's own (never the global one), with the process collector."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return registry


WORKERS_METRICS_ENV = "LLM_MESH_WORKERS_METRICS_DIR"  # set by registry serve --workers


def multiprocess_dir() -> str | None:
    """The directory of this process's metric values when prometheus-client runs in its
    multiprocess mode (chosen when it was imported, by ``PROMETHEUS_MULTIPROC_DIR``) for
    ``registry serve --workers N`` (which names the same directory in
    :data:`WORKERS_METRICS_ENV`); ``None`` in the default mode (values in memory), and for a
    process given ``PROMETHEUS_MULTIPROC_DIR`` by someone else (its own values, not the sum
    of whatever files that directory holds)."""
    if values.ValueClass is values.MutexValue:
        return None
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    return path if path is not None and os.environ.get(WORKERS_METRICS_ENV) == path else None


def events_registry(served: CollectorRegistry) -> CollectorRegistry | None:
    """Where an app registers its Counters and Histograms: ``served`` (what ``/metrics``
    shows) in one process; in the multiprocess mode none, ``served`` showing instead every
    process's values summed from the directory's files (``MultiProcessCollector``)."""
    path = multiprocess_dir()
    if path is None:
        return served
    MultiProcessCollector(served, path)  # type: ignore[no-untyped-call]
    return None


def _refusal(verdict: Verdict, loopback_why: str | None) -> Response:
    unauthorized = verdict is Verdict.UNAUTHORIZED
    who = f"programs on this machine, not {loopback_why};" if loopback_why else "loopback clients,"
    err = {
        "message": "the bearer token is not this process's metrics token"
        if unauthorized
        else f"/metrics answers {who} or a client with the metrics token "
        "(LLM_MESH_METRICS_TOKEN), unless it is public (--metrics-public)",
        "type": "authentication_error" if unauthorized else "permission_error",
        "param": None,
        "code": "unauthorized" if unauthorized else "forbidden",
    }
    headers = {"WWW-Authenticate": "Bearer"} if unauthorized else None
    return Response(
        json.dumps({"error": err}).encode(),
        status_code=401 if unauthorized else 403,
        headers=headers,
        media_type="application/json",
    )


def install_metrics(app: Starlette, registry: CollectorRegistry, settings: Settings) -> None:
    """Add ``GET /metrics`` to ``app``, exposing ``registry`` under the settings' access rule."""
    access = MetricsAccess(public=settings.metrics_public, token=settings.metrics_token)

    async def metrics(request: Request) -> Response:
        peer = request.client.host if request.client else None
        why = loopback_refusal(request.headers, settings.local_names)
        verdict = access.decide(request.headers.get("authorization"), peer, why)
        if verdict is not Verdict.ALLOW:
            return _refusal(verdict, why if is_loopback(peer) else None)
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"Content-Type": content_type})

    app.add_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)
