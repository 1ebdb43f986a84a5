"""A node the table no longer holds, taken out of routing by ``Routing.sync``, leaves no
word behind that it may keep prompts.

Found 2026-12-06 (``stall35``): ``Routing.sync``'s removal branch (the table had dropped
the node: a check or a replica's beat heard after it was forgotten) took the node out of
the router but kept it in ``Routing.prompt_keepers`` and in the router's pools' keepers
(``Pools.keeps``), where ``Routing.remove`` (a goodbye, a revocation, a node forgotten)
drops it: ids that may keep prompts, registered for free and left to go, stayed in memory
for good, and every model's ``keepers_for`` was made over them all again after each change.
A node registering again under the same id is judged afresh by its new registration
(``Routing.upsert``), whether it keeps prompts or not."""

from __future__ import annotations

import random

from LLM_Mesh.core.schemas import NodeRegistration
from LLM_Mesh.core.scoring import RouteRequest
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.routing import Routing
from tests.registry.helpers import ManualClock

MODEL = "m1"


def _register(table: NodeTable, routing: Routing, nid: str, keeps: bool) -> None:
    reg = NodeRegistration.model_validate({
        "node_id": nid, "url": f"http://{nid}", "models": [{"id": MODEL}],
        "max_concurrency": 2, "keeps_no_prompts": not keeps,
    })  # fmt: skip
    routing.upsert(table.register(reg))


def _routing() -> tuple[NodeTable, Routing]:
    clock = ManualClock()
    table = NodeTable(30.0, clock)
    return table, Routing(table, clock, rng=random.Random(1))


def test_a_node_synced_out_of_routing_is_no_longer_a_prompt_keeper() -> None:
    table, routing = _routing()
    for i in range(50):
        _register(table, routing, f"k{i}", keeps=True)
    _register(table, routing, "honest", keeps=False)
    assert len(routing.keepers_for(MODEL)) == 50
    for i in range(50):
        table.forget(f"k{i}")  # gone from the table; the router hears it through sync
        routing.sync(f"k{i}")
    assert routing.router.node("k0") is None
    # before the fix: 50 ids left in each (found 2026-12-06, stall35)
    assert routing.prompt_keepers == {}
    assert routing.router._index.keeps == {}
    assert routing.keepers_for(MODEL) == frozenset()
    assert routing.slots(MODEL) == routing.slots(MODEL, True) == 2


def test_a_node_synced_out_and_registered_again_is_judged_by_its_new_registration() -> None:
    table, routing = _routing()
    _register(table, routing, "k", keeps=True)
    table.forget("k")
    routing.sync("k")
    _register(table, routing, "k", keeps=False)  # the same id, keeping no prompts now
    assert routing.keepers_for(MODEL) == frozenset()
    assert routing.slots(MODEL) == 2  # its slots serve requests that did not opt in
    assert routing.pick(RouteRequest((MODEL,))).node_id == "k"
    table.forget("k")
    routing.sync("k")
    _register(table, routing, "k", keeps=True)  # and keeping them again: held out again
    assert routing.keepers_for(MODEL) == frozenset({"k"})
    assert routing.slots(MODEL) == 0
    assert routing.pick(RouteRequest((MODEL,))).node_id is None
    assert routing.pick(RouteRequest((MODEL,), keepers=True)).node_id == "k"
