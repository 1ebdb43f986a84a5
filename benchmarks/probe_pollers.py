"""CPU of an idle gateway, and of each of its background loops (no node, no request).

Each variant runs ``llm-mesh registry serve``'s own ``serve()`` (uvicorn, uvloop, the default
SQLite store in a fresh ``$LLM_MESH_HOME``) in a child process with one background loop
left out (its ``start`` made a no-op), waits until it accepts connections and then
``--warmup-s``, then reads the process's CPU
time (``time.process_time``: every thread, user + system) over ``--seconds``. ``all``
leaves every loop running, ``none`` leaves them all out; a loop's cost is ``all`` minus the
variant without it. Variants run interleaved, ``--repeat`` times each:

    .venv/bin/python benchmarks/probe_pollers.py --seconds 20 --repeat 2 [--tree DIR]

``--tree`` runs the children with ``DIR`` first on ``PYTHONPATH`` (another checkout).
Only CPU time is reported: the box's load changes wall clocks, not much the CPU a loop spends.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# variant -> the (module, class, method) made a no-op
LOOPS: dict[str, list[tuple[str, str, str]]] = {
    "replica_beat": [("LLM_Mesh.registry.replicas", "ReplicaBeat", "start")],
    "node_sync": [("LLM_Mesh.registry.node_sync", "NodeSync", "start")],
    "revocations": [("LLM_Mesh.registry.revocations", "RevocationWatcher", "start")],
    "api_keys": [("LLM_Mesh.registry.api_keys", "KeyCache", "start")],
    "quality": [("LLM_Mesh.registry.quality", "QualityWatcher", "start")],
    "canary": [("LLM_Mesh.registry.canary_scheduler", "CanaryScheduler", "start")],
    "health": [("LLM_Mesh.registry.health", "HealthChecker", "start")],
    "request_writer": [("LLM_Mesh.registry.request_log", "RequestWriter", "start")],
    "checkpointer": [("LLM_Mesh.registry.ledger_signer", "Checkpointer", "start")],
    "settlement": [("LLM_Mesh.registry.settlement", "Settlement", "start")],
    "settler": [("LLM_Mesh.registry.settlement", "Settlement", "_settle_loop")],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child(variant: str, warmup_s: float, seconds: float) -> None:
    import importlib

    off = [t for ts in LOOPS.values() for t in ts] if variant == "none" else LOOPS.get(variant, [])
    for mod, cls, meth in off:
        klass = getattr(importlib.import_module(mod), cls)
        if cls == "Settlement":  # coroutines: awaited or made tasks

            async def _nothing(self: object) -> None:
                return None

            setattr(klass, meth, _nothing)
        else:
            setattr(klass, meth, lambda self: None)

    from LLM_Mesh.config import Settings
    from LLM_Mesh.registry.app import serve

    port = _free_port()

    def measure() -> None:
        while True:  # started (store migrated, lifespan done) once it accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(warmup_s)
        c0, w0 = time.process_time(), time.monotonic()
        time.sleep(seconds)
        c1, w1 = time.process_time(), time.monotonic()
        print(json.dumps({"variant": variant, "cpu_ms_per_s": (c1 - c0) * 1e3 / (w1 - w0)}))
        sys.stdout.flush()
        os._exit(0)

    threading.Thread(target=measure, daemon=True).start()
    serve(Settings.from_env(), host="127.0.0.1", port=port, log_level="warning")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup-s", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--variants", default="all,none," + ",".join(LOOPS))
    ap.add_argument("--tree", default=None, help="a checkout to run (default: this one)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.warmup_s, a.seconds)
        return
    tree = Path(a.tree or Path(__file__).resolve().parent.parent)
    results: dict[str, list[float]] = {}
    for _ in range(a.repeat):
        for variant in a.variants.split(","):
            with tempfile.TemporaryDirectory() as home:
                env = {**os.environ, "LLM_MESH_HOME": home, "PYTHONPATH": str(tree)}
                env.pop("LLM_MESH_DATABASE_URL", None)
                out = subprocess.run(
                    [sys.executable, __file__, "--child", variant, "--warmup-s",
                     str(a.warmup_s), "--seconds", str(a.seconds)],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
            line = [s for s in out.stdout.splitlines() if s.startswith("{")]
            if not line:
                print(f"{variant}: no result\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            v = json.loads(line[-1])["cpu_ms_per_s"]
            results.setdefault(variant, []).append(v)
            print(f"{variant:16s} {v:6.2f} ms CPU per s", flush=True)
    base = statistics.median(results.get("all", [0.0]))
    print(f"\nmedians (tree {tree}, load {os.getloadavg()[0]:.2f}):")
    for variant, vs in results.items():
        m = statistics.median(vs)
        note = "" if variant == "all" else f"  (loop's share: {base - m:+.2f})"
        print(f"  {variant:16s} {m:6.2f} ms/s{note}")


if __name__ == "__main__":
    main()
