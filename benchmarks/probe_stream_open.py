"""The gateway's CPU as a node's stream opens with a signed prompt count, tree against tree.

Method (ttft37, issue 7): for each checkout (this one, and ``--baseline-tree DIR``), a child
process (``PYTHONPATH`` = that checkout) makes ``--streams`` ``NodeStream`` objects over a
stand-in exchange (as ``bench_stream_chunk.py``'s: no socket, no node) whose node head says
a prompt count signed by a real ``NodeReceiptSigner`` for this registry, request and model,
with a real ``NodeKeys`` (warm: one key), and times ``NodeStream._part`` on each (what the
gateway runs between a node's head and its own head: the money36 check of the count was
one Ed25519 verify there until ttft37) by the thread's CPU (``time.thread_time_ns``), µs a
stream. ``--rounds`` rounds, the checkouts alternating; printed: each round's figures, and
the medians. A tight loop: hot caches (on the way the same code runs colder).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_stream_open.py [--baseline-tree DIR]
        [--streams 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import sys, time
from types import SimpleNamespace
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from LLM_Mesh.core.prompt_count import HDR_PROMPT_SIGNATURE, HDR_PROMPT_TOKENS, claim_header
from LLM_Mesh.core.receipt import NodeReceiptSigner
from LLM_Mesh.core.receipt_check import NodeKeys
from LLM_Mesh.core.stream_guard import SharedTime, StreamFloor
from LLM_Mesh.registry.job import Tally
from LLM_Mesh.registry.send_stream import NodeStream

signer = NodeReceiptSigner(Ed25519PrivateKey.from_private_bytes(b"k" * 32))
REG, REQ, MODEL = "reg-bench", "req-9d1ffe0909a14a0a73a29091f98f646d", "gemma-3-270m"
sig = signer.sign_prompt_count(registry_id=REG, request_id=REQ, model=MODEL, prompt_tokens=6)
head = {HDR_PROMPT_TOKENS: "6", HDR_PROMPT_SIGNATURE: claim_header(signer.node_key, sig)}
keys = NodeKeys()


class Ex:
    def __init__(self):
        self.tally = Tally()
        self.tally.node_id = signer.node_id
        self.att = None
        self.job = SimpleNamespace(token_limit=1, max_tokens=1, choices=1, stop_bytes=0,
                                   model=MODEL, echo=False, text_only=False, forwarded_id=REQ)
        self.rt = SimpleNamespace(clock=time.monotonic, stream_floor=StreamFloor(),
                                  signer=SimpleNamespace(registry_id=REG), node_keys=keys,
                                  metrics=None)
        self.routing = SimpleNamespace(shares=SharedTime())


n = int(sys.argv[1])
streams = [NodeStream(Ex()) for _ in range(n)]
for s in streams:
    s.resp = SimpleNamespace(headers=head)
t0 = time.thread_time_ns()
for s in streams:
    s._part()
print((time.thread_time_ns() - t0) / n / 1000)
"""


def one(tree: str, streams: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(streams)], capture_output=True, text=True,
        timeout=300, env={**os.environ, "PYTHONPATH": tree}, cwd=tree, check=True,
    )  # fmt: skip
    return float(done.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--baseline-tree", default=None, help="another checkout, as 'before'")
    ap.add_argument("--streams", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    trees = {"this": str(Path(__file__).resolve().parents[1])}
    if args.baseline_tree:
        trees["before"] = str(Path(args.baseline_tree).resolve())
    got: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(args.rounds):
        names = list(trees) if r % 2 == 0 else list(reversed(trees))
        for name in names:
            got[name].append(one(trees[name], args.streams))
        print(f"round {r + 1}: " + ", ".join(f"{n} {got[n][-1]:.2f} µs" for n in trees))
    for name, values in got.items():
        print(f"{name}: NodeStream._part median {statistics.median(values):.2f} µs a stream "
              f"({min(values):.2f}-{max(values):.2f}), {trees[name]}")  # fmt: skip


if __name__ == "__main__":
    main()
