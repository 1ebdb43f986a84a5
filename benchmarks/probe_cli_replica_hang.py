"""What a hung first gateway replica costs a run of ``llm-mesh`` commands (each a process).

Two gateway URLs: the first accepts connections and never answers (a stopped replica's
backlog), the second a small live gateway on loopback (``/healthz``, ``/mesh/models``,
``/mesh/nodes``; no node, nothing simulated). ``--commands`` CLI processes run one after the
other, alternating ``llm-mesh models`` and ``llm-mesh status``, on one fresh
``$LLM_MESH_HOME``, run from the tree measured (``python -m`` puts the working folder
first on the path); each one's wall time is printed (process start included), and how many
connections the hung replica took. With ``--baseline-tree DIR`` the same run is made with
``PYTHONPATH=DIR`` first (a detached worktree of main), interleaved round by round::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_cli_replica_hang.py \\
        [--commands 4] [--rounds 2] [--baseline-tree /path/to/main-worktree]
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ANSWERS = {"/healthz": {"status": "ok"}, "/mesh/models": {"models": []},
           "/mesh/nodes": {"nodes": []}}  # fmt: skip
THIS_TREE = Path(__file__).resolve().parents[1]


class _Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(ANSWERS.get(self.path, {})).encode()
        self.send_response(200 if self.path in ANSWERS else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def start_hung() -> tuple[str, list[socket.socket]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            held.append(sock.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}", held


def start_live() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def run(tree: Path, urls: str, commands: int, held: list[socket.socket]) -> tuple[list[float], int]:
    home = Path(tempfile.mkdtemp(prefix="cli-replica-"))
    env = {**os.environ, "PYTHONPATH": str(tree), "LLM_MESH_HOME": str(home)}
    env.pop("LLM_MESH_REGISTRY_URL", None)
    before, times = len(held), []
    for i in range(commands):
        command = "models" if i % 2 == 0 else "status"
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "LLM_Mesh.cli", command, "--registry", urls],
                             env=env, cwd=tree, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
        times.append(time.monotonic() - t0)
        if out.returncode != 0:
            raise SystemExit(f"{tree}: {command} failed: {out.stderr.strip()[-400:]}")
    return times, len(held) - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline-tree", type=Path, default=None)
    args = parser.parse_args()
    if args.commands < 2:  # the median is of the commands after the first
        parser.error("--commands at least 2")
    hung, held = start_hung()
    urls = f"{hung},{start_live()}"
    trees = ([("before", args.baseline_tree)] if args.baseline_tree else []) + [("this", THIS_TREE)]
    print(f"UTC {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}; load {os.getloadavg()}")
    for r in range(args.rounds):
        for name, tree in trees:
            times, took = run(tree, urls, args.commands, held)
            shown = " / ".join(f"{t:.1f}" for t in times)
            print(f"round {r + 1} {name:6}: per command {shown} s; total {sum(times):.1f} s; "
                  f"after the first: median {statistics.median(times[1:]):.1f} s; "
                  f"hung replica's connections {took}")  # fmt: skip


if __name__ == "__main__":
    main()
