"""attack31: what a node wins by saying in every heartbeat that a keyed request just came
(``Heartbeat.keyed_age_s: 0``, read as ``keyed_at`` by every replica's router): no keyed
traffic over an honest twin, and nothing of another node's places. Guards what
docs/security.md's ``keyed_age_s`` row claims (untested before: the tests had one node)."""

from __future__ import annotations

import random

from LLM_Mesh.core.balancer import Outcome, Router, Verdict
from LLM_Mesh.core.route_pools import KEPT, OPEN, band
from LLM_Mesh.core.scoring import RouteRequest

ANON = RouteRequest(("m",))
KEYED = RouteRequest(("m",), keyed=True)


def _two() -> Router:
    r = Router(rng=random.Random(7))
    for nid in ("liar", "honest"):
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=1, max_queue=8)
    return r


def test_a_node_claiming_keyed_requests_wins_no_keyed_request_from_an_open_twin() -> None:
    """The liar refuses every anonymous request (429: its places not kept are "held"), so
    its claim keeps it open to keyed requests at every replica; but a keyed request draws
    from nodes that keep places only when no node is open: each goes to the honest twin."""
    r = _two()
    r.heartbeat("liar", 1.0, in_flight=0, queued=0, keyed_at=1.0)
    r.finish(r.begin("liar", "m", 1.1), 1.2, Outcome.OVERLOADED, retry_after_s=1.0)
    liar, honest = r.node("liar"), r.node("honest")
    assert liar is not None and honest is not None
    assert band(liar) is KEPT and band(honest) is OPEN
    picks = {r.pick(KEYED, 1.3 + i * 1e-3).node_id for i in range(200)}
    assert picks == {"honest"}
    assert r.pick(ANON, 1.5).node_id == "honest"


def test_a_nodes_claim_moves_only_its_own_places() -> None:
    """The honest node's line stays whole for anonymous requests whatever its neighbour
    says; the liar's own is cut by the places it says it keeps (fewer anonymous requests
    for it, never more)."""
    r = _two()
    liar, honest = r.node("liar"), r.node("honest")
    assert liar is not None and honest is not None
    before = liar.open_below
    for t in range(1, 20):
        r.heartbeat("liar", float(t), in_flight=0, queued=0, keyed_at=float(t))
        r.heard("liar", float(t) + 0.5, keyed_at=float(t) + 0.5)
    assert honest.open_below == honest.capacity and honest.keyed_at is None
    assert liar.open_below < before
    assert r.pick(ANON, 30.0).verdict is Verdict.OK
