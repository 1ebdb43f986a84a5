"""A request's line and metrics in process: CPU µs a call, per checkout, in one run.

Method: for each checkout given, a child process (``PYTHONPATH`` = that checkout) sets up
logging as ``registry serve`` does (``logs.setup_logging``, text or JSON, its stderr a
file in a throw-away folder) and calls, ``--calls`` times each: ``log_request`` on the
gateway's request logger with a gateway line's fields (an answered request's), and
``GatewayMetrics.request`` with an answered request's values (the metrics of a
``GatewayMetrics`` on its own registry; no mesh, no node: nothing SIMULATED, nothing on a
socket); ``request_metrics``: a request's whole metrics (its attempt's end, its failover
stop, its end), what still waits at the end counted in the time. Thread CPU (``time.thread_time_ns``) a call. ``--rounds`` rounds, the checkouts'
order alternating; printed per checkout and measure: the median and the lowest round.
A tight loop keeps the code and data in the CPU's caches: in the gateway the same calls
cost ~2–3× this (``probe_gateway_stages.py``); read the figures as a comparison.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_request_line.py TREE [TREE ...]
        [--calls 20000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import machine_line

FIELDS = {
    "request_id": "req-9d1ffe0909a14a0a73a29091f98f646d", "path": "/v1/chat/completions",
    "model": "mistral-7b", "stream": False, "node": "node-hkpnyukvystgni5fgwqe6g2voz",
    "status": 200, "outcome": "ok", "code": None, "attempts": 1, "latency_ms": 14.109,
    "ttft_ms": 14.081, "prompt_tokens": 2, "completion_tokens": 1, "cost": 20,
}  # fmt: skip

CHILD = """
import json, logging, sys, time
from unittest.mock import MagicMock
from LLM_Mesh import logs
from LLM_Mesh.registry.metrics import GatewayMetrics
fields, calls, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
result = {}
for fmt in ("text", "json"):
    sys.stderr = open(f"{out}.{fmt}.log", "w", buffering=1)  # line-buffered, as a file's is
    logging.getLogger().handlers.clear()
    logs.setup_logging(False, fmt)
    logger = logging.getLogger("LLM_Mesh.requests.gateway")
    t = time.thread_time_ns()
    for _ in range(calls):
        logs.log_request(logger, fields)
    result["line_" + fmt] = (time.thread_time_ns() - t) / calls / 1e3
m = GatewayMetrics(MagicMock(), MagicMock(), MagicMock())
t = time.thread_time_ns()
for _ in range(calls):
    m.request("mistral-7b", "node-1", "ok", "", latency_s=0.0141, ttft_s=0.0140,
              prompt_tokens=2, completion_tokens=1)
result["metrics"] = (time.thread_time_ns() - t) / calls / 1e3
from LLM_Mesh.core.failover import Action, Step, Stop
from LLM_Mesh.core.route_types import Outcome
m = GatewayMetrics(MagicMock(), MagicMock(), MagicMock())
step = Step("node-1", Outcome.SUCCESS, Action.STOP, Stop.SUCCEEDED)
t = time.thread_time_ns()
for _ in range(calls):
    m.attempt("node-1", Outcome.SUCCESS, False)
    m.step(step)
    m.request("mistral-7b", "node-1", "ok", "", latency_s=0.0141, ttft_s=0.0140,
              prompt_tokens=2, completion_tokens=1)
if m._pending is not None:
    m._count_pending()  # what still waits counted too
result["request_metrics"] = (time.thread_time_ns() - t) / calls / 1e3
print(json.dumps(result))
"""


def one(tree: str, calls: int, out: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(FIELDS), str(calls), out],
        env=env, check=True, capture_output=True, text=True, cwd=tree,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    print(__doc__.splitlines()[0])
    print(machine_line())
    runs: dict[str, list[dict[str, float]]] = {t: [] for t in args.trees}
    with tempfile.TemporaryDirectory(prefix="bench-request-line-") as tmp:
        for i in range(args.rounds):
            for tree in args.trees if i % 2 == 0 else list(reversed(args.trees)):
                runs[tree].append(one(tree, args.calls, str(Path(tmp) / f"r{i}")))
    print(machine_line())
    for tree, results in runs.items():
        cells = []
        for key in ("line_text", "line_json", "metrics", "request_metrics"):
            values = [r[key] for r in results]
            cells.append(f"{key} {statistics.median(values):.2f} (lowest {min(values):.2f})")
        print(f"{tree}: µs a call, median of {args.rounds} rounds: " + ", ".join(cells))


if __name__ == "__main__":
    main()
