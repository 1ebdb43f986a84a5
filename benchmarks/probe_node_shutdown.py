"""A node's shutdown when its registry is gone: SIGTERM → exit, end to end, real processes.

Method: a node process (``llm-mesh node start``, ``sim`` engine — simulated — on
loopback) against a stand-in registry in this process (``tests/e2e/standin_registry.py``:
it accepts the registration with a gateway key of its own, answers heartbeats, and signs
the one inference request scenario ``hung+stream`` sends, as the gateway does). Per
scenario the node is started, the registry is taken away as the scenario says, the node
gets SIGTERM, and the wall time until the process has exited is taken; the node's log
lines about its goodbye are printed.

Scenarios:
- ``never``: nothing ever listened at the registry URL (never registered);
- ``refused``: registered, then the registry's port closed (connections refused);
- ``hung``: registered, then the registry accepts connections and never answers;
- ``hung+stream``: ``hung`` with a long streamed generation in flight at SIGTERM.

Run: ``.venv/bin/python benchmarks/probe_node_shutdown.py [--only hung]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.standin_registry import StandIn, exit_time, start_node, wait_serving

SCENARIOS = ("never", "refused", "hung", "hung+stream")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def scenario(name: str, home: Path, shutdown_s: str | None) -> float:
    reg_port, node_port = _port(), _port()
    reg = StandIn()
    if name != "never":
        await reg.start(reg_port)
    proc, log_path = start_node(
        home, f"http://127.0.0.1:{reg_port}", node_port, tokens_per_s=0.5,
        **({"LLM_MESH_NODE_SHUTDOWN_S": shutdown_s} if shutdown_s else {}),
    )  # fmt: skip
    node_url = f"http://127.0.0.1:{node_port}"
    stream: asyncio.Task[None] | None = None
    try:
        await wait_serving(node_url, None if name == "never" else reg)
        await asyncio.sleep(1.5)  # a heartbeat or two
        if name == "hung+stream":
            started = asyncio.Event()
            stream = asyncio.create_task(reg.stream(node_url, "mistral-7b", started))
            await asyncio.wait_for(started.wait(), 30)
        if name == "refused":
            await reg.close()
        elif name.startswith("hung"):
            reg.mode = "hang"
        proc.send_signal(signal.SIGTERM)
        took = await exit_time(proc, 60.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        if stream is not None:
            stream.cancel()
        await reg.close()
    lines = log_path.read_text(errors="replace").splitlines()
    at = lines.index(next(ln for ln in lines if "Shutting down" in ln))
    said = lines[at:]
    print(f"{name}: SIGTERM -> exit {took:.2f} s (exit code {proc.returncode})")
    for ln in said[-12:]:
        print(f"  | {ln[:400]}")
    return took


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=SCENARIOS, action="append")
    ap.add_argument("--shutdown-s", help="LLM_MESH_NODE_SHUTDOWN_S for the node [its default]")
    args = ap.parse_args()
    print(f"# probe_node_shutdown  cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or SCENARIOS:
            home = Path(tmp) / name.replace("+", "-")
            home.mkdir()
            await scenario(name, home, args.shutdown_s)


if __name__ == "__main__":
    asyncio.run(main())
