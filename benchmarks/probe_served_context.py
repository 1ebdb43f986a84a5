"""The parse stage's served context (``registry/listing.served``): what a request costs.

Since 2026-12-06 (context34) the parse stage holds a request to the context the model's
healthy nodes declare, not the catalog's figure alone, so it reads the model's nodes:
one pass over them a call (``listing.served``), or the per-runtime cache the parse stage
uses (``listing.ServedContexts``: again only after the node table changed or a second
passed). Both measured in one run, interleaved, on a node table of 1, 100 and 1,000
nodes hosting gemma-3-270m, each declaring a context of 4,096 (below the catalog's 32,768:
no node ends the pass early). No node runs; nothing is simulated. Main does neither (it
read the catalog's figure, a constant): the cached figure is what a request pays more.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_served_context.py``
"""

from __future__ import annotations

import timeit

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.schemas import HostedModel, NodeRegistration
from LLM_Mesh.registry.listing import ServedContexts, served
from LLM_Mesh.registry.node_table import NodeTable

MODEL = "gemma-3-270m"


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def table(nodes: int) -> NodeTable:
    t = NodeTable(30.0, Clock())
    hosted = [HostedModel(id=MODEL, context_length=4096)]
    for i in range(nodes):
        t.register(NodeRegistration(node_id=f"n{i}", url=f"http://n{i}:8801", models=hosted))
    return t


def best_us(fn: object, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    spec = get_spec(MODEL)
    assert spec is not None
    print(f"{'nodes':>6} {'one pass (us)':>14} {'cached (us)':>12} {'pass / cached':>14}")
    for nodes in (1, 100, 1000):
        t, cache = table(nodes), ServedContexts()
        assert served(t, spec) == cache.get(t, spec) == 4096
        number = 20_000 // max(1, nodes // 10) if nodes > 10 else 20_000
        passes = best_us(lambda t=t: served(t, spec), number)
        cached = best_us(lambda t=t, c=cache: c.get(t, spec), number)
        print(f"{nodes:>6} {passes:>14.2f} {cached:>12.2f} {passes / cached:>13.0f}x")


if __name__ == "__main__":
    main()
