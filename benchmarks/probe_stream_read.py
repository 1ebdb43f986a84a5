"""The gateway's read of a node stream alone: CPU per SSE event, aiohttp vs ``Http1Pool``.

A child process serves streamed POSTs the way a node's uvicorn answers a stream (chunked
transfer encoding, one write per event, ``data: {...}`` lines of a completion chunk's size),
one event every ``--gap-ms`` so that each arrives in a read of its own, as tokens do. This
process reads them on uvloop through ``AiohttpNodeClient.stream`` +
``NodeResponse.aiter_line_batches``, the calls ``registry/send_stream.py`` makes: once with
``fast_post=False`` (every call on aiohttp, the stream path before) and once with the
default (plain-HTTP streams on ``registry/http1.py``), alternating, ``--rounds`` times each,
and notes the event loop thread's CPU time (``time.thread_time``) per event read. CPU time
is the loop's own work, so a busy machine changes it less than it changes wall time; the
comparison is within the run.

    .venv/bin/python benchmarks/probe_stream_read.py [--rounds 6] [--events 300] [--gap-ms 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import free_port, log, machine_line, median, write_json

SERVER = r"""
import asyncio, sys
port, events, gap = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000
EVENT = (b'data: {"id":"cmpl-0123456789abcdef","object":"text_completion","created":1764640000,'
         b'"model":"gemma-3-270m","choices":[{"index":0,"text":" token","logprobs":null,'
         b'"finish_reason":null}]}\n\n')
CHUNK = b"%x\r\n%s\r\n" % (len(EVENT), EVENT)
HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n")
async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            await r.readexactly(n)
            w.write(HEAD)
            for _ in range(events):
                await asyncio.sleep(gap)
                w.write(CHUNK)
            w.write(b"%x\r\n%s\r\n0\r\n\r\n" % (14, b"data: [DONE]\n\n"))
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


async def read_once(client: object, url: str) -> tuple[int, float]:
    t0 = time.thread_time()
    resp = await client.stream(url, b"{}", {"Content-Type": "application/json"},  # type: ignore[attr-defined]
                               timeout_s=30, connect_s=5)  # fmt: skip
    n = 0
    async for batch in resp.aiter_line_batches():
        n += sum(1 for line in batch if line.startswith("data: {"))
    await resp.aclose()
    return n, time.thread_time() - t0


async def measure(args: argparse.Namespace, url: str) -> dict[str, list[float]]:
    from LLM_Mesh.registry.node_client import AiohttpNodeClient

    clients = {"aiohttp": AiohttpNodeClient(fast_post=False), "http1": AiohttpNodeClient()}
    out: dict[str, list[float]] = {k: [] for k in clients}
    try:
        for c in clients.values():  # warm-up: connect, first parse
            await read_once(c, url)
        for i in range(args.rounds):
            for name in list(clients) if i % 2 == 0 else list(reversed(clients)):
                n, cpu = await read_once(clients[name], url)
                if n != args.events:
                    raise SystemExit(f"{name}: read {n} events of {args.events}")
                out[name].append(cpu / n * 1e6)
            log(f"round {i + 1}/{args.rounds}: " + ", ".join(
                f"{k} {v[-1]:.1f} µs/event" for k, v in out.items()))  # fmt: skip
    finally:
        for c in clients.values():
            await c.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--gap-ms", type=float, default=2.0)
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(args.events), str(args.gap_ms)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        import uvloop

        out = uvloop.run(measure(args, f"http://127.0.0.1:{port}/v1/completions"))
    finally:
        server.terminate()
        server.wait()
    res = {k: median(v) for k, v in out.items()}
    print(f"\nCPU of the reading loop per event (median of {args.rounds} rounds): "
          f"aiohttp {res['aiohttp']:.1f} µs, Http1Pool {res['http1']:.1f} µs, "
          f"ratio {res['http1'] / res['aiohttp']:.2f}")  # fmt: skip
    path = write_json("probe_stream_read", {"params": vars(args), "us_per_event": out,
                                            "median": res})  # fmt: skip
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
