"""What one refused registration costs its sender and the registry (docs/security.md,
attack35b: unknown operator tokens in ``POST /mesh/nodes``).

Method: in process, the registry app with its real ``SignedNodeAuth`` on a ``MemoryStore``
(``tests/registry/test_node_auth.mesh``, ASGI: no socket time). The sender's Ed25519
signature of a 600-byte message and the registry's verify (``timeit``, best of 5 × 2,000);
then one signed registration with an unknown operator token sent ``--tries`` times unchanged
(best of 5 rounds): from loopback (never counted: the 401 path, a store read and a signed
refusal each) and from another machine (past the first 30 a minute: this tree's 429, or the
401 path again where nothing bounds it). Store reads of the token are counted.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_registration_replay.py [--tries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import OperatorRecord
from tests.registry.test_node_auth import Wall, make_node, mesh, operator


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.token_reads = 0

    async def operator_by_token(self, token_hash: str) -> OperatorRecord | None:
        self.token_reads += 1
        return await super().operator_by_token(token_hash)


def _per_call_us(fn: object) -> float:
    return min(timeit.repeat(fn, number=2000, repeat=5)) / 2000 * 1e6  # type: ignore[arg-type]


async def _rounds(tries: int, peer: tuple[str, int]) -> tuple[float, set[int], int]:
    store, wall = CountingStore(), Wall()
    await operator(store)
    node = make_node(wall, "lmo_guess")
    body = node.body()
    sent = node.reg_headers(body)
    with tempfile.TemporaryDirectory() as d:
        async with await mesh(Path(d), store, wall) as h:
            transport = httpx.ASGITransport(app=h.app, client=peer)
            async with httpx.AsyncClient(transport=transport, base_url="http://mesh") as c:
                for _ in range(40):  # warm-up, and past a bound of 30 a minute
                    await c.post("/mesh/nodes", content=body, headers=sent)
                best, codes = float("inf"), set()
                for _ in range(5):
                    t = time.perf_counter()
                    for _ in range(tries):
                        codes.add(
                            (await c.post("/mesh/nodes", content=body, headers=sent)).status_code
                        )
                    best = min(best, (time.perf_counter() - t) / tries * 1e6)
    return best, codes, store.token_reads


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tries", type=int, default=200)
    args = ap.parse_args()
    key = Ed25519PrivateKey.generate()
    data = b"x" * 600
    sig, pub = key.sign(data), key.public_key()
    print(f"sender's Ed25519 sign: {_per_call_us(lambda: key.sign(data)):.0f} us")
    print(f"registry's Ed25519 verify: {_per_call_us(lambda: pub.verify(sig, data)):.0f} us")
    for name, peer in (("loopback", ("127.0.0.1", 1)), ("another machine", ("203.0.113.5", 1))):
        us, codes, reads = asyncio.run(_rounds(args.tries, peer))
        print(f"one replayed registration from {name}: {us:.0f} us, answers {sorted(codes)}, "
              f"token reads {reads} of {40 + 5 * args.tries} requests")  # fmt: skip


if __name__ == "__main__":
    main()
