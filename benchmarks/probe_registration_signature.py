"""What one registration whose signature does not verify costs the registry (docs/security.md,
trust36), and a heartbeat's forged signature for a registered node (not bounded: what remains).

Method: in process, the registry app with its real ``SignedNodeAuth`` on a ``MemoryStore``
(``tests/registry/test_node_auth.mesh``, ASGI: no socket time). The registry's Ed25519
verify alone (``timeit``, best of 5 × 2,000); then one registration with a forged signature
sent ``--tries`` times (best of 5 rounds) from loopback (never counted: the 401 path, a
verify each) and from another machine (past the first 30 a minute: this tree's 429, or the
401 path where nothing bounds it); then a forged heartbeat for a registered node's id from
another machine. Verifies are counted.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_registration_signature.py [--tries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import HDR_SIGNATURE, MessageKind
from LLM_Mesh.registry import node_auth
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.test_node_auth import Wall, make_node, mesh, operator

VERIFIES = [0]
_real = node_auth.verify_signed


def _counting(*args: Any, **kwargs: Any) -> None:
    VERIFIES[0] += 1
    _real(*args, **kwargs)


node_auth.verify_signed = _counting  # type: ignore[assignment]


def _forged(headers: dict[str, str]) -> dict[str, str]:
    sig = headers[HDR_SIGNATURE]
    return {**headers, HDR_SIGNATURE: ("B" if sig[0] != "B" else "C") + sig[1:]}


async def _rounds(
    tries: int, peer: tuple[str, int], heartbeat: bool, accepted: bool = False
) -> tuple[float, set[int], int]:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    with tempfile.TemporaryDirectory() as d:
        async with await mesh(Path(d), store, wall) as h:
            body = node.body()
            assert (
                await h.client.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
            ).status_code == 200
            if heartbeat:
                path = f"/mesh/nodes/{node.node_id}/heartbeat"
                body = json.dumps({"in_flight": 1}).encode()
                sent = _forged(node.headers(MessageKind.HEARTBEAT, body))
            else:
                path, body = "/mesh/nodes", node.body()
                sent = _forged(node.reg_headers(body))
            transport = httpx.ASGITransport(app=h.app, client=peer)
            async with httpx.AsyncClient(transport=transport, base_url="http://mesh") as c:
                for _ in range(40):  # warm-up, and past a bound of 30 a minute
                    h_w = node.reg_headers(body) if accepted else sent
                    await c.post(path, content=body, headers=h_w)
                VERIFIES[0] = 0
                best, codes = float("inf"), set()
                for _ in range(5):
                    signed = [node.reg_headers(body) for _ in range(tries)] if accepted else []
                    t = time.perf_counter()
                    for i in range(tries):
                        h_i = signed[i] if accepted else sent  # signed before the clock runs
                        codes.add((await c.post(path, content=body, headers=h_i)).status_code)
                    best = min(best, (time.perf_counter() - t) / tries * 1e6)
    return best, codes, VERIFIES[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tries", type=int, default=200)
    args = ap.parse_args()
    key = Ed25519PrivateKey.generate()
    data = b"x" * 600
    sig, pub = key.sign(data), key.public_key()
    best = min(timeit.repeat(lambda: pub.verify(sig, data), number=2000, repeat=5))
    print(f"registry's Ed25519 verify: {best / 2000 * 1e6:.0f} us")
    for what, hb in (("registration", False), ("heartbeat", True)):
        for name, peer in (("loopback", ("127.0.0.1", 1)), ("another machine", ("203.0.113.5", 1))):
            us, codes, n = asyncio.run(_rounds(args.tries, peer, hb))
            print(f"one forged {what} from {name}: {us:.0f} us, answers {sorted(codes)}, "
                  f"verifies {n} of {5 * args.tries} timed requests")  # fmt: skip
    us, codes, n = asyncio.run(_rounds(args.tries, ("203.0.113.5", 1), False, accepted=True))
    print(f"one accepted re-registration from another machine: {us:.0f} us, answers "
          f"{sorted(codes)}, verifies {n} of {5 * args.tries} timed requests")  # fmt: skip


if __name__ == "__main__":
    main()
