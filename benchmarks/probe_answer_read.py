"""A node's whole answer read by the gateway's HTTP/1.1 client, in process, per checkout.

Method: for each checkout given (default: this one), in turn for ``--rounds`` rounds, a
child process with that checkout first on ``PYTHONPATH`` times
``AiohttpNodeClient.post_by`` on an idle pooled plain-HTTP connection whose transport is a
stand-in (no socket): its ``write`` hands the connection, one loop step later, the bytes
of a sim node's answer (SIMULATED: its status line, its six headers as uvicorn writes
them, a 1,022-byte body) in one ``data_received``, as the kernel does. What is timed is
the gateway's side alone: the request's bytes made, the answer parsed (``httptools``, the
header callbacks), the response objects, the connection given back, the status read (and
with ``--headers`` its headers read too, as a refusal's ``Retry-After`` is), by the thread's
CPU (``time.thread_time``), the median of ``--batches`` batches of ``--calls`` calls. The
child prints the status, body and headers it read: every checkout must read the same.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_answer_read.py [TREE ...] [--rounds 5]
        [--calls 3000] [--batches 5] [--headers]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import asyncio, json, statistics, sys, time
from LLM_Mesh.registry.node_client import AiohttpNodeClient

calls, batches, read_headers = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
BODY = json.dumps({"id": "chatcmpl-be15c4d59f75cff6aa1207a6", "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "gateway"},
                 "finish_reason": "length", "logprobs": None}],
    "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    "mesh": {"node_id": "node-ccsmmvmd4thre7d4hjrigsacl6", "pad": "x" * 640}},
    separators=(",", ":")).encode()
ANSWER = (b"HTTP/1.1 200 OK\r\ndate: Sat, 05 Dec 2026 03:45:38 GMT\r\nserver: uvicorn\r\n"
          b"x-mesh-node: node-ccsmmvmd4thre7d4hjrigsacl6\r\ncontent-length: %d\r\n"
          b"content-type: application/json\r\nx-content-type-options: nosniff\r\n\r\n%s"
          % (len(BODY), BODY))
URL = "http://127.0.0.1:9/v1/chat/completions"
HEADERS = {"Content-Type": "application/json", "X-Request-Id": "req-1",
           "X-Mesh-Gateway": "g" * 120}


class Transport:  # a TCP transport's surface as _Conn uses it; the answer one step later
    def __init__(self, loop):
        self.loop, self.conn = loop, None
    def write(self, data):
        self.loop.call_soon(self.conn.data_received, ANSWER)
    def is_closing(self):
        return False
    def abort(self):
        raise SystemExit("the connection was aborted")


async def main():
    from LLM_Mesh.registry import http1
    client = AiohttpNodeClient.__new__(AiohttpNodeClient)  # only what post_by reads
    pool = http1.Http1Pool(user_agent="llm-mesh", keepalive_s=3600.0)
    client.http1, client._pins = pool, None
    conn = http1._Conn()
    t = Transport(asyncio.get_running_loop())
    t.conn = conn
    conn.connection_made(t)
    pool._open.add(conn)
    pool._give_back(("127.0.0.1", 9), conn)

    async def one():
        r = await client.post_by(URL, b"{}", HEADERS, left=30.0, connect_s=5.0)
        if r.status_code != 200:
            raise SystemExit(r.status_code)
        if read_headers:
            r.headers.get("retry-after")
        return r

    r = await one()
    print(json.dumps([r.status_code, r.content.decode(), list(r.headers.items())]))
    out = []
    for _ in range(batches):
        t0 = time.thread_time()
        for _ in range(calls):
            await one()
        out.append((time.thread_time() - t0) / calls * 1e6)
    print(statistics.median(out))
    if pool.connects or len(pool._open) != 1:
        raise SystemExit("the stand-in connection was not reused")

asyncio.run(main())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--headers", action="store_true", help="read the headers too")
    args = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in (args.trees or [Path(__file__).parent.parent])]
    print(__doc__.splitlines()[0])
    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
    per: dict[str, list[float]] = {t: [] for t in trees}
    seen: dict[str, str] = {}
    for r in range(args.rounds):
        order = trees[r % len(trees) :] + trees[: r % len(trees)]  # rotated each round
        for tree in order:
            env = {**os.environ, "PYTHONPATH": tree}
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.calls), str(args.batches),
                 "1" if args.headers else "0"],
                env=env, cwd=tree, capture_output=True, text=True, check=True,
            ).stdout.splitlines()  # fmt: skip
            seen[tree] = hashlib.sha256(out[0].encode()).hexdigest()[:16]
            per[tree].append(float(out[1]))
            print(f"round {r + 1} {tree}: {float(out[1]):.2f} µs a call")
    for tree in trees:
        print(f"{tree}: median {statistics.median(per[tree]):.2f} µs a call "
              f"(range {min(per[tree]):.2f} … {max(per[tree]):.2f}); what it read {seen[tree]}")  # fmt: skip
    if len(trees) > 1:
        a, b = per[trees[0]], per[trees[1]]
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        print(f"{trees[0]} − {trees[1]}, round by round: median {statistics.median(diffs):+.2f} "
              f"µs (range {min(diffs):+.2f} … {max(diffs):+.2f})")  # fmt: skip
    print("status, body and headers read identical:", len(set(seen.values())) == 1)


if __name__ == "__main__":
    main()
