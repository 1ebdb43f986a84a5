"""A node that streams past the request's ``max_tokens`` (or forever), or trickles its
tokens, is cut off (``core/stream_guard.py``): the client gets a finished stream, is
charged for at most ``max_tokens``, the node's attempt ends as a failure, and a trickler's
stream goes on on another node where one can continue it. See docs/security.md,
"Hostile nodes". The gateway's clock is the harness's: a trickle of 10 s gaps takes no
real time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.cli.receipt_commands import check, keys_from_listing
from LLM_Mesh.core import strict_json
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.pricing import completion_bound, estimate_prompt_tokens, request_cost
from LLM_Mesh.core.receipt import PartStatus
from LLM_Mesh.core.receipt_verify import parse_keys
from LLM_Mesh.core.stream_guard import SLACK_EVENTS
from LLM_Mesh.registry.relay import SseRelay
from tests.registry.helpers import (
    FakeNode,
    FakeNodes,
    Harness,
    ManualClock,
    funded_key,
    rank,
    running,
)

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MODEL = "gemma-3-270m"
SSE = {"content-type": "text/event-stream"}
MAX = 8
SAFETY = 5_000  # "forever": a stream the test stops itself if the gateway never does


def _ev(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _head(path: str, node: str) -> dict[str, Any]:
    kind = "chat.completion.chunk" if path == CHAT else "text_completion"
    return {"id": f"x-{node}", "object": kind, "created": 7, "model": MODEL}


def _token(path: str, node: str, text: str) -> bytes:
    choice = (
        {"index": 0, "delta": {"content": text}} if path == CHAT else {"index": 0, "text": text}
    )
    return _ev({**_head(path, node), "choices": [choice]})


def _end(path: str, node: str, completion: int, finish: str = "stop") -> list[bytes]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    choice.update({"delta": {}} if path == CHAT else {"text": ""})
    usage = {"prompt_tokens": 4, "completion_tokens": completion, "total_tokens": 4 + completion}
    return [
        _ev({**_head(path, node), "choices": [choice]}),
        _ev({**_head(path, node), "choices": [], "usage": usage, "mesh": {"node_id": node}}),
        b"data: [DONE]\n\n",
    ]


def _role(node: str) -> bytes:
    return _ev({**_head(CHAT, node), "choices": [{"index": 0, "delta": {"role": "assistant"}}]})


class Hostile(httpx.AsyncByteStream):
    """A node's stream: ``events()`` produced lazily; ``pulled`` counts what the gateway
    read, ``closed`` says whether it closed the stream; ``gap_s`` advances the gateway's
    clock before each event after the first two (a trickle)."""

    def __init__(self, events: Callable[[], Any], clock: ManualClock | None = None,
                 gap_s: float = 0.0) -> None:  # fmt: skip
        self.events, self.clock, self.gap_s = events, clock, gap_s
        self.pulled = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for ev in self.events():
            if self.clock is not None and self.pulled >= 2:
                self.clock.advance(self.gap_s)
            self.pulled += 1
            yield ev

    async def aclose(self) -> None:
        self.closed = True


class Nodes(FakeNodes):
    """``streams[node_id]`` makes that node's stream; other nodes are honest."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: dict[str, Callable[[FakeNode], Hostile]] = {}
        self.made: dict[str, Hostile] = {}
        self.stream_factory = self._stream

    def _stream(self, node: FakeNode, model: str) -> httpx.Response:
        make = self.streams.get(node.node_id)
        if make is None:
            path = node.calls[-1]["path"]
            events = [_token(path, node.node_id, w) for w in ("lo", "!")] + _end(
                path, node.node_id, 2
            )
            return httpx.Response(200, headers=SSE, content=b"".join(events))
        stream = self.made[node.node_id] = make(node)
        return httpx.Response(200, headers=SSE, stream=stream)


def _data(text: str) -> list[dict[str, Any]]:
    """The client stream's data events (RFC 8259 JSON each), which must end with [DONE]."""
    lines = [ln[5:].strip() for ln in text.split("\n") if ln.startswith("data:")]
    assert lines[-1] == "[DONE]", text[-300:]
    assert lines.count("[DONE]") == 1
    return [strict_json.loads_object(ln) for ln in lines[:-1]]


def _said(chunks: list[dict[str, Any]], path: str = CHAT) -> list[str]:
    key = "delta" if path == CHAT else None
    out = []
    for c in chunks:
        for choice in c.get("choices") or []:
            piece = choice["delta"].get("content") if key else choice.get("text")
            if piece:
                out.append(piece)
    return out


def _most(prompt_chars: int, tokens: int) -> int:
    """What ``tokens`` completion tokens cost at most (the prompt at the estimate's count:
    an ASCII prompt of ``prompt_chars`` in one message)."""
    price = get_spec(MODEL).price  # type: ignore[union-attr]
    return request_cost(price, estimate_prompt_tokens("x" * prompt_chars, 1), tokens)


def _body(path: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": MODEL, "stream": True, "max_tokens": MAX, **kw}
    if path == CHAT:
        base["messages"] = [{"role": "user", "content": "hi"}]
    else:
        base["prompt"] = "hi"
    return base


async def _receipt_checks(h: Harness, text: str, completion: int) -> PartStatus:
    """The stream's receipt checks out offline (``llm-mesh receipt verify``'s check) and
    counts ``completion`` tokens; its one part's status."""
    keys = parse_keys(keys_from_listing((await h.client.get("/v1/ledger/keys")).text))
    receipt = check(text, keys)
    assert receipt.completion_tokens == completion and len(receipt.parts) == 1
    return receipt.parts[0].status


async def _failed(h: Harness, node: str) -> bool:
    """Whether the router counted the node's attempt as a failure (ejected it)."""
    view = {v["node_id"]: v for v in (await h.client.get("/mesh/nodes")).json()["nodes"]}
    return bool(view[node]["ejected"])


def _three_times(path: str) -> Callable[[FakeNode], Hostile]:
    def events() -> list[bytes]:
        toks = [_token(path, "liar", f"t{i} ") for i in range(3 * MAX)]
        return ([_role("liar")] if path == CHAT else []) + toks + _end(path, "liar", 3 * MAX)

    return lambda node: Hostile(events)


def _forever(path: str) -> Callable[[FakeNode], Hostile]:
    def events() -> Any:
        yield _role("liar")
        for i in range(SAFETY):
            yield _token(path, "liar", f"t{i} ")

    return lambda node: Hostile(events)


@pytest.mark.parametrize(
    ("path", "case"),
    [(CHAT, "3x"), (COMPLETIONS, "3x"), (CHAT, "forever")],
)  # (empty deltas for ever: a padded answer, a break: test_stream_empty_events.py)
async def test_a_node_streaming_past_max_tokens_is_cut_off_at_the_limit(
    tmp_path: Path, path: str, case: str
) -> None:
    nodes = Nodes()
    nodes.streams["liar"] = {"3x": _three_times(path), "forever": _forever(path)}[case]
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("liar")
        await h.register("honest")  # two nodes: one of them may be ejected
        r = await h.client.post(path, json=_body(path, allow_nodes=["liar"]))
        assert r.status_code == 200, r.text
        chunks = _data(r.text)  # before: 3×MAX tokens (forever: SAFETY) reached the client
        said = _said(chunks, path)
        want = MAX
        assert len(said) == want
        ending = [c for c in chunks if c.get("choices") and c["choices"][0].get("finish_reason")]
        assert [c["choices"][0]["finish_reason"] for c in ending] == ["length"]
        final = chunks[-1]  # the normal end: the finish chunk with usage, mesh; then [DONE]
        assert final is ending[0] and final["usage"]["completion_tokens"] == want
        assert final["id"] == "x-liar" and final["object"] == chunks[0]["object"]
        mesh = final["mesh"]
        assert mesh["node_id"] == "liar" and mesh["completion_tokens"] == want
        assert 0 < mesh["cost"] <= _most(2, MAX)
        assert await _receipt_checks(h, r.text, want) is PartStatus.BROKEN
        stream = nodes.made["liar"]
        assert stream.closed and stream.pulled <= MAX + SLACK_EVENTS + 2
        assert h.in_flight("liar") == 0  # the gateway's slot is free
        assert await _failed(h, "liar")  # a failure for the router: ejected
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.outcome == "ok" and rec.completion_tokens == want
        assert rec.cost == mesh["cost"] <= _most(2, MAX)


async def test_a_usage_past_max_tokens_is_read_as_max_tokens(tmp_path: Path) -> None:
    def events() -> list[bytes]:
        toks = [_token(CHAT, "liar", f"t{i} ") for i in range(MAX)]
        return [_role("liar"), *toks, *_end(CHAT, "liar", 3 * MAX)]

    nodes = Nodes()
    nodes.streams["liar"] = lambda node: Hostile(events)
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("liar")
        await h.register("honest")
        r = await h.client.post(CHAT, json=_body(CHAT, allow_nodes=["liar"]))
        chunks = _data(r.text)
        final = chunks[-1]
        # before: the node's 3×MAX in usage and in the record (charged at the estimate)
        assert final["usage"]["completion_tokens"] == MAX
        assert final["mesh"]["completion_tokens"] == MAX
        assert final["mesh"]["cost"] <= _most(2, MAX)
        assert await _receipt_checks(h, r.text, MAX) is PartStatus.MISSING
        assert h.in_flight("liar") == 0 and await _failed(h, "liar")
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.completion_tokens == MAX


async def test_a_request_without_max_tokens_is_bounded_by_the_context(tmp_path: Path) -> None:
    nodes = Nodes()
    nodes.streams["liar"] = _forever(CHAT)
    async with running(tmp_path, nodes=nodes) as h:
        nodes.add("liar")
        reg = {"node_id": "liar", "url": "http://liar:8801", "max_concurrency": 4,
               "models": [{"id": "tiny-custom", "context_length": 64}]}  # fmt: skip
        assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200
        body = {"model": "tiny-custom", "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        r = await h.client.post(CHAT, json=body, headers=await funded_key(h))
        assert r.status_code == 200, r.text
        chunks = _data(r.text)  # before: all SAFETY tokens
        bound = 64  # the model's context: no honest node generates more
        assert len(_said(chunks)) == bound
        assert chunks[-1]["usage"]["completion_tokens"] == bound
        assert nodes.made["liar"].closed and h.in_flight("liar") == 0


async def test_an_honest_node_without_max_tokens_is_not_cut_at_the_estimate(
    tmp_path: Path,
) -> None:
    """The estimate counts a prompt of 120 characters as 56 tokens (3 a token, + 16), so it
    is priced at 64 - 56 = 8 completion tokens; a real tokenizer reads them as 30 (4 a
    token) and the honest node has 34 tokens of room. A client sending such a prompt
    without ``max_tokens`` got every honest node it reached cut off after 8 tokens and
    counted as failed (ejected) (found 2026-12-02)."""
    nodes = Nodes()

    def events() -> list[bytes]:
        toks = [_token(CHAT, "ok", f"t{i} ") for i in range(30)]
        return [_role("ok"), *toks, *_end(CHAT, "ok", 30, "length")]

    nodes.streams["ok"] = lambda node: Hostile(events)
    async with running(tmp_path, nodes=nodes) as h:
        nodes.add("ok")
        reg = {"node_id": "ok", "url": "http://ok:8801", "max_concurrency": 4,
               "models": [{"id": "tiny-custom", "context_length": 64}]}  # fmt: skip
        assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200
        prompt = "word " * 24
        assert completion_bound(estimate_prompt_tokens(prompt, 1), 0, 64) == 1  # the estimate's
        body = {"model": "tiny-custom", "stream": True,
                "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
        r = await h.client.post(CHAT, json=body, headers=await funded_key(h))
        assert r.status_code == 200, r.text
        chunks = _data(r.text)
        assert _said(chunks) == [f"t{i} " for i in range(30)]  # before: the first 8
        assert chunks[-1]["usage"]["completion_tokens"] == 30
        assert not await _failed(h, "ok")


def _trickle(clock: ManualClock, gap_s: float, head: list[bytes] | None = None,
             filler: bytes | None = None) -> Callable[[FakeNode], Hostile]:  # fmt: skip
    """Two events at once, then one event every ``gap_s`` seconds of the gateway's clock."""

    def events() -> Any:
        yield from head or [_role("slow"), _token(CHAT, "slow", "Hel")]
        for i in range(SAFETY):
            yield filler or _token(CHAT, "slow", f"{i}")

    return lambda node: Hostile(events, clock, gap_s)


FLOOR = {"stream_min_rate": 1.0, "stream_grace_s": 2.0}


async def test_a_trickling_node_is_cut_off_and_its_stream_continued(tmp_path: Path) -> None:
    clock = ManualClock()
    nodes = Nodes()
    nodes.streams["slow"] = _trickle(clock, gap_s=10.0)
    async with running(tmp_path, nodes=nodes, clock=clock, max_attempts=3, **FLOOR) as h:
        await h.register("slow")
        await h.register("honest", continuation=True)
        rank(h.runtime.routing.router, ["slow", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json=_body(CHAT, max_tokens=64))
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "slow"
        chunks = _data(r.text)  # before: 64 tokens, 10 s apart (640 s on the clock)
        assert not any("error" in c for c in chunks)
        said = _said(chunks)
        assert said[0] == "Hel" and said[-2:] == ["lo", "!"] and len(said) < 6
        final = chunks[-1]
        assert final["mesh"]["failover_from"] == ["slow"]
        assert final["mesh"]["node_id"] == "honest"
        assert nodes.made["slow"].closed and nodes.made["slow"].pulled < 6
        continued = nodes.nodes["honest:8801"].calls[-1]["body"]
        assert continued["mesh_continue"].startswith("Hel")
        assert h.in_flight("slow") == 0 and h.in_flight("honest") == 0
        assert await _failed(h, "slow")
        assert final["mesh"]["cost"] <= _most(2, 64)


async def test_a_trickling_node_without_a_successor_ends_with_the_error_event(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    nodes = Nodes()
    nodes.streams["slow"] = _trickle(clock, gap_s=10.0)
    async with running(tmp_path, nodes=nodes, clock=clock, **FLOOR) as h:
        await h.register("slow")
        r = await h.client.post(CHAT, json=_body(CHAT, max_tokens=64))
        chunks = _data(r.text)  # before: 64 tokens over 640 s, a normal end
        err = chunks[-1]["error"]
        assert "too slow" in err["message"] and err["code"] == "continuation_unsupported"
        assert len(_said(chunks)) < 5
        assert nodes.made["slow"].closed and h.in_flight("slow") == 0
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.outcome == "error" and rec.cost <= _most(2, 64)


async def test_a_node_that_never_sends_a_token_is_cut_off(tmp_path: Path) -> None:
    """SSE comments every 10 s keep the read timeout from firing; no token ever comes."""
    clock = ManualClock()
    nodes = Nodes()
    nodes.streams["slow"] = _trickle(
        clock, gap_s=10.0, head=[_role("slow"), b": ping\n\n"], filler=b": ping\n\n"
    )
    # (heartbeats that stay fresh while the clock runs to the cut)
    async with running(tmp_path, nodes=nodes, clock=clock, max_attempts=3,
                       heartbeat_interval_s=600.0, **FLOOR) as h:  # fmt: skip
        await h.register("slow")
        await h.register("honest")
        rank(h.runtime.routing.router, ["slow", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json=_body(CHAT))
        chunks = _data(r.text)  # before: SAFETY pings over 50,000 s, then no [DONE]
        assert _said(chunks) == ["lo", "!"]
        assert chunks[-1]["mesh"]["failover_from"] == ["slow"]
        first_token_s = h.settings.request_timeout_s + FLOOR["stream_grace_s"]
        assert nodes.made["slow"].pulled <= first_token_s / 10 + 3
        assert h.in_flight("slow") == 0


async def test_a_slow_client_does_not_make_its_node_too_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time the relay spends writing to the client is not counted against the node:
    an honest node (a token per gateway read) behind a client that takes 10 s per write."""
    clock = ManualClock()
    nodes = Nodes()
    words = [f"w{i} " for i in range(20)]
    nodes.streams["ok"] = lambda node: Hostile(
        lambda: [_role("ok"), *(_token(CHAT, "ok", w) for w in words), *_end(CHAT, "ok", 20)]
    )
    real = SseRelay.events

    async def slow_client(self: SseRelay) -> AsyncIterator[bytes]:
        async for out in real(self):
            clock.advance(10.0)  # the client takes 10 s to take each write
            yield out

    monkeypatch.setattr(SseRelay, "events", slow_client)
    async with running(tmp_path, nodes=nodes, clock=clock, **FLOOR) as h:
        await h.register("ok")
        await h.register("other")
        r = await h.client.post(CHAT, json=_body(CHAT, max_tokens=64, allow_nodes=["ok"]))
        chunks = _data(r.text)  # without the client's time taken out: cut off as too slow
        assert len(_said(chunks)) == 20 and not any("error" in c for c in chunks)
        assert chunks[-1]["mesh"]["node_id"] == "ok"
        assert not await _failed(h, "ok")


async def test_an_honest_stream_at_its_limit_is_not_cut(tmp_path: Path) -> None:
    """Exactly ``max_tokens`` tokens, an echoed prompt before them (a completion with
    ``echo``), the role, finish and usage chunks: served as the node sent them."""
    nodes = Nodes()

    def events() -> list[bytes]:
        toks = [_token(COMPLETIONS, "ok", f"t{i} ") for i in range(MAX)]
        return [_token(COMPLETIONS, "ok", "hi"), *toks, *_end(COMPLETIONS, "ok", MAX, "length")]

    nodes.streams["ok"] = lambda node: Hostile(events)
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("ok")
        await h.register("other")
        r = await h.client.post(COMPLETIONS, json=_body(COMPLETIONS, echo=True, allow_nodes=["ok"]))
        chunks = _data(r.text)
        assert _said(chunks, COMPLETIONS) == ["hi"] + [f"t{i} " for i in range(MAX)]
        assert chunks[-1]["usage"]["completion_tokens"] == MAX
        assert not await _failed(h, "ok")


class Paced(httpx.AsyncByteStream):
    """One of a node's streams that share its pace: every event of any of them takes
    ``gap_s`` of the gateway's clock (the node's rate in all, divided among its streams
    by taking turns); ``tokens`` tokens, then its end."""

    def __init__(self, clock: ManualClock, gap_s: float, tokens: int) -> None:
        self.clock, self.gap_s, self.tokens = clock, gap_s, tokens
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield _role("slow") + _token(CHAT, "slow", "t0 ")
        for i in range(1, self.tokens):
            await asyncio.sleep(0)  # the node's other streams take their turn
            if self.closed:
                return
            self.clock.advance(self.gap_s)
            yield _token(CHAT, "slow", f"t{i} ")
        for ev in _end(CHAT, "slow", self.tokens):
            yield ev

    async def aclose(self) -> None:
        self.closed = True


async def _paced(tmp_path: Path, streams: int, gap_s: float, tokens: int = 40) -> list[str]:
    """``streams`` concurrent streams of one node whose every event takes ``gap_s`` of the
    gateway's clock (floor: 1 event/s after 2 s); each stream's client text."""
    clock = ManualClock()
    nodes = Nodes()
    nodes.streams["slow"] = lambda node: Paced(clock, gap_s, tokens)
    async with running(tmp_path, nodes=nodes, clock=clock, heartbeat_interval_s=600.0,
                       **FLOOR) as h:  # fmt: skip
        await h.register("slow", max_concurrency=4, max_queue=0)
        rs = await asyncio.gather(
            *(h.client.post(CHAT, json=_body(CHAT, max_tokens=64)) for _ in range(streams))
        )
        assert h.in_flight("slow") == 0
        assert all(r.status_code == 200 for r in rs)
        return [r.text for r in rs]


async def test_a_slow_honest_node_serving_four_streams_is_not_cut(tmp_path: Path) -> None:
    """A node at 1.6 events a second in all serves 4 streams: 0.4/s each, below the floor
    of 1/s but above its share of it (1/4 each: the floor holds per node). Before: every
    stream cut off as too slow (with no other node to continue on: the error event)."""
    texts = await _paced(tmp_path, streams=4, gap_s=1 / 1.6)
    for text in texts:
        chunks = _data(text)
        assert not any("error" in c for c in chunks), chunks[-1]
        assert len(_said(chunks)) == 40 and chunks[-1]["mesh"]["node_id"] == "slow"


async def test_a_node_trickling_its_only_stream_is_still_cut(tmp_path: Path) -> None:
    """The same 0.4 events a second per stream on a node serving nothing else: held to the
    whole floor, whatever ``max_concurrency`` it declares (4 here)."""
    (text,) = await _paced(tmp_path, streams=1, gap_s=1 / 0.4)
    err = _data(text)[-1]["error"]
    assert "too slow" in err["message"]


async def test_a_continuing_node_is_held_to_its_own_context(tmp_path: Path) -> None:
    """A custom model without ``max_tokens``: the node with the smaller context (64) breaks
    off after 10 tokens, one declaring 512 continues with 200 more, honestly. Its part is
    held to its own context less what was sent (502), not to the first node's (before: cut
    off after 54, and counted as a failure)."""
    nodes = Nodes()

    def broken() -> list[bytes]:  # no [DONE]: a break
        return [_role("a"), *(_token(CHAT, "a", f"a{i} ") for i in range(10))]

    def rest() -> list[bytes]:
        toks = [_token(CHAT, "b", f"b{i} ") for i in range(200)]
        return [_role("b"), *toks, *_end(CHAT, "b", 200)]

    nodes.streams["a"] = lambda node: Hostile(broken)
    nodes.streams["b"] = lambda node: Hostile(rest)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        for node, ctx in (("a", 64), ("b", 512)):
            nodes.add(node)
            reg = {"node_id": node, "url": f"http://{node}:8801", "continuation": True,
                   "models": [{"id": "tiny-custom", "context_length": ctx}]}  # fmt: skip
            assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200
        rank(h.runtime.routing.router, ["a", "b"], "tiny-custom", h.clock())
        body = {"model": "tiny-custom", "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        r = await h.client.post(CHAT, json=body, headers=await funded_key(h))
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "a"
        chunks = _data(r.text)
        said = _said(chunks)
        assert said[:10] == [f"a{i} " for i in range(10)]
        assert said[10:] == [f"b{i} " for i in range(200)]
        assert chunks[-1]["mesh"]["failover_from"] == ["a"]
        assert not await _failed(h, "b")


async def test_a_node_streaming_one_endless_event_is_cut_off_unread(tmp_path: Path) -> None:
    """After its role chunk a node sends 24 MiB of one event that never ends (no blank
    line, a newline in each piece or not), as fast as it is read. The gateway neither
    gathers it all (memory) nor scans what it gathered again for each piece (each piece
    cost a copy and a search of the whole, quadratic: seconds of the event loop, every
    other request's): the stream breaks once the event is past ``MAX_EVENT_BYTES``, and is
    continued on another node."""
    import time

    piece = 64 * 1024

    def flood(newlines: bool) -> Callable[[FakeNode], Hostile]:
        def events() -> Any:
            yield _role("flood")
            yield b"data: {"
            filler = (b"x" * (piece - 1) + b"\n") if newlines else b"x" * piece
            for _ in range(24 * 16):
                yield filler

        return lambda node: Hostile(events)

    for newlines in (False, True):
        nodes = Nodes()
        nodes.streams["flood"] = flood(newlines)
        async with running(tmp_path / str(newlines), nodes=nodes, max_attempts=3) as h:
            await h.register("flood")
            await h.register("honest")
            rank(h.runtime.routing.router, ["flood", "honest"], MODEL, h.clock())
            t0 = time.perf_counter()
            r = await h.client.post(CHAT, json=_body(CHAT))
            took = time.perf_counter() - t0
            chunks = _data(r.text)
            assert _said(chunks) == ["lo", "!"]
            assert chunks[-1]["mesh"]["failover_from"] == ["flood"]
            assert nodes.made["flood"].pulled * piece <= 2 * 1024 * 1024, newlines
            assert took < 5, took
