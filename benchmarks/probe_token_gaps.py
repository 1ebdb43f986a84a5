"""The real gemma-3-270m's gaps between streamed tokens, on this box as loaded as it is.

Method: the node's own engine (``node/engines/llama_cpp.LlamaCppEngine``, n_ctx 2048, every
core, as a node runs it) streams ``--streams`` chat answers (``--max-tokens`` each, a few
prompts in turn, temperature 0.7), ``--concurrent`` at a time (the engine serves them as a
node does: its pool's slots); the clock (``time.monotonic``) is read as each batch of deltas
with text arrives (what the gateway's stream reader sees, less the network). Per stream:
its first token's time, its longest gap between batches with text after that, and its
rate (tokens after the first over the time from the first to the last). Printed: each
stream, then the longest gap of all and the slowest rate, with ``uptime``'s load before and
after. What an honest node's stream looks like to the stall rule (``core/prompt_count``: 4 s
of quiet) and the floor (``core/stream_guard``: 0.25 tokens a second), not a throughput
figure.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_token_gaps.py [--streams 12] [--max-tokens 128] [--concurrent 1]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import threading
import time
from pathlib import Path

from _common import machine_line, write_json

from LLM_Mesh.config import Settings
from LLM_Mesh.node.engines.base import GenerationRequest
from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
from LLM_Mesh.node.model_files import resolve_model

MODEL = "gemma-3-270m"
PROMPTS = (
    "Write a short story about a lighthouse keeper.",
    "Explain how a hash table works, with an example in Python.",
    "List twenty countries and their capitals.",
    "Describe the water cycle for a ten year old.",
)


async def one(engine: LlamaCppEngine, i: int, max_tokens: int) -> dict[str, float]:
    req = GenerationRequest(
        kind="chat", model=MODEL, max_tokens=max_tokens, temperature=0.7,
        messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
    )  # fmt: skip
    start = time.monotonic()
    seen: list[tuple[float, int]] = []
    async for batch in engine.stream_batches(req, threading.Event()):
        n = sum(1 for d in batch if d.text)
        if n:
            seen.append((time.monotonic(), n))
    first = seen[0][0] if seen else time.monotonic()
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    tokens = sum(n for _, n in seen[1:])
    span = seen[-1][0] - first if seen else 0.0
    return {
        "ttft_s": first - start,
        "max_gap_s": max(gaps, default=0.0),
        "tokens": float(tokens + (seen[0][1] if seen else 0)),
        "rate_tps": tokens / span if span > 0 else 0.0,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--concurrent", type=int, default=1)
    args = ap.parse_args()
    model = resolve_model(MODEL, Settings(home=Path("/nonexistent-llm-mesh-home")))
    engine = LlamaCppEngine([model], n_ctx=2048)
    await engine.start()
    print(machine_line(), "| load before:", os.getloadavg())
    results: list[dict[str, float]] = []
    sem = asyncio.Semaphore(args.concurrent)

    async def run(i: int) -> None:
        async with sem:
            r = await one(engine, i, args.max_tokens)
        results.append(r)
        print(f"stream {i:3}: ttft {r['ttft_s']:6.2f} s  longest gap {r['max_gap_s']:6.3f} s  "
              f"{r['rate_tps']:6.1f} tokens/s  ({r['tokens']:.0f} tokens)", flush=True)  # fmt: skip

    await asyncio.gather(*(run(i) for i in range(args.streams)))
    await engine.close()
    worst = max(r["max_gap_s"] for r in results)
    slowest = min(r["rate_tps"] for r in results if r["tokens"] > 1)
    print(f"longest gap of all: {worst:.3f} s; slowest stream: {slowest:.1f} tokens/s; "
          f"longest first token: {max(r['ttft_s'] for r in results):.2f} s; "
          f"load after: {os.getloadavg()}")  # fmt: skip
    print(write_json("token_gaps", {"args": vars(args), "streams": results}))


if __name__ == "__main__":
    asyncio.run(main())
