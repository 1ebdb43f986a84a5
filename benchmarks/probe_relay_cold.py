"""The gateway's relay path per SSE event, warm and with the caches evicted between events.

On the 2-core box llama's threads run between two tokens, so the gateway meets each token
with cold caches. This probe runs the send stage's ``NodeStream.events`` and the relay's
``SseRelay.events`` (the code between a node's bytes and the client's) over a fake node
answer of ``--events`` completion chunks, one per read, then the usage chunk and
``[DONE]``, in process on uvloop, and times each event (``perf_counter_ns`` around the
relay's ``__anext__``): once back to back (warm), once with ``--evict-mb`` MB copied
between events (more than the L3 cache: cold). No sockets, no event-loop wake-up: the
Python path alone. Median and mean per event, the best of ``--rounds``.

Compare trees by running it with each on ``PYTHONPATH`` (the fake answer serves the
send stage of either: ``aiter_raw`` and the older ``aiter_line_batches``):

    PYTHONPATH=DIR .venv/bin/python benchmarks/probe_relay_cold.py [--events 400]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import uvloop
from _common import machine_line

from LLM_Mesh.core import stream_guard
from LLM_Mesh.registry import node_client
from LLM_Mesh.registry.job import Tally
from LLM_Mesh.registry.relay import SseRelay
from LLM_Mesh.registry.send_stream import NodeStream

CHUNK = (b'data: {"id":"cmpl-0123456789abcdef","object":"text_completion","created":1764640000,'
         b'"model":"gemma-3-270m","choices":[{"index":0,"text":" tok%d","logprobs":null,'
         b'"finish_reason":null}]}\n\n')  # fmt: skip
FINAL = (b'data: {"id":"cmpl-0123456789abcdef","object":"text_completion","created":1764640000,'
         b'"model":"gemma-3-270m","choices":[],"usage":{"prompt_tokens":5,'
         b'"completion_tokens":%d,"total_tokens":%d},"mesh":{"node_id":"n"}}\n\n'
         b"data: [DONE]\n\n")  # fmt: skip


class _Answer:
    """A node's streamed answer, one event per read."""

    status_code = 200

    def __init__(self, n: int) -> None:
        self.reads = [CHUNK % i for i in range(n)] + [FINAL % (n, n + 5)]

    async def _raw(self) -> AsyncIterator[bytes]:
        for r in self.reads:
            yield r

    def aiter_raw(self) -> AsyncIterator[bytes]:
        return self._raw()

    def aiter_line_batches(self) -> AsyncIterator[list[str]]:  # a tree before aiter_raw
        return node_client._line_batches(self._raw())

    async def aclose(self) -> None:
        return None

    async def done_reading(self) -> None:  # after [DONE] (a tree before it: never called)
        return None


class _Exchange:
    def __init__(self) -> None:
        self.tally = Tally()
        self.tally.node_id = "n"
        self.att = None
        # the stream guard's inputs (a tree before it has none): no token limit, the default
        # floor on the real clock, one request in flight on the node; the client's model, the
        # one the chunks name (a node's other name is rewritten: not this path; without it
        # the probe failed from 2026-12-05)
        self.job = SimpleNamespace(
            token_limit=0,
            max_tokens=0,
            model="gemma-3-270m",
            choices=1,
            stop_bytes=0,
            echo=False,
            text_only=False,
        )
        self.rt = SimpleNamespace(clock=time.monotonic, stream_floor=stream_guard.StreamFloor())
        shared = getattr(stream_guard, "SharedTime", None)
        self.routing = SimpleNamespace(shares=shared() if shared is not None else None)
        if shared is not None:
            self.routing.shares.begin("n", time.monotonic())

    def first_token(self) -> None:
        return None

    def finish(self, *_a: Any, **_k: Any) -> None:
        return None


async def one(n: int, evict: tuple[bytearray, bytearray] | None) -> tuple[float, float]:
    ex = _Exchange()
    ns = NodeStream(ex)  # type: ignore[arg-type]
    ns.resp = _Answer(n)  # type: ignore[assignment]
    relay = SseRelay(ns.events(), lambda obj, _c: obj.__setitem__("mesh", {}))
    it = relay.events().__aiter__()
    times: list[int] = []
    while True:
        if evict is not None:
            evict[0][:] = evict[1]
        t0 = time.perf_counter_ns()
        try:
            await it.__anext__()
        except StopAsyncIteration:
            break
        times.append(time.perf_counter_ns() - t0)
    # the honest path to its end, not a failover's (a stand-in short of what the tree reads)
    assert ex.tally.outcome == "ok", ex.tally.outcome
    times.sort()
    return times[len(times) // 2] / 1e3, sum(times) / len(times) / 1e3


async def main(args: argparse.Namespace) -> None:
    mb = args.evict_mb << 20
    bufs = (bytearray(mb), bytearray(mb))
    for name, evict in (("warm", None), ("cold", bufs)):
        runs = [await one(args.events, evict) for _ in range(args.rounds)]
        print(f"{name}: per event median {min(r[0] for r in runs):.2f} µs, "
              f"mean {min(r[1] for r in runs):.2f} µs (best of {args.rounds})")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--evict-mb", type=int, default=48, help="MB copied between events")
    print(machine_line())
    uvloop.install()
    asyncio.run(main(ap.parse_args()))
