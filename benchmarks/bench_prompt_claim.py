"""A stream's signed prompt count: the node's signature and the gateway's check, one run.

Method: in this process, the two calls a stream now makes once (``core/prompt_count.py``,
since 2026-12-06, money36): ``node`` — the node's ``Generation.said_headers`` work,
``NodeReceiptSigner.sign_prompt_count`` (the canonical bytes, one Ed25519 signature by
libsodium, base64url) and ``claim_header``; ``gateway`` — ``checked_claim`` of that header
over the gateway's own values with a warm ``NodeKeys`` (as the gateway's: a node's key is
decoded once), i.e. the split, base64url decode, the bytes, one Ed25519 verify. Each timed
over ``--iterations`` calls with ``time.process_time`` in ``--repeats`` rounds, the two
alternating first; every round checks the header verifies. Reported: µs per call, best and
median over rounds.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_prompt_claim.py [--iterations 3000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from _common import machine_line, write_json
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.prompt_count import checked_claim, claim_header
from LLM_Mesh.core.receipt import NodeReceiptSigner
from LLM_Mesh.core.receipt_check import NodeKeys

REGISTRY, REQUEST, MODEL, COUNT = "registry-0123456789abcdef", "req-0123456789abcdef0123", "gemma-3-270m", 3009  # fmt: skip


def _timed(f: Callable[[], object], n: int) -> float:
    clock = time.process_time
    t0 = clock()
    for _ in range(n):
        f()
    return (clock() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    signer, keys = NodeReceiptSigner(Ed25519PrivateKey.generate()), NodeKeys()

    def node() -> str:
        sig = signer.sign_prompt_count(registry_id=REGISTRY, request_id=REQUEST, model=MODEL,
                                       prompt_tokens=COUNT)  # fmt: skip
        return claim_header(signer.node_key, sig)

    header = node()

    def gateway() -> object:
        return checked_claim(COUNT, header, registry_id=REGISTRY, node_id=signer.node_id,
                             request_id=REQUEST, model=MODEL, keys=keys)  # fmt: skip

    print(machine_line())
    ops = {"node": node, "gateway": gateway}
    rounds: dict[str, list[float]] = {k: [] for k in ops}
    for r in range(args.repeats):
        if gateway() is None:
            raise SystemExit("the header does not verify: stop")
        for name in list(ops) if r % 2 == 0 else list(ops)[::-1]:
            rounds[name].append(_timed(ops[name], args.iterations))
    out = {}
    for name, values in rounds.items():
        out[name] = {"best_us": min(values), "median_us": statistics.median(values)}
        print(f"{name:8} best {min(values):7.1f} µs  median {statistics.median(values):7.1f} µs")
    print(f"header: {len(header)} characters")
    print(write_json("prompt_claim", {"iterations": args.iterations, "results": out}))


if __name__ == "__main__":
    main()
