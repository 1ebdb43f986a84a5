"""Request limits on hostile bodies near 1 MiB: how long the gateway takes to refuse them.

Issue 8 asks that a request over a limit be refused, before any node is contacted, in
under 50 ms. The costly part is judging the body, which the gateway's parse stage does
(``registry/parse.parse_json_object``: size, UTF-8, nesting and the number of arrays and
objects counted on the raw bytes, then ``json.loads``), then the counts (``check_body``).
Each body is judged ``--rounds`` times with the default limits, and again with
``max_json_containers`` set out of reach (what the gateway did before that limit): the
ratio is the limit's effect, in one run.

    .venv/bin/python benchmarks/bench_limits.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace

from LLM_Mesh.core.limits import RequestLimits, check_body
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.parse import parse_json_object


def bodies() -> dict[str, bytes]:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi there"}] * 20_000}
    return {
        "16,000 chains 30 deep": b"[" + b",".join([b"[" * 30 + b"]" * 30] * 16_000) + b"]",
        "300,000 empty arrays": b'{"a": [' + b",".join([b"[]"] * 300_000) + b"]}",
        "20,000 messages": json.dumps(chat).encode(),
        "500,000 nested brackets": b"[" * 500_000 + b"]" * 500_000,
        "1 MiB of content": json.dumps({"model": "m", "prompt": "x" * (1024 * 1024 - 40)}).encode(),
    }


def judge(raw: bytes, limits: RequestLimits) -> str:
    """The gateway's verdict on ``raw``: the limit or error that refuses it, or ``ok``."""
    try:
        body = parse_json_object(raw, limits)
    except MeshError as exc:
        return str(exc.extra.get("limit") or type(exc).__name__)
    over = check_body(body, limits)
    return over.limit if over is not None else "ok"


def timed(raw: bytes, limits: RequestLimits, rounds: int) -> tuple[str, list[float]]:
    times, verdict = [], ""
    for _ in range(rounds):
        t0 = time.perf_counter()
        verdict = judge(raw, limits)
        times.append((time.perf_counter() - t0) * 1e3)
    return verdict, times


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    limits = RequestLimits()
    without = replace(limits, max_json_containers=10**9)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds per body and setting")
    print(f"{'body':<25}{'bytes':>10} | {'verdict':<20}{'p50 ms':>8}{'max ms':>8} | "
          f"{'no container limit':<20}{'p50 ms':>8}{'max ms':>8}")  # fmt: skip
    for name, raw in bodies().items():
        v1, t1 = timed(raw, limits, args.rounds)
        v0, t0 = timed(raw, without, args.rounds)
        print(f"{name:<25}{len(raw):>10,} | {v1:<20}{statistics.median(t1):>8.1f}{max(t1):>8.1f} | "
              f"{v0:<20}{statistics.median(t0):>8.1f}{max(t0):>8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
