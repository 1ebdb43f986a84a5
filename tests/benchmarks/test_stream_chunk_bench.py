"""``benchmarks/bench_stream_chunk.py``'s child runs on this tree with tiny counts: every leg
timed, every stream's client bytes hashed (what the benchmark compares across checkouts)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_stream_chunk_times_every_leg_of_this_tree() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_stream_chunk
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    got = bench_stream_chunk.one(str(ROOT), {"tokens": [3, 12], "streams": 2})
    legs = [f"{leg} {kind} {n}" for leg in ("read", "stream") for kind in ("completion", "chat")
            for n in (3, 12)]  # fmt: skip
    hashed = [f"bytes {kind} {n}" for kind in ("completion", "chat") for n in (3, 12)]
    assert sorted(got) == sorted(legs + hashed)  # (the hashes were never asserted present)
    assert all(float(str(got[k])) > 0 for k in legs), got
    assert all(len(str(got[k])) == 64 for k in hashed), got
