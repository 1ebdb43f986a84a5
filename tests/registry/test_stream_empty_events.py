"""A node's stream events that carry no text (empty deltas, role-only deltas, chunks with
empty choices) are no progress: the stream floor counts only events that carry output
(``core/stream_guard.carries_output``), and a part past its event allowance with fewer
output events than its token limit padded its answer: a break (failed over), not the
limit's normal end. An honest stream's role-only first delta, finish chunk and final
usage-only chunk (OpenAI's shapes) and an engine's odd empty delta still pass. See
docs/security.md, "Hostile nodes". The gateway's clock is the harness's (no real time)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.stream_guard import SLACK_EVENTS
from tests.registry.helpers import FakeNode, Harness, ManualClock, rank, running
from tests.registry.test_hostile_node_streams import (
    CHAT,
    COMPLETIONS,
    FLOOR,
    MAX,
    MODEL,
    SAFETY,
    Hostile,
    Nodes,
    _body,
    _data,
    _end,
    _ev,
    _failed,
    _head,
    _most,
    _role,
    _said,
    _token,
)

# (gateway clock) seconds between a hostile node's events: twice the floor's rate of 1/s
GAP_S = 0.5


def _empty(path: str, node: str, shape: str) -> bytes:
    """An event of ``node`` that carries no text, in one of the shapes a stream may have."""
    head = _head(path, node)
    if shape == "empty_delta":
        choice: dict[str, Any] = {"index": 0, "delta": {}} if path == CHAT else {"index": 0}
        return _ev({**head, "choices": [choice]})
    if shape == "empty_content":
        choice = (
            {"index": 0, "delta": {"content": ""}} if path == CHAT else {"index": 0, "text": ""}
        )
        return _ev({**head, "choices": [choice]})
    if shape == "role":
        return _ev({**head, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    if shape == "no_choices":
        return _ev({**head, "choices": []})
    raise ValueError(shape)


def _padder(
    clock: ManualClock | None, every: int, path: str = CHAT, shape: str = "empty_delta",
    gap_s: float = GAP_S,
) -> Callable[[FakeNode], Hostile]:  # fmt: skip
    """The node's role and first token at once, then an event every ``gap_s`` of the
    gateway's clock: a token every ``every`` events (0: never), else an event without text."""

    def events() -> Any:
        yield _role("pad") if path == CHAT else _empty(path, "pad", "empty_content")
        yield _token(path, "pad", "Hel")
        for i in range(1, SAFETY):
            yield (
                _token(path, "pad", f" t{i}")
                if every and i % every == 0
                else _empty(path, "pad", shape)
            )

    return lambda node: Hostile(events, clock, gap_s)


async def _rec(h: Harness) -> Any:
    await h.runtime.writer.flush()
    (rec,) = h.store.requests
    return rec


@pytest.mark.parametrize("shape", ["empty_delta", "empty_content", "role", "no_choices"])
async def test_a_node_sending_only_empty_events_after_its_first_token_is_cut_and_continued(
    tmp_path: Path, shape: str
) -> None:
    """Its first token, then events without text at twice the floor's rate: no output,
    so too slow after the grace; continued on the other node. Before: each event was
    progress, so the part ran to its 64 + 8 events (36 s of the clock here; at the default
    floor, 0.25/s, the client and the slot were held ~5 min a 64 tokens, up to the client's
    30 min), then ended as a normal answer (``finish_reason: "length"``) of one token."""
    clock = ManualClock()
    nodes = Nodes()
    nodes.streams["pad"] = _padder(clock, every=0, shape=shape)
    async with running(tmp_path, nodes=nodes, clock=clock, max_attempts=3, **FLOOR) as h:
        await h.register("pad")
        await h.register("honest", continuation=True)
        rank(h.runtime.routing.router, ["pad", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json=_body(CHAT, max_tokens=64))
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "pad"
        chunks = _data(r.text)
        assert not any("error" in c for c in chunks)
        assert _said(chunks) == ["Hel", "lo", "!"]
        final = chunks[-1]
        assert final["mesh"]["failover_from"] == ["pad"]
        assert final["mesh"]["node_id"] == "honest"
        stream = nodes.made["pad"]
        # cut at grace (2 s) + 1 output event / (1/s) after its first token: ~6 events
        assert stream.closed and stream.pulled <= 10
        assert nodes.nodes["honest:8801"].calls[-1]["body"]["mesh_continue"] == "Hel"
        assert h.in_flight("pad") == 0 and h.in_flight("honest") == 0
        assert await _failed(h, "pad")
        assert final["mesh"]["cost"] <= _most(2, 64)


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS])
async def test_a_node_sending_one_token_per_four_empty_events_is_cut(
    tmp_path: Path, path: str
) -> None:
    """A token every 4th event, events at twice the floor's rate: half the floor in output.
    With no node able to continue: the error event naming the floor; the node paid for the
    text it delivered only. Before: 2 events a second passed the floor, so the part ran to
    its 64 + 8 events and ended as a normal answer."""
    clock = ManualClock()
    nodes = Nodes()
    nodes.streams["pad"] = _padder(clock, every=4, path=path)
    async with running(tmp_path, nodes=nodes, clock=clock, **FLOOR) as h:
        await h.register("pad")
        r = await h.client.post(path, json=_body(path, max_tokens=64, allow_nodes=["pad"]))
        assert r.status_code == 200
        chunks = _data(r.text)
        err = chunks[-1]["error"]
        assert "too slow" in err["message"] and "with output" in err["message"]
        said = _said(chunks, path)
        assert said[0] == "Hel" and len(said) <= 6
        stream = nodes.made["pad"]
        assert stream.closed and stream.pulled <= 24
        assert h.in_flight("pad") == 0
        rec = await _rec(h)
        assert rec.outcome == "error"
        assert rec.completion_tokens <= len(said)  # its text, never its empty events
        assert rec.cost <= _most(2, len(said))


async def test_a_node_padding_its_answer_with_fast_empty_events_breaks_and_is_continued(
    tmp_path: Path,
) -> None:
    """Two tokens, then empty deltas as fast as they are read: past ``max_tokens`` + 8
    events with 2 output events it padded its answer, a break: continued on the other node,
    which finishes it. Before: the limit's normal end (``finish_reason: "length"``) after
    2 tokens, the answer cut short as if complete."""
    nodes = Nodes()
    nodes.streams["pad"] = _padder(None, every=0, gap_s=0.0)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("pad")
        await h.register("honest", continuation=True)
        rank(h.runtime.routing.router, ["pad", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json=_body(CHAT))
        chunks = _data(r.text)
        assert not any("error" in c for c in chunks)
        assert _said(chunks) == ["Hel", "lo", "!"]
        reasons = [c["choices"][0]["finish_reason"] for c in chunks
                   if c.get("choices") and c["choices"][0].get("finish_reason")]  # fmt: skip
        assert reasons == ["stop"]
        assert chunks[-1]["mesh"]["failover_from"] == ["pad"]
        assert nodes.made["pad"].pulled <= MAX + SLACK_EVENTS + 2
        assert await _failed(h, "pad")


async def test_an_answer_of_only_empty_events_without_a_successor_is_an_error(
    tmp_path: Path,
) -> None:
    """No token at all, empty deltas as fast as they are read, no other node: the error
    event naming the events without output, nothing charged. Before: a normal end
    (``"length"``) of an empty answer, the request recorded ``ok``."""
    nodes = Nodes()

    def events() -> Any:
        yield _role("pad")
        for _ in range(SAFETY):
            yield _empty(CHAT, "pad", "empty_delta")

    nodes.streams["pad"] = lambda node: Hostile(events)
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("pad")
        r = await h.client.post(CHAT, json=_body(CHAT, allow_nodes=["pad"]))
        chunks = _data(r.text)
        err = chunks[-1]["error"]
        assert "without output" in err["message"]
        assert _said(chunks) == []
        assert nodes.made["pad"].closed and nodes.made["pad"].pulled <= MAX + SLACK_EVENTS + 2
        rec = await _rec(h)
        assert rec.outcome == "error" and rec.completion_tokens == 0 and rec.cost == 0


async def test_an_honest_stream_with_openai_shapes_is_not_cut(tmp_path: Path) -> None:
    """A role-only first delta, tokens at 2/s (the floor 1/s) with an empty delta after
    every 10th (an engine's special token), the finish chunk and a usage-only final chunk:
    served whole, the node not blamed."""
    clock = ManualClock()
    nodes = Nodes()
    words = [f"w{i} " for i in range(40)]

    def events() -> Any:
        yield _role("ok")
        for i, w in enumerate(words):
            yield _token(CHAT, "ok", w)
            if i % 10 == 9:
                yield _empty(CHAT, "ok", "empty_delta")
        yield from _end(CHAT, "ok", len(words))

    nodes.streams["ok"] = lambda node: Hostile(events, clock, 0.5)
    async with running(tmp_path, nodes=nodes, clock=clock, **FLOOR) as h:
        await h.register("ok")
        await h.register("other")
        r = await h.client.post(CHAT, json=_body(CHAT, max_tokens=64, allow_nodes=["ok"]))
        chunks = _data(r.text)
        assert _said(chunks) == words and not any("error" in c for c in chunks)
        assert chunks[-1]["usage"]["completion_tokens"] == 40
        assert not await _failed(h, "ok")


async def test_reasoning_deltas_count_as_output(tmp_path: Path) -> None:
    """Output in a field other than ``content`` (``reasoning_content``, as vLLM streams a
    thinking model's; priced the same: ``core/delivered.py``) keeps the floor like text."""
    clock = ManualClock()
    nodes = Nodes()

    def think(i: int) -> bytes:
        delta = {"reasoning_content": f"r{i} "}
        return _ev({**_head(CHAT, "ok"), "choices": [{"index": 0, "delta": delta}]})

    def events() -> Any:
        yield _role("ok")
        yield _token(CHAT, "ok", "So")
        yield from (think(i) for i in range(30))
        yield _token(CHAT, "ok", " yes")
        yield from _end(CHAT, "ok", 32)

    nodes.streams["ok"] = lambda node: Hostile(events, clock, 0.5)
    async with running(tmp_path, nodes=nodes, clock=clock, **FLOOR) as h:
        await h.register("ok")
        await h.register("other")
        r = await h.client.post(CHAT, json=_body(CHAT, max_tokens=64, allow_nodes=["ok"]))
        chunks = _data(r.text)
        assert _said(chunks) == ["So", " yes"] and not any("error" in c for c in chunks)
        assert not await _failed(h, "ok")
