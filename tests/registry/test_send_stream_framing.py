"""The send stage's framing of a node's SSE bytes into events, and the relay's bytes for them:
however the node's bytes are cut into reads, the client gets the same stream, the node's
events unchanged but for ``\\r\\n`` line endings (``\\n``), and the receipt's text is the one
the node sent (a character cut by a read included)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.sse_frame import MAX_EVENT_BYTES
from LLM_Mesh.core.stream_guard import SharedTime, StreamFloor
from LLM_Mesh.registry.job import Tally
from LLM_Mesh.registry.node_client import _line_batches
from LLM_Mesh.registry.relay import SseRelay
from LLM_Mesh.registry.send_stream import NodeStream
from tests.registry.helpers import FakeNode, FakeNodes, running

MODEL = "gemma-3-270m"
BASE = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": MODEL}
WORDS = ["Once", " upon", " a tïme", " ☃"]


def _ev(obj: dict[str, Any], end: bytes = b"\n") -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + end + end


def node_bytes(end: bytes = b"\n") -> bytes:
    out = [_ev({**BASE, "choices": [{"index": 0, "text": w}]}, end) for w in WORDS]
    out.append(b": a comment line" + end + _ev({**BASE, "choices": []}, b"\n")[:-1] + end)
    usage = {"prompt_tokens": 3, "completion_tokens": len(WORDS), "total_tokens": 7}
    out.append(_ev({**BASE, "choices": [], "usage": usage, "mesh": {"node_id": "n"}}, end))
    out.append(b"data: [DONE]" + end + end)
    return b"".join(out)


class _Resp:
    status_code = 200

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads
        self.left = False  # done_reading was called

    async def _raw(self) -> AsyncIterator[bytes]:
        for r in self.reads:
            yield r

    def aiter_raw(self) -> AsyncIterator[bytes]:
        return self._raw()

    def aiter_line_batches(self) -> AsyncIterator[list[str]]:  # the same bytes, as lines
        return _line_batches(self._raw())

    async def aclose(self) -> None:
        return None

    async def done_reading(self) -> None:
        self.left = True


class _Exchange:
    def __init__(self) -> None:
        self.tally = Tally()
        self.tally.node_id = "n"
        self.att = None
        self.first = 0
        # no bound, no stop
        self.job = SimpleNamespace(token_limit=0, choices=1, stop_bytes=0, model=MODEL,
                                   echo=False, text_only=False)  # fmt: skip
        self.rt = SimpleNamespace(clock=lambda: 0.0, stream_floor=StreamFloor())
        self.routing = SimpleNamespace(shares=SharedTime())

    def first_token(self) -> None:
        self.first += 1

    def finish(self, *_a: Any, **_k: Any) -> None:
        return None


async def relayed(reads: list[bytes]) -> tuple[bytes, _Exchange]:
    ex = _Exchange()
    ns = NodeStream(ex)  # type: ignore[arg-type]
    ns.resp = _Resp(reads)  # type: ignore[assignment]

    def finalize(obj: dict[str, Any], _continued: bool) -> None:
        obj["mesh"] = {"gateway": True}

    out = b"".join([b async for b in SseRelay(ns.events(), finalize).events()])
    return out, ex


def _cuts(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_the_client_gets_the_same_stream_however_the_reads_cut_it() -> None:
    whole, ex = await relayed([node_bytes()])
    node = node_bytes()
    # every event before the final one: as sent, but for an event's fields other than its
    # data line (the comment line), which are not relayed
    sent = node.replace(b": a comment line\n", b"")
    final_at = sent.rfind(b"data: ", 0, sent.index(b'"usage"'))
    assert whole.startswith(sent[:final_at])
    final, done = whole[final_at:].split(b"\n\n")[:2]
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert json.loads(final[len(b"data: ") :]) == {
        **BASE, "choices": [], "usage": usage, "mesh": {"gateway": True}
    }  # fmt: skip
    assert done == b"data: [DONE]" and whole.endswith(b"data: [DONE]\n\n")
    text = "".join(WORDS)
    assert ex.first == 1 and ex.tally.completion_tokens == 4 and ex.tally.prompt_tokens == 3
    assert ex.tally.output_sha256 == output_sha256(text)
    for size in (1, 2, 3, 7, 64):  # a character, a line ending, an event cut by reads
        got, ex2 = await relayed(_cuts(node, size))
        assert got == whole, size
        assert [o.output_sha256 for o in ex2.tally.outputs] == [output_sha256(text)]


@pytest.mark.parametrize("size", [1, 5, 1000])
async def test_crlf_line_endings_are_relayed_as_lf(size: int) -> None:
    lf, _ = await relayed([node_bytes()])
    crlf, ex = await relayed(_cuts(node_bytes(b"\r\n"), size))
    assert crlf == lf
    assert ex.tally.output_sha256 == output_sha256("".join(WORDS))


async def test_blank_lines_between_events_are_not_events() -> None:
    lf, _ = await relayed([node_bytes()])
    spaced, _ = await relayed([b"\n\n" + node_bytes().replace(b"\n\n", b"\n\n\n")])
    assert spaced == lf


async def test_an_unterminated_last_done_ends_the_stream() -> None:
    data = node_bytes()[: -len(b"\n\n")]  # "data: [DONE]" without its blank line
    got, ex = await relayed(_cuts(data, 5))
    lf, _ = await relayed([node_bytes()])
    assert got == lf and ex.tally.outcome == "ok"


async def test_events_before_an_error_event_in_the_same_read_reach_the_client_first(
    tmp_path: Path,
) -> None:
    """One read holds two chunks and the node's error event; nobody can continue: the
    client gets the two chunks, then the gateway's error event and ``[DONE]``."""
    nodes = FakeNodes()
    err = b'data: {"error": {"message": "engine exploded", "type": "api_error"}}\n\n'

    def factory(node: FakeNode, model: str) -> httpx.Response:
        chunks = [_ev({**BASE, "choices": [{"index": 0, "text": w}]}) for w in WORDS[:2]]
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=b"".join([*chunks, err]))  # fmt: skip

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=1) as h:
        await h.register("only")
        body = {"model": MODEL, "prompt": "Tell me:", "stream": True, "max_tokens": 10}
        r = await h.client.post("/v1/completions", json=body)
        events = [e for e in r.text.split("\n\n") if e]
        texts = [json.loads(e[6:])["choices"][0]["text"] for e in events[:2]]
        assert texts == WORDS[:2]
        assert "engine exploded" in json.loads(events[2][6:])["error"]["message"]
        assert events[3:] == ["data: [DONE]"]


async def test_a_stream_without_usage_tells_the_router_its_counted_tokens() -> None:
    """[DONE] without the node's usage chunk: its content chunks are its count, for the
    payment and for the router's per-token time alike (found 2026-12-04, review: the
    attempt was finished with 0 before the count was made, so the router never learnt
    the node's speed from such streams)."""
    node = b"".join(_ev({**BASE, "choices": [{"index": 0, "text": w}]}) for w in WORDS)
    ex = _Exchange()
    heard: list[int] = []
    ex.att = object()  # type: ignore[assignment]
    ex.finish = lambda *_a, completion_tokens=0, **_k: heard.append(completion_tokens)  # type: ignore[method-assign]
    ns = NodeStream(ex)  # type: ignore[arg-type]
    ns.resp = _Resp([node + b"data: [DONE]\n\n"])  # type: ignore[assignment]
    out = b"".join([b async for b in SseRelay(ns.events(), lambda _o, _c: None).events()])
    assert out.endswith(b"data: [DONE]\n\n")
    assert ex.tally.completion_tokens == len(WORDS)
    assert heard == [len(WORDS)]


class _Stopping(_Exchange):
    def __init__(self) -> None:
        super().__init__()
        self.stopped: list[Any] = []
        self.broken: list[Any] = []

    def broke(self, outcome: Any) -> str | None:
        self.broken.append(outcome)
        return None

    def stop(self, why: Any) -> None:
        self.stopped.append(why)


async def test_nothing_the_node_sends_after_its_done_is_relayed_or_counted() -> None:
    """The node's [DONE] ends its part: an event after it (in the same read or a later one)
    is neither relayed nor counted (found 2026-12-04, review: a node without a usage chunk
    had what it sent after its [DONE] relayed before the gateway's and paid)."""
    node = b"".join(_ev({**BASE, "choices": [{"index": 0, "text": w}]}) for w in WORDS)
    after = _ev({**BASE, "choices": [{"index": 0, "text": " more"}]})
    for reads in ([node + b"data: [DONE]\n\n" + after], [node + b"data: [DONE]\n\n", after]):
        ex = _Stopping()
        ns = NodeStream(ex)  # type: ignore[arg-type]
        ns.resp = _Resp(reads)  # type: ignore[assignment]
        out = b"".join([b async for b in SseRelay(ns.events(), lambda _o, _c: None).events()])
        assert b" more" not in out and out.endswith(b"data: [DONE]\n\n"), reads
        assert ex.tally.completion_tokens == len(WORDS)
        assert ex.tally.output_sha256 == output_sha256("".join(WORDS))


async def test_an_oversized_event_after_done_does_not_break_the_finished_part() -> None:
    """What the node sends after its [DONE] is not read as its part's: an event past the
    size bound there does not break a finished answer (found 2026-12-04, review: it was a
    broken node, its finished answer failed over to be continued elsewhere)."""
    node = b"".join(_ev({**BASE, "choices": [{"index": 0, "text": w}]}) for w in WORDS)
    huge = b"data: " + b"x" * (MAX_EVENT_BYTES + 10)
    ex = _Stopping()
    ns = NodeStream(ex)  # type: ignore[arg-type]
    ns.resp = _Resp([node + b"data: [DONE]\n\n", huge])  # type: ignore[assignment]
    out = b"".join([b async for b in SseRelay(ns.events(), lambda _o, _c: None).events()])
    assert b'"error"' not in out and out.endswith(b"data: [DONE]\n\n")
    assert ex.tally.completion_tokens == len(WORDS) and ex.tally.outcome == "ok"


class _HeldOpen(_Resp):
    """A node that sends its reads, then holds the connection until the read times out."""

    async def _raw(self) -> AsyncIterator[bytes]:
        for r in self.reads:
            yield r
        from LLM_Mesh.registry.node_client import NodeTimeout

        raise NodeTimeout("node read timed out", "ReadTimeout")


async def test_a_node_holding_on_after_done_does_not_have_its_answer_continued() -> None:
    """Found 2026-12-04 (last read): a node that sent its answer and [DONE] (no usage chunk)
    and then held the connection open until the read timed out was taken for broken: its
    finished answer was continued on another node. Now it ends as the answer it is, paid
    on its counted chunks. Since 2026-12-05 nothing after its [DONE] is read (its timeout
    is never waited for): the part ends there, a success to the router."""
    node = b"".join(_ev({**BASE, "choices": [{"index": 0, "text": w}]}) for w in WORDS)
    ex = _Stopping()
    ns = NodeStream(ex)  # type: ignore[arg-type]
    ns.resp = _HeldOpen([node + b"data: [DONE]\n\n"])  # type: ignore[assignment]
    out = b"".join([b async for b in SseRelay(ns.events(), lambda _o, _c: None).events()])
    assert b'"error"' not in out and out.endswith(b"data: [DONE]\n\n"), out
    assert not ex.stopped and ex.tally.outcome == "ok"  # its attempt finished as a success
    assert ex.tally.completion_tokens == len(WORDS)
    assert ex.tally.output_sha256 == output_sha256("".join(WORDS))
    assert not ex.broken  # (before 2026-12-05: the timeout was awaited, then heard)


class _DripsAfterDone(_Resp):
    """A node that sends its answer and [DONE], then a keep-alive comment at every read
    (each inside the read timeout, a minute apart say) until the test's safety stop."""

    def __init__(self, reads: list[bytes]) -> None:
        super().__init__(reads)
        self.pulled = 0

    async def _raw(self) -> AsyncIterator[bytes]:
        for r in self.reads:
            yield r
        while self.pulled < 10_000:
            self.pulled += 1
            yield b": still here\n\n"


async def test_a_node_dripping_after_its_done_is_not_read_on() -> None:
    """Found 2026-12-05: after a node's [DONE] the gateway read its connection to its end,
    every read discarded, no bound but the read timeout between two reads: a comment every
    minute held the client's [DONE] (and the attempt) for as long as the node went on. Since
    then nothing after [DONE] is read: the part ends there, the answer the finished one,
    the connection let go (``done_reading``: reused only if it ends cleanly at once)."""
    node = b"".join(_ev({**BASE, "choices": [{"index": 0, "text": w}]}) for w in WORDS)
    ex = _Stopping()
    ns = NodeStream(ex)  # type: ignore[arg-type]
    ns.resp = resp = _DripsAfterDone([node + b"data: [DONE]\n\n"])  # type: ignore[assignment]
    out = b"".join([b async for b in SseRelay(ns.events(), lambda _o, _c: None).events()])
    assert b'"error"' not in out and out.endswith(b"data: [DONE]\n\n"), out
    assert resp.pulled == 0 and resp.left, resp.pulled
    assert not ex.stopped and ex.tally.outcome == "ok"  # its attempt finished as a success
    assert ex.tally.completion_tokens == len(WORDS) and not ex.broken
