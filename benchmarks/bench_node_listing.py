"""What ``GET /mesh/nodes`` costs the gateway's event loop with 500 nodes: built for every
request (as before 2026-12-03) beside shared until the mesh changes (``registry/node_listing.py``).

Method: the real registry app (``create_registry_app``, in-memory store, node messages
not signed, no node process behind the registrations: nothing is called) in this
process; ``--nodes`` nodes register (two models each) and heartbeat once, then GETs go
through the whole ASGI app (``httpx.ASGITransport``: middleware, route, the answer's
bytes) one at a time. Two legs, interleaved ``--rounds`` times so drift on a shared box
hits both alike: ``rebuilt`` (``Runtime.listing.ttl_s = 0``: every request builds the
listing, what every request did before) and ``shared`` (the default 1 s). Each leg sends
``--requests`` GETs from one client in a loop (what an anonymous client asking in a
loop does); reported per leg: the wall time per GET (p50, p99, mean) and the listings
built. The body's size is printed once. Run on a tree from before ``NodeListing`` (e.g.
an export of ``integ15``, ``PYTHONPATH`` set to it) it measures the one leg it has,
``before``: what every request cost then (FastAPI serializing the route's dict).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_node_listing.py [--nodes 500
        --requests 200 --rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.config import Settings
from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_auth import Grant, VerifiedRegistration
from LLM_Mesh.registry.runtime import Runtime


class _Unsigned:
    """Node messages taken unsigned (as the registry tests' ``TrustingNodeAuth``)."""

    def check_registration(self, headers: Mapping[str, str], body: bytes) -> VerifiedRegistration:
        return VerifiedRegistration(node_id=None, public_key=None, seq=0, operator_token=None)

    async def admit_registration(
        self, reg: VerifiedRegistration, check: Callable[[], Any] | None = None
    ) -> Grant:
        if check is not None:
            await check()
        return Grant(operator=None, seq=0)

    async def check_message(
        self, kind: MessageKind, target: str, headers: Mapping[str, str], body: bytes
    ) -> None:
        return None

    def known_signer(self, headers: Mapping[str, str]) -> str | None:
        return None  # no keys held: no node is known by its signature


async def _resolve(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]  # a global address; nothing is connected to


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-node-listing-"))
    settings = Settings(
        home=home, health_check_interval_s=3600.0, anonymous_rpm=None,
        allow_plain_http_nodes=True,  # its nodes are http://NODE.example
    )  # fmt: skip
    app = create_registry_app(
        settings,
        store=MemoryStore(),
        resolver=_resolve,
        node_auth=_Unsigned(),
        announce=lambda _key: None,
    )
    try:
        from LLM_Mesh.registry.node_listing import NodeListing
    except ImportError:  # a tree before 2026-12-03
        NodeListing = None  # type: ignore[assignment,misc]
    async with app.router.lifespan_context(app):
        rt = app.state.runtime
        assert isinstance(rt, Runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mesh") as client:
            for i in range(args.nodes):
                node = f"node-{i:04d}"
                reg = {
                    "node_id": node,
                    "url": f"http://{node}.example:8801",
                    "region": "eu-west",
                    "models": [
                        {"id": m, "engine": "sim", "simulated": True}
                        for m in ("mistral-7b", "gemma-3-270m")
                    ],
                    "max_concurrency": 4,
                    "max_queue": 8,
                }
                r = await client.post("/mesh/nodes", json=reg)
                assert r.status_code == 200, r.text
                hb = {"in_flight": i % 4, "queued": i % 3, "loaded_models": ["mistral-7b"]}
                r = await client.post(f"/mesh/nodes/{node}/heartbeat", json=hb)
                assert r.status_code == 200, r.text
            size = len((await client.get("/mesh/nodes")).content)
            print(f"{args.nodes} nodes: the public listing is {size / 1000:.0f} KB")
            # a tree without ``Runtime.listing`` (before 2026-12-03): its one way, "before"
            shares = hasattr(rt, "listing")
            legs = (("rebuilt", 0.0), ("shared", 1.0)) if shares else (("before", None),)
            times: dict[str, list[float]] = {leg: [] for leg, _ in legs}
            builds = dict.fromkeys(times, 0)
            for _ in range(args.rounds):
                for leg, ttl in legs:
                    if shares:  # a fresh cache each leg: its first GET builds
                        rt.listing = NodeListing(ttl_s=ttl)
                    for _ in range(args.requests):
                        t0 = time.perf_counter()
                        r = await client.get("/mesh/nodes")
                        times[leg].append(time.perf_counter() - t0)
                        assert r.status_code == 200
                    builds[leg] += rt.listing.builds if shares else args.requests
            for leg, xs in times.items():
                print(
                    f"{leg:8s} {len(xs)} GETs: p50 {_pct(xs, 0.5) * 1e3:.2f} ms, "
                    f"p99 {_pct(xs, 0.99) * 1e3:.2f} ms, mean {sum(xs) / len(xs) * 1e3:.2f} ms, "
                    f"listings built {builds[leg]}"
                )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=500)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(p.parse_args()))
