"""The uptime a heartbeat may credit, from this replica's view of the node (the edge of
``core/rewards``: :func:`~LLM_Mesh.core.rewards.serving`,
:func:`~LLM_Mesh.core.rewards.refusal_credit_s`,
:func:`~LLM_Mesh.core.rewards.full_claim_credit_s`).

:func:`heartbeat_credit_limit_s` is called by ``api.absorb_heartbeat`` after the table and
the router took the heartbeat in. It reads the table's entry (active check, refusals, the
share of requests answered, when it last answered one here), the router (ejected; the
requests this replica has in flight at the node) and the other live replicas' published
in-flight counts per model (``registry/replicas.py``), and returns the most routable time
the store may add for it (``Store.touch_heartbeat``'s ``credit_limit_s``; 0: none).
"""

from __future__ import annotations

from LLM_Mesh.core.rewards import full_claim_credit_s, refusal_credit_s, serving
from LLM_Mesh.registry.demand import others_in_flight
from LLM_Mesh.registry.node_table import REFUSAL_NO_CREDIT_S
from LLM_Mesh.registry.runtime import Runtime

__all__ = ["heartbeat_credit_limit_s"]


def heartbeat_credit_limit_s(
    rt: Runtime, node_id: str, *, previous: float | None, claimed_full: bool
) -> float:
    """The credit limit of ``node_id``'s heartbeat now. ``previous``: its previous heartbeat
    here (the table's clock; None: none); ``claimed_full``: whether its previous load
    report here said it was at its capacity (``core/rewards.claims_full``), so this
    replica's router sent it nothing over the interval this heartbeat vouches for."""
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
    if not claimed_full or credit_s <= 0:
        return credit_s
    # ... and nothing for saying it was full, unless it shows it serves
    st = rt.routing.router.node(node_id)
    others = (
        others_in_flight(rt.replicas.others_demand(), entry.models)
        if rt.replicas is not None
        else 0
    )
    return full_claim_credit_s(
        credit_s,
        claimed_full=True,
        in_flight_here=st.in_flight if st is not None else 0,
        served_ago_s=now - entry.served_at if entry.served_at is not None else None,
        window_s=rt.settings.heartbeat_expiry_s,
        others_in_flight=others,
    )
