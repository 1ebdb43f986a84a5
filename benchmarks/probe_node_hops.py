"""The node's own share of a streamed request's first token, in process, and what one
wake-up costs on this machine (issue 7).

Part 1, the node: the node's ASGI app (``create_node_app``, the ``llama-cpp`` engine with a
stand-in ``Llama``: it tokenizes bytes and "computes" 2 ms, sleeping, in the engine's
worker thread, then yields one chunk) called on uvloop with a one-token streamed
``POST /v1/completions`` (``bench_throughput``'s prompt), no sockets: microseconds from the
ASGI call to each step before llama (body checked, parsed, ``Generation.open``, the job
handed to the model's thread, the thread running it, ``create_completion`` called) and from
llama's first chunk to ``http.response.start`` sent and to the first body sent; and the
loop thread's CPU a request. No llama, no HTTP, no gateway: the node's Python alone.

Part 2, a wake-up: one byte's round trip between two processes over loopback TCP
(blocking sockets, ``TCP_NODELAY``) and between two threads of one process
(``queue.SimpleQueue``), halved; with ``--spin`` a third process spins on a core meanwhile
(as llama's OpenMP teammate does after a token). ``--gap-ms``: the pause between round
trips (the wait before a hop: 20 ms is a prompt's evaluation).

p10 and p50 of each. A shared box: read them beside ``probe_ttft.py``'s stage times of the
same minutes.

    .venv/bin/python benchmarks/probe_node_hops.py [--requests 400] [--wakes 400]
        [--gap-ms 20] [--spin]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import queue
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MODEL = "gemma-3-270m"
PROMPT = "def fibonacci(n):"
MARK: dict[str, int] = {}


def _now() -> int:
    return time.perf_counter_ns()


class StandInLlama:
    """Tokens are bytes; ``create_completion`` sleeps 2 ms (llama's compute, the GIL
    released), then one chunk and the finish."""

    def __init__(self, **_kw: Any) -> None:
        pass

    def n_ctx(self) -> int:
        return 4096

    def set_abort_callback(self, _fn: Callable[[], bool]) -> None:
        pass

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return ([2] if add_bos else []) + list(text)

    def create_completion(self, _prompt: Any, **_kw: Any) -> Iterator[dict[str, Any]]:
        MARK["cc"] = _now()
        time.sleep(0.002)
        MARK["chunk"] = _now()
        yield {"choices": [{"text": " ", "finish_reason": None}]}
        yield {"choices": [{"text": "", "finish_reason": "length"}]}


@contextlib.contextmanager
def _instrumented() -> Iterator[None]:
    """The node's steps noted in ``MARK`` while it lasts (the classes restored after)."""
    from LLM_Mesh.node import app as node_app
    from LLM_Mesh.node import generation
    from LLM_Mesh.node.engines import base

    saved = [(node_app._Handler, "check_depth"), (node_app._Handler, "parse"),
             (generation.Generation, "open"), (base.EngineWorker, "submit")]  # fmt: skip
    kept = [(owner, name, owner.__dict__[name]) for owner, name in saved]

    def note_after(owner: Any, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            out = fn(*a, **k)
            MARK[label] = _now()
            return out

        setattr(owner, name, wrapper)

    note_after(node_app._Handler, "check_depth", "checked")
    note_after(node_app._Handler, "parse", "parsed")
    opener = generation.Generation.open.__func__  # type: ignore[attr-defined]

    async def open_(cls: Any, *a: Any, **k: Any) -> Any:
        MARK["open"] = _now()
        return await opener(cls, *a, **k)

    generation.Generation.open = classmethod(open_)  # type: ignore[assignment]
    submit = base.EngineWorker.submit

    def submit_(self: Any, job: Callable[[], None]) -> None:
        MARK["submit"] = _now()

        def timed() -> None:
            MARK["job"] = _now()
            job()

        submit(self, timed)

    base.EngineWorker.submit = submit_  # type: ignore[method-assign]
    try:
        yield
    finally:
        for owner, name, value in kept:
            setattr(owner, name, value)


STEPS = [("body checked", "checked"), ("parsed", "parsed"), ("Generation.open", "open"),
         ("job handed to the model's thread", "submit"), ("the thread runs it", "job"),
         ("create_completion called", "cc")]  # fmt: skip


async def _node(requests: int, warm: int = 30) -> dict[str, list[float]]:
    from LLM_Mesh.config import Settings
    from LLM_Mesh.core.catalog import CATALOG
    from LLM_Mesh.core.schemas import Hardware
    from LLM_Mesh.node.app import create_node_app
    from LLM_Mesh.node.config import NodeConfig
    from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
    from LLM_Mesh.node.model_files import ResolvedModel
    from LLM_Mesh.node.service import NodeService

    spec = next(s for s in CATALOG if s.id == MODEL)
    model = ResolvedModel(id=MODEL, path=Path("/nonexistent.gguf"), spec=spec, sha256=None)
    engine = LlamaCppEngine([model], n_ctx=4096, n_threads=1, llama_factory=StandInLlama)
    with tempfile.TemporaryDirectory(prefix="probe-node-hops-") as home:
        service = NodeService(
            NodeConfig(engine="llama-cpp", models=[MODEL], register=False),
            Settings(home=Path(home)),
            engine=engine,
            hardware=Hardware(cpu_count=2, memory_bytes=8 << 30),
        )
        await service.start()
        try:
            with _instrumented():
                app = create_node_app(service, manage_lifespan=False)
                return await _requests(app, requests, warm)
        finally:
            await service.stop()


async def _requests(app: Any, requests: int, warm: int = 30) -> dict[str, list[float]]:
    body = json.dumps({"model": MODEL, "prompt": PROMPT, "max_tokens": 1, "temperature": 0,
                       "stream": True}).encode()  # fmt: skip
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/completions", "raw_path": b"/v1/completions", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8801),
        "headers": [(b"host", b"127.0.0.1:8801"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    out: dict[str, list[float]] = {}
    for i in range(requests + warm):  # ``warm`` unmeasured first
        ended = asyncio.Event()
        read = False
        sent: list[int] = []

        async def receive(ended: asyncio.Event = ended) -> dict[str, Any]:
            nonlocal read
            if not read:
                read = True
                return {"type": "http.request", "body": body, "more_body": False}
            await ended.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any], sent: list[int] = sent) -> None:
            kind = message["type"]
            if kind == "http.response.start" or (kind == "http.response.body" and len(sent) == 1):
                sent.append(_now())

        MARK.clear()
        cpu0, t0 = time.thread_time_ns(), _now()
        await app(dict(scope), receive, send)
        cpu = time.thread_time_ns() - cpu0
        ended.set()
        await asyncio.sleep(0.003)
        if i < warm:
            continue
        for label, key in STEPS:
            out.setdefault(f"ASGI call -> {label}", []).append((MARK[key] - t0) / 1e3)
        out.setdefault("llama's chunk -> response start sent", []).append(
            (sent[0] - MARK["chunk"]) / 1e3
        )
        out.setdefault("response start -> first body sent", []).append((sent[1] - sent[0]) / 1e3)
        out.setdefault("loop thread CPU a request", []).append(cpu / 1e3)
    return out


def _echo_server(ports: Any) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    ports.put(server.getsockname()[1])
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(64):
        conn.sendall(data)


def _spin(stop: Any) -> None:
    while not stop.is_set():
        pass


def _wakes(n: int, gap_s: float) -> dict[str, list[float]]:
    ports: Any = mp.Queue()
    server = mp.Process(target=_echo_server, args=(ports,))
    server.start()
    conn = socket.create_connection(("127.0.0.1", ports.get()))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tcp = []
    for _ in range(n):
        t = _now()
        conn.sendall(b"x")
        conn.recv(64)
        tcp.append((_now() - t) / 2e3)
        time.sleep(gap_s)
    conn.close()
    server.join()
    there: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    back: queue.SimpleQueue[int] = queue.SimpleQueue()

    def echo() -> None:
        while (x := there.get()) is not None:
            back.put(x)

    thread = threading.Thread(target=echo)
    thread.start()
    hand = []
    for _ in range(n):
        t = _now()
        there.put(1)
        back.get()
        hand.append((_now() - t) / 2e3)
        time.sleep(gap_s)
    there.put(None)
    thread.join()
    return {"process -> process, loopback TCP, one way": tcp,
            "thread -> thread, SimpleQueue, one way": hand}  # fmt: skip


def _show(rows: dict[str, list[float]]) -> None:
    for name, xs in rows.items():
        xs = sorted(xs)
        print(f"  {name:46s} p10 {xs[len(xs) // 10]:8.1f}   p50 {xs[len(xs) // 2]:8.1f} µs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--wakes", type=int, default=400)
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--spin", action="store_true", help="a process spinning on a core meanwhile")
    args = ap.parse_args()
    import uvloop

    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"python {sys.version.split()[0]}, load average {load}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC")  # fmt: skip
    print(f"the node, in process ({args.requests} one-token streamed requests, uvloop):")
    _show(uvloop.run(_node(args.requests)))
    stop: Any = mp.Event()
    spinner = mp.Process(target=_spin, args=(stop,)) if args.spin else None
    if spinner is not None:
        spinner.start()
    try:
        print(f"a wake-up ({args.wakes} round trips, {args.gap_ms:g} ms apart"
              f"{', a process spinning' if spinner else ''}):")  # fmt: skip
        _show(_wakes(args.wakes, args.gap_ms / 1e3))
    finally:
        stop.set()
        if spinner is not None:
            spinner.join()


if __name__ == "__main__":
    main()
