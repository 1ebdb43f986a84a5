"""The uptime a heartbeat may credit, from this replica's view of the node (the edge of
``core/rewards``: :func:`~LLM_Mesh.core.rewards.serving`,
:func:`~LLM_Mesh.core.rewards.refusal_credit_s`,
:func:`~LLM_Mesh.core.rewards.explained_load_credit_s`).

:func:`heartbeat_credit_limit_s` is called by ``api.absorb_heartbeat`` after the table and
the router took the heartbeat in. It reads the table's entry (active check, refusals, the
share of requests answered) and the router (ejected), cuts the credit for load the node
claimed that the mesh did not send it (:func:`known_load`: the requests this replica has in
flight at the node and those the other live replicas published in flight there,
``registry/replicas.py``), and returns the most routable time the store may add for it
(``Store.touch_heartbeat``'s ``credit_limit_s``; 0: none).
"""

from __future__ import annotations

from collections.abc import Iterable

from LLM_Mesh.core.rewards import (
    explained_load_credit_s,
    known_at_report,
    refusal_credit_s,
    serving,
)
from LLM_Mesh.registry.demand import others_in_flight_at
from LLM_Mesh.registry.node_table import REFUSAL_NO_CREDIT_S
from LLM_Mesh.registry.runtime import Runtime

__all__ = ["heartbeat_credit_limit_s", "known_load"]


def known_load(rt: Runtime, node_id: str, models: Iterable[str]) -> int:
    """The requests the mesh knows it has in flight at ``node_id`` as its heartbeat arrives:
    this replica's (the router's own count, or its peak since the node's previous heartbeat
    when one ended just now: ``core/rewards.known_at_report``; called once per heartbeat,
    it starts the peak over) and the other live replicas' published ones (``models``: the
    node's, for a replica that publishes no per-node counts)."""
    in_flight, peak, ended_at = rt.routing.router.take_peak(node_id)
    here = known_at_report(in_flight, peak, ended_at, rt.routing.clock())
    if rt.replicas is None:
        return here
    return here + others_in_flight_at(rt.replicas.others_demand(), node_id, models)


def heartbeat_credit_limit_s(
    rt: Runtime, node_id: str, *, previous: float | None, claimed: int, known: int
) -> float:
    """The credit limit of ``node_id``'s heartbeat now. ``previous``: its previous heartbeat
    here (the table's clock; None: none); ``claimed``: the load (``in_flight + queued``) its
    previous report here claimed, which steered this replica's router over the interval
    this heartbeat vouches for; ``known``: the load the mesh knew it sent the node (the
    larger of :func:`known_load` when that report arrived and now)."""
    entry = rt.table.get(node_id)
    if entry is None:
        return 0.0
    # no credit when its last active check failed, its router has it ejected, it refused the
    # gateway's key lately, or it refused every request sent here for long, answering none
    if not serving(
        check_failed=entry.check_failed,
        ejected=rt.routing.router.outliers.is_ejected(node_id),
        refused_gateway_at=entry.refused_gateway_at,
        refusing_since=entry.refusing_since,
        refused_at=entry.refused_at,
        now=rt.wall_clock(),
        window_s=REFUSAL_NO_CREDIT_S,
    ):
        return 0.0
    credit_s = rt.settings.heartbeat_expiry_s
    now = rt.table.clock()
    since = now - previous if previous is not None else None
    # ... cut by the share of the requests sent here it refused lately
    credit_s = refusal_credit_s(credit_s, since, rt.table.answer_share_milli(entry, now))
    # ... and by the share of the load it claimed that nobody sent it
    return explained_load_credit_s(
        credit_s,
        since,
        claimed=claimed,
        known=known,
        capacity=entry.max_concurrency + entry.max_queue,
    )
