"""What a hung first replica costs the seed API's calls on a new registry object.

Two gateway URLs: the first a stopped replica as the kernel shows it (a socket listening,
never accepting: connections complete into its backlog, nothing answers), the second a
small live gateway on loopback (``/healthz``, ``/mesh/models``, ``/mesh/nodes``,
``/mesh/health-check``; no node, nothing simulated). Times, per round, on a fresh
``DistributedModelRegistry``: ``get_model_info()`` twice (the second on a stale snapshot:
4 blocking fetches in all), and ``health_check_all_hosts()`` (``LLM_MESH_ADMIN_KEY`` given,
bounded at ``--give-up-s``). Run it with ``PYTHONPATH`` at the tree to measure::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_seed_replica_hang.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from LLM_Mesh.config import Settings
from LLM_Mesh.distributed_models import DistributedModelRegistry

ANSWERS = {
    "/healthz": {"status": "ok"},
    "/mesh/models": {"models": [{"id": "m", "available": True}]},
    "/mesh/nodes": {"nodes": []},
    "/mesh/health-check": {"results": []},
}


async def gateway(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = json.dumps(ANSWERS.get(scope["path"], {})).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def start_live() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(gateway, lifespan="off", log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


class Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--give-up-s", type=float, default=30.0)
    args = parser.parse_args()
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    urls = f"http://127.0.0.1:{hung.getsockname()[1]},{start_live()}"
    home = Path(tempfile.mkdtemp())
    settings = Settings(home=home, admin_key="probe-admin-key-0123456789abcdef")
    print(f"urls {urls} (the first: listening, never accepting)")
    for n in range(args.rounds):
        clock = Clock()
        reg = DistributedModelRegistry(settings, registry_url=urls, clock=clock)
        t0 = time.monotonic()
        reg.get_model_info()
        clock.t += reg.SNAPSHOT_TTL_S + 1
        reg.get_model_info()
        info_s = time.monotonic() - t0
        reg = DistributedModelRegistry(settings, registry_url=urls)
        t0 = time.monotonic()
        try:
            asyncio.run(asyncio.wait_for(reg.health_check_all_hosts(), args.give_up_s))
            check = f"{time.monotonic() - t0:.1f} s"
        except TimeoutError:
            check = f"> {args.give_up_s:.0f} s (given up)"
        except Exception as exc:  # what the caller would see
            check = f"{time.monotonic() - t0:.1f} s, failed: {type(exc).__name__}: {exc}"[:200]
        print(f"round {n + 1}: get_model_info() x2 {info_s:.1f} s; health check {check}")


if __name__ == "__main__":
    main()
