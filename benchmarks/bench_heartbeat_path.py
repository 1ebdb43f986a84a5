"""The replica's CPU per heartbeat in the mesh's own code, without HTTP or a database.

One registry (the real app and ``SignedNodeAuth`` on a ``MemoryStore``: the sequence
numbers still go through the batcher) with one registered node (simulated, nothing
behind it); ``--n`` signed heartbeats, each handed to ``api.absorb_heartbeat`` (what both
the hot route and the FastAPI route run) as ASGI headers; its CPU time per heartbeat
(``process_time``), then the parts one by one: header parsing, the Ed25519 check, the
body's pydantic parse, the node table, the router, the batched sequence number.
What is left of a real replica's CPU per heartbeat (``bench_heartbeats.py``) is the HTTP
server's (uvicorn, the event loop) and the database batches'.

    .venv/bin/python benchmarks/bench_heartbeat_path.py [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import machine_line


async def run(n: int) -> dict[str, float]:
    """CPU µs per heartbeat and per part; the registry's home a temporary folder, removed
    afterwards (also on an exception or Ctrl-C)."""
    with tempfile.TemporaryDirectory(prefix="llm-mesh-bench-hb-path-") as home:
        return await _measure(n, Path(home))


async def _measure(n: int, home: Path) -> dict[str, float]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from LLM_Mesh.config import Settings
    from LLM_Mesh.core.identity import MessageKind, NodeSigner, parse_signed, verify_signed
    from LLM_Mesh.core.schemas import Heartbeat
    from LLM_Mesh.registry.api import absorb_heartbeat
    from LLM_Mesh.registry.app import create_registry_app
    from LLM_Mesh.registry.hot_heartbeat import AsgiHeaders
    from LLM_Mesh.registry.memory_store import MemoryStore
    from LLM_Mesh.registry.ports import NodeRecord

    signer = NodeSigner(Ed25519PrivateKey.generate(), time.time)
    node_id = signer.node_id
    store = MemoryStore()
    now = datetime.now(timezone.utc)
    await store.claim_node_key(node_id, signer.public_key, "bench", 0, now)
    models = [{"id": "mistral-7b", "engine": "sim", "simulated": True}]
    await store.upsert_node(NodeRecord(node_id, "http://10.0.0.1:8801", None, models, {}, 4, 8,
                                       "0.1.0", "online", now, now))  # fmt: skip
    settings = Settings(home=home, admin_key="lma_bench", anonymous_rpm=None,
                        allow_private_nodes=True, allow_plain_http_nodes=True)  # fmt: skip
    app = create_registry_app(settings, store=store, announce=lambda _k: None)
    body = json.dumps({"in_flight": 0, "queued": 0, "state": "online"}).encode()
    extra = [(b"host", b"127.0.0.1"), (b"user-agent", b"aiohttp"), (b"accept", b"*/*"),
             (b"content-type", b"application/json"), (b"content-length", b"40")]  # fmt: skip
    raws = []
    for _ in range(n):
        hd = signer.headers(MessageKind.HEARTBEAT, body)
        raws.append([(k.lower().encode(), v.encode()) for k, v in hd.items()] + extra)
    out: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        rt = app.state.runtime
        # one node's beats back to back would pass its bound of valid beats a minute
        # (registry/valid_rates.py, limits44): the runtime's clock (read by that count
        # alone on this path) moves a minute a read, so the whole path, count included, is timed
        minutes = itertools.count(rt.clock(), 60.0)
        rt.clock = lambda: next(minutes)
        t0 = time.process_time()
        for raw in raws:
            await absorb_heartbeat(rt, node_id, AsgiHeaders(raw), body)
        out["absorb_heartbeat"] = (time.process_time() - t0) / n * 1e6
        key = rt.node_auth._keys[node_id]
        msg = parse_signed(AsgiHeaders(raws[0]))
        hb = Heartbeat.model_validate_json(body)

        def part(name: str, fn: Callable[[Any], Any]) -> None:
            t = time.process_time()
            for raw in raws:
                fn(raw)
            out[name] = (time.process_time() - t) / n * 1e6

        part("headers + parse_signed", lambda raw: parse_signed(AsgiHeaders(raw)))
        part("verify_signed (Ed25519)", lambda raw: verify_signed(
            msg, key, MessageKind.HEARTBEAT, node_id, body, msg.ts_ms / 1000))  # fmt: skip
        part("pydantic Heartbeat", lambda raw: Heartbeat.model_validate_json(body))
        part("table.heartbeat", lambda raw: rt.table.heartbeat(node_id, hb))
        part("routing.heartbeat", lambda raw: rt.routing.heartbeat(node_id, hb))
        seq = 10**17
        t = time.process_time()
        for i in range(n):
            await rt.node_auth.store.advance_node_seq(node_id, seq + i)
        out["advance_node_seq (batcher, memory store)"] = (time.process_time() - t) / n * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args(argv)
    res = asyncio.run(run(args.n))
    print(f"CPU µs per heartbeat — {machine_line()}")
    for name, us in res.items():
        print(f"| {name} | {us:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
