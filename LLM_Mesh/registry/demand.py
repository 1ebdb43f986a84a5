"""Demand per model, counted at the gateway, published as ``GET /mesh/demand``.

Hot path: :class:`DemandTracker` only adds and subtracts (``begin``/``end`` of
an attempt, ``wait_begin``/``wait_end`` of the opt-in wait for a node) and
counts refusals in a :class:`~LLM_Mesh.core.demand.WindowCounter` (one bucket
increment). Everything else happens when ``GET /mesh/demand`` is asked.

Per model (every catalog model, then every custom model a known node hosts)::

    requests_waiting  = gateway_waiting + max(in_flight - concurrency, queued_on_nodes)
                        (core.demand.requests_waiting; the larger, not the sum, because
                        the gateway's excess sits in the queues the heartbeats report)
        gateway_waiting  requests held at this gateway with no node yet (opt-in wait)
        in_flight        this gateway's attempts on nodes for the model, not yet ended
        concurrency      sum of max_concurrency of the healthy nodes hosting it
        queued_on_nodes  sum of the queued counts those nodes' last heartbeats reported,
                         each at most the load the mesh knew it had sent the node then
                         (core.demand.explained_queue; a node's queue is shared by its
                         models; a node hosting several counts its whole queue for each)
    requests_refused  = requests answered 503 model_unavailable (no node, or every node tried
                        answered 503) or 429 overloaded (saturated, or every node tried
                        answered 429) in the last window_s
                        seconds (600); retries inside one request count once
    nodes_serving     = healthy nodes hosting the model, loaded or able to load it
    nodes_loaded      = of those, the ones that report it loaded

With several gateway replicas on one store each counts its own refusals and in-flight
requests and publishes them with its beat (``registry/replicas.py``, every second); the
report adds the other live replicas' numbers (``others``) to this one's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from LLM_Mesh.core.demand import (
    DEFAULT_BUCKET_S,
    DEFAULT_WINDOW_S,
    WindowCounter,
    explained_queue,
)
from LLM_Mesh.core.demand import requests_waiting as waiting_estimate
from LLM_Mesh.registry.listing import offered_specs
from LLM_Mesh.registry.node_table import NodeTable

__all__ = ["DemandTracker", "demand_report", "others_in_flight_at"]

NO_NODE = "no_node"
SATURATED = "saturated"


class DemandTracker:
    """Counters the gateway updates per request; read by :func:`demand_report`."""

    __slots__ = ("clock", "in_flight", "refused", "waiting")

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        window_s: float = DEFAULT_WINDOW_S,
        bucket_s: float = DEFAULT_BUCKET_S,
    ) -> None:
        self.clock = clock
        self.in_flight: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        self.refused: WindowCounter[tuple[str, str]] = WindowCounter(window_s, bucket_s)

    @property
    def window_s(self) -> float:
        return self.refused.window_s

    # -- hot path: increments only -------------------------------------------------
    def begin(self, model: str) -> None:
        self.in_flight[model] = self.in_flight.get(model, 0) + 1

    def end(self, model: str) -> None:
        _decrement(self.in_flight, model)

    def wait_begin(self, model: str) -> None:
        self.waiting[model] = self.waiting.get(model, 0) + 1

    def wait_end(self, model: str) -> None:
        _decrement(self.waiting, model)

    def refuse(self, model: str, reason: str) -> None:
        """One request for ``model`` answered 503 no-node (``reason`` NO_NODE) or 429."""
        self.refused.add((model, reason), self.clock())

    # -- reads ------------------------------------------------------------------------
    def refused_counts(self, now: float | None = None) -> dict[str, dict[str, int]]:
        """model -> {reason: requests refused in the window}."""
        out: dict[str, dict[str, int]] = {}
        for (model, reason), n in self.refused.counts(self.clock() if now is None else now).items():
            out.setdefault(model, {})[reason] = n
        return out


def _decrement(counts: dict[str, int], model: str) -> None:
    n = counts.get(model, 0) - 1
    if n > 0:
        counts[model] = n
    else:
        counts.pop(model, None)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def others_in_flight_at(
    others: Sequence[dict[str, Any]], node_id: str, models: Iterable[str]
) -> int:
    """Requests other replicas published in flight at ``node_id`` (``"nodes"``). A replica
    that publishes no per-node counts (older than them), or left this node out of its
    bounded list (``"nodes_truncated"``), counts its in-flight requests for any of
    ``models`` (the node's): they may be at this node."""
    wanted: set[str] | None = None
    total = 0
    for snap in others:
        nodes = snap.get("nodes")
        if isinstance(nodes, dict):
            n = _count(nodes.get(node_id))
            if n or snap.get("nodes_truncated") is not True:
                total += n
                continue
        theirs = snap.get("in_flight")
        if isinstance(theirs, dict):
            wanted = set(models) if wanted is None else wanted
            total += sum(_count(n) for model, n in theirs.items() if model in wanted)
    return total


def _merge(
    tracker: DemandTracker, now: float, others: Sequence[dict[str, Any]]
) -> tuple[dict[str, int], dict[str, int], dict[str, dict[str, int]]]:
    """This replica's counters plus the other replicas' published ones."""
    in_flight, waiting = dict(tracker.in_flight), dict(tracker.waiting)
    refused = tracker.refused_counts(now)
    for snap in others:
        for mine, theirs in ((in_flight, snap.get("in_flight")), (waiting, snap.get("waiting"))):
            if isinstance(theirs, dict):
                for model, n in theirs.items():
                    mine[str(model)] = mine.get(str(model), 0) + _count(n)
        their_refused = snap.get("refused")
        if isinstance(their_refused, dict):
            for model, why in their_refused.items():
                if isinstance(why, dict):
                    row = refused.setdefault(str(model), {})
                    for reason, n in why.items():
                        row[str(reason)] = row.get(str(reason), 0) + _count(n)
    return in_flight, waiting, refused


def demand_report(
    table: NodeTable, tracker: DemandTracker, others: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """``GET /mesh/demand`` (see the module docstring for what each number counts);
    ``others``: the demand counters other live replicas published."""
    now = table.clock()
    in_flights, waitings, refused = _merge(tracker, now, others)
    rows: list[dict[str, Any]] = []
    for spec in offered_specs(table):
        model = spec.id
        serving = table.healthy_entries_for(model, now)
        concurrency = sum(e.max_concurrency for e in serving)
        # what the mesh sent each node, not its word alone (core/demand.explained_queue)
        queued = sum(explained_queue(e.reported_queued, e.known_load) for e in serving)
        in_flight = in_flights.get(model, 0)
        at_gateway = waitings.get(model, 0)
        why = refused.get(model, {})
        rows.append(
            {
                "model": model,
                "requests_waiting": waiting_estimate(
                    gateway_in_flight=in_flight, gateway_waiting=at_gateway,
                    concurrency=concurrency, reported_queued=queued,
                ),
                "requests_refused": sum(why.values()),
                "nodes_serving": len(serving),
                "nodes_loaded": sum(1 for e in serving if e.models[model].loaded),
                "custom": spec.custom,
                "refused_no_node": why.get(NO_NODE, 0),
                "refused_saturated": why.get(SATURATED, 0),
                "gateway_in_flight": in_flight,
                "gateway_waiting": at_gateway,
                "queued_on_nodes": queued,
                "concurrency": concurrency,
            }
        )  # fmt: skip
    return {
        "window_s": tracker.window_s,
        "counts": (
            "requests_waiting = gateway_waiting + max(gateway_in_flight - concurrency, "
            "queued_on_nodes); requests_refused = 503 no-node + 429 answers in the last "
            "window_s seconds; nodes_serving = healthy nodes hosting it (loaded or loadable)"
        ),
        "models": rows,
    }
