"""Run every benchmark in ``benchmarks/``, one after another (never two at once).

    .venv/bin/python benchmarks/run_all.py [--only gateway,throughput] [--quick]

``make bench`` calls this. Each benchmark prints its own method and results;
the JSON ones also write ``bench-results/*.json`` (git-ignored). ``--quick``
passes smaller counts (a smoke run, not figures to quote). Exit status: the
number of benchmarks that failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, full args, quick args); in the order they run. Any other
# benchmarks/bench_*.py is found and run after these with no arguments.
KNOWN: dict[str, tuple[str, list[str], list[str]]] = {
    "routing": ("bench_routing.py", [], ["--iterations", "20000"]),
    "limits": ("bench_limits.py", [], ["--rounds", "3"]),
    "fleet": ("bench_fleet.py", ["--seed", "1"], ["--seed", "1"]),
    "failover": ("bench_failover.py", [], ["--seconds", "10", "--kill-at", "4"]),
    "gateway": ("bench_gateway.py", [], ["--sequential", "200", "--concurrent", "400"]),
    "gateway_auth": ("bench_gateway_auth.py", [], ["--iterations", "500", "--repeats", "2"]),
    "receipt_ed25519": ("bench_receipt_ed25519.py", [], ["--iterations", "300", "--repeats", "2"]),
    "throughput": ("bench_throughput.py", [], ["--rounds", "2", "--max-tokens", "32"]),
    "ledger": ("bench_ledger.py", [], ["--entries", "20000", "--appends", "200"]),
    "dashboard": ("bench_dashboard.py", [], ["--requests", "300", "--chunks", "3"]),
    "receipts": (
        "bench_receipts.py",
        [],
        ["--iterations", "100", "--repeat", "2", "--requests", "100"],
    ),
    "rewards": ("bench_rewards.py", [], ["--beats", "400", "--nodes", "200"]),
    "metrics": ("bench_metrics.py", [], ["--sequential", "300", "--concurrent", "300"]),
    "settlement": (
        "bench_settlement.py",
        [],
        ["--sequential", "300", "--concurrent", "300", "--settle-requests", "500"],
    ),
    "load_nodes": ("bench_load_nodes.py", [], ["--rows", "100000", "--rounds", "3"]),
    # 30 min is the figure (run it alone); here 10 min: past the 5-min settle point
    "rss": (
        "bench_rss.py",
        ["--minutes", "10"],
        ["--minutes", "1", "--no-litellm", "--rate", "50"],
    ),
}


def discover() -> dict[str, tuple[str, list[str], list[str]]]:
    found = {n: v for n, v in KNOWN.items() if (HERE / v[0]).exists()}
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if name not in found:
            found[name] = (path.name, [], [])
    return found


BENCHMARKS = discover()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated names: " + ",".join(BENCHMARKS))
    ap.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    args = ap.parse_args()
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failed: list[str] = []
    timings: list[tuple[str, float, int]] = []
    for name in names:
        script, full, quick = BENCHMARKS[name]
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n{'=' * 78}\n== {name}: {' '.join(cmd)}\n{'=' * 78}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(cmd, cwd=HERE.parent)
        timings.append((name, time.monotonic() - t0, rc))
        if rc != 0:
            failed.append(name)
    print(f"\n{'=' * 78}")
    for name, secs, rc in timings:
        print(f"{name:<12} {'ok' if rc == 0 else f'FAILED (exit {rc})':<16} {secs:7.1f} s")
    return len(failed)


if __name__ == "__main__":
    sys.exit(main())
