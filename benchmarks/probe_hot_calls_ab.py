"""Two hot calls this tree changed, beside main's code of 2026-12-05 (copied in below, word
for word), in one process: thread CPU per call, rounds interleaved in turn.

- ``Http1Pool.post_pooled`` (every non-streamed gateway request on a pooled connection):
  the pool's exchange inside ``_Conn.exchange`` (this tree) against main's try/except and
  give-back in ``post_pooled`` around it. Real ``_Conn`` objects; only their ``_send`` is a
  stand-in that waits one loop step (a future set by ``call_soon``), so the chain of
  awaits resumes once, as on a node's answer.
- ``parse.read_body`` (every gateway request's body): ``request.receive`` alone (this
  tree) against main's read and writes of Starlette's private ``_body``,
  ``_stream_consumed`` and ``_is_disconnected``. A fresh ``Request`` a call (the hot route
  makes one a request), one ``http.request`` message.

Printed per call: medians of each side's rounds and the median of the paired differences
(this − main) with its range; no network, no node (nothing **simulated** either).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/probe_hot_calls_ab.py [--rounds 31]
        [--calls 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import machine_line
from starlette.requests import ClientDisconnect, Request

from LLM_Mesh.registry.http1 import Http1Pool, Http1Response, _Conn
from LLM_Mesh.registry.parse import read_body

URL = "http://127.0.0.1:9/v1/chat/completions"
HEADERS = {"Content-Type": "application/json", "X-Request-Id": "r"}
BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":8}'
MESSAGE = {"type": "http.request", "body": BODY, "more_body": False}
SCOPE = {"type": "http", "method": "POST", "headers": [], "path": "/v1/chat/completions"}


class _Parser:
    def get_status_code(self) -> int:
        return 200


_PARSER = _Parser()


class _Conn1Step(_Conn):
    # the real _send's keywords, whatever they become (``limit`` came after the copy below:
    # found 2026-12-05, the probe failed on it); what it leaves for the exchange to read
    async def _send(self, request: bytes, timeout_s: float, **_kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_soon(fut.set_result, None)
        self._head, self._body, self._keep, self._more = [], [b"{}"], True, bytearray()
        await fut
        return _PARSER


class _MainConn(_Conn1Step):
    async def exchange(  # type: ignore[override]  # main's _Conn.exchange
        self, request: bytes, timeout_s: float, expired: tuple[str, str] | None = None
    ) -> Http1Response:
        parser = await self._send(request, timeout_s, expired=expired)
        self._parser = None
        if not self._keep:
            self.abort()
        body = self._body
        content = body[0] if len(body) == 1 else b"".join(body)
        return Http1Response(parser.get_status_code(), self._head, content)


class _MainPool(Http1Pool):
    async def post_pooled(  # main's post_pooled
        self, url: str, content: bytes, headers: Any, *, timeout_s: float,
        expired: tuple[str, str],
    ) -> Http1Response | None:  # fmt: skip
        key, request = self._request(url, content, headers)
        conn = self._take(key)
        if conn is None:
            return None
        try:
            resp = await conn.exchange(request, timeout_s, expired)  # type: ignore[call-arg]
        except BaseException:
            self._open.discard(conn)
            raise
        self._give_back(key, conn)
        return resp


async def main_read_body(request: Request) -> bytes:  # main's parse.read_body
    if hasattr(request, "_body") or request._stream_consumed:
        return await request.body()
    receive = request.receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            request._is_disconnected = True
            raise ClientDisconnect()
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    request._stream_consumed = True
    request._body = body
    return body


def _pooled(pool_type: type[Http1Pool], conn_type: type[_Conn]) -> Callable[[], Awaitable[Any]]:
    pool = pool_type(user_agent="probe", keepalive_s=3600)
    conn = conn_type.__new__(conn_type)
    conn.closed, conn.transport = False, None
    pool._open.add(conn)
    pool._give_back(("127.0.0.1", 9), conn)

    async def call() -> Any:
        return await pool.post_pooled(URL, b"{}", HEADERS, timeout_s=5, expired=("a", "b"))

    return call


async def _receive() -> dict[str, Any]:
    return MESSAGE


def _reads(fn: Callable[[Request], Awaitable[bytes]]) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return await fn(Request(SCOPE, _receive))

    return call


async def _per_call(call: Callable[[], Awaitable[Any]], n: int) -> float:
    t = time.thread_time()
    for _ in range(n):
        await call()
    return (time.thread_time() - t) / n * 1e6


async def _ab(name: str, this: Callable[[], Awaitable[Any]],
              main: Callable[[], Awaitable[Any]], rounds: int, n: int) -> None:  # fmt: skip
    assert (await this()) is not None and (await main()) is not None
    await _per_call(this, n)
    await _per_call(main, n)
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        order = [(this, a), (main, b)] if i % 2 else [(main, b), (this, a)]
        for call, out in order:
            out.append(await _per_call(call, n))
    d = [x - y for x, y in zip(a, b, strict=True)]
    print(
        f"{name}: this {statistics.median(a):.3f} µs, main {statistics.median(b):.3f} µs a "
        f"call; this − main paired median {statistics.median(d):+.3f} µs "
        f"(range {min(d):+.3f} … {max(d):+.3f}), {rounds} rounds × {n} calls"
    )


async def _run(rounds: int, n: int) -> None:
    await _ab("Http1Pool.post_pooled", _pooled(Http1Pool, _Conn1Step),
              _pooled(_MainPool, _MainConn), rounds, n)  # fmt: skip
    await _ab("parse.read_body", _reads(read_body), _reads(main_read_body), rounds, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args()
    print(__doc__.split("\n\n")[0])
    print(machine_line())
    asyncio.run(_run(args.rounds, args.calls))


if __name__ == "__main__":
    main()
