"""A node's events without data (keep-alive comments) carry no token, so neither the token
limit nor the trickle floor counts them; each costs the gateway's event loop an event's
work. A flood of them breaks the node's part (``core/stream_guard.too_many_without_data``).
See docs/security.md, "Hostile nodes"."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from LLM_Mesh.core.stream_guard import NO_DATA_EVENTS, too_many_without_data
from tests.registry.helpers import rank, running
from tests.registry.test_hostile_node_streams import (
    CHAT,
    MODEL,
    Hostile,
    Nodes,
    _body,
    _data,
    _end,
    _failed,
    _role,
    _said,
    _token,
)

READ = 256 * 1024  # a read of the gateway's (asyncio's largest), all 3-byte comments


def test_keep_alives_are_bounded_per_data_event() -> None:
    assert not too_many_without_data(NO_DATA_EVENTS, 0)
    assert too_many_without_data(NO_DATA_EVENTS + 1, 0)
    assert not too_many_without_data(NO_DATA_EVENTS + 200, 100)  # 2 a data event more
    assert too_many_without_data(NO_DATA_EVENTS + 201, 100)


async def test_a_node_flooding_keep_alive_comments_is_cut_off(tmp_path: Path) -> None:
    """A node sends its role chunk, then reads of nothing but ``:\\n\\n`` as fast as they
    are taken: its part breaks at the bound, within the first such read, and the stream
    goes on on another node (found 2026-12-05: every comment was framed and relayed until
    the first-token cut, request_timeout_s + the grace; a 256 KiB read of them held the
    gateway's event loop, every other request's, ~230 ms on the shared 2-core box, so one
    node at ~1 MB/s held it all along)."""
    flood = b":\n\n" * (READ // 3)

    def events() -> Any:
        yield _role("flood")
        for _ in range(200):  # "for ever": the test's safety stop
            yield flood

    nodes = Nodes()
    nodes.streams["flood"] = lambda node: Hostile(events)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("flood")
        await h.register("honest", continuation=True)
        rank(h.runtime.routing.router, ["flood", "honest"], MODEL, h.clock())
        t0 = time.perf_counter()
        r = await h.client.post(CHAT, json=_body(CHAT))
        took = time.perf_counter() - t0
        chunks = _data(r.text)
        assert _said(chunks) == ["lo", "!"], r.text[-500:]
        assert chunks[-1]["mesh"]["failover_from"] == ["flood"]
        assert nodes.made["flood"].pulled <= 2
        # (2 more per event with output: the role chunk carries none; 66 before 2026-12-05)
        assert r.text.count(":\n\n") <= NO_DATA_EVENTS, took
        assert h.in_flight("flood") == 0


async def test_an_honest_nodes_keep_alives_are_relayed(tmp_path: Path) -> None:
    """(no attack) A keep-alive comment before every token, 3 before the first: each
    relayed as a bare ``:`` (none of the node's words), the stream served whole, the node
    not counted as failed."""

    def events() -> Any:
        yield _role("pinging")
        yield b": ping\n\n" * 3
        for w in ("lo", "!"):
            yield _token(CHAT, "pinging", w)
            yield b": ping\n\n"
        yield from _end(CHAT, "pinging", 2)

    nodes = Nodes()
    nodes.streams["pinging"] = lambda node: Hostile(events)
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("pinging")
        r = await h.client.post(CHAT, json=_body(CHAT))
        assert _said(_data(r.text)) == ["lo", "!"] and r.text.count(":\n\n") == 5
        assert ": ping" not in r.text
        assert not await _failed(h, "pinging")
