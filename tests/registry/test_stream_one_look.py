"""A node part's data lines are parsed once, and its choices looked at once
(``core/stream_guard.chunk_reading``), the results passed along (``stream32``, 2026-12-05):
the floor's count, the limit's count of content chunks, and the text, content chunks and
bytes of the part for its receipt and price are those the kept data lines give when parsed
again (``registry/continuation.delivered``, what the part reader did before, at its limit
and at its end), for streams of every shape the gateway relays."""

from __future__ import annotations

import json
from json.decoder import JSONDecoder
from types import SimpleNamespace
from typing import Any

import pytest

from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.delivered import completion_cap, priced_completion
from LLM_Mesh.core.receipt import PartStatus
from LLM_Mesh.core.stream_guard import SharedTime, StreamFloor
from LLM_Mesh.registry.continuation import delivered
from LLM_Mesh.registry.job import Tally
from LLM_Mesh.registry.stream_part import Overrun, PartReader

MODEL = "gemma-3-270m"
HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}


class _Exchange:
    def __init__(self, limit: int, choices: int = 1) -> None:
        self.tally = Tally()
        self.tally.node_id = "n"
        self.job = SimpleNamespace(token_limit=limit, max_tokens=limit, choices=choices,
                                   stop_bytes=0, model=MODEL, echo=False,
                                   text_only=False)  # fmt: skip
        self.rt = SimpleNamespace(clock=lambda: 0.0, stream_floor=StreamFloor(), metrics=None)
        self.routing = SimpleNamespace(shares=SharedTime())
        self.firsts = 0

    def first_token(self) -> None:
        self.firsts += 1


def _reader(limit: int, choices: int = 1) -> PartReader:
    reader = PartReader(_Exchange(limit, choices))  # type: ignore[arg-type]
    reader._part()
    return reader


def _ev(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode()  # ensure_ascii: escapes, pairs included


def _delta(i: int = 0, **delta: Any) -> dict[str, Any]:
    return {"index": i, "delta": delta, "finish_reason": None}


def _chunk(*choices: dict[str, Any], **extra: Any) -> bytes:
    return _ev({**HEAD, **extra, "choices": list(choices)})


def _final(ct: int) -> bytes:
    usage = {"prompt_tokens": 5, "completion_tokens": ct, "total_tokens": 5 + ct}
    return _ev({**HEAD, "choices": [], "usage": usage, "mesh": {"receipt": None}})


# the chunks of many shapes a node may send: text of any kind (an escaped surrogate pair,
# a character of 4 UTF-8 bytes), output that is no text (reasoning, a tool call, content
# parts), chunks without output, the node's own name for the model (rewritten), a second
# choice (n = 2)
SHAPES: list[bytes] = [
    _chunk(_delta(role="assistant", content="")),
    _chunk(_delta(content="Once")),
    _chunk(_delta(content=" upon \ud83d\ude00 a tïme ☃")),
    _chunk(_delta()),
    _chunk(_delta(reasoning_content="hm, ")),
    _chunk(_delta(tool_calls=[{"index": 0, "function": {"name": "f", "arguments": "{"}}])),
    _chunk(_delta(content=[{"type": "text", "text": "parts"}])),
    _chunk(_delta(content=" x", refusal="no"), model="node-name-for-it"),
    _chunk({"index": 0, "text": " completion"}),
    _chunk(_delta(content=None, x_pad="zzzz")),
    _chunk(_delta(content="."), finish_reason=None),
]
TWO = [
    _chunk(_delta(0, content="a"), _delta(1, content="bé")),
    _chunk(_delta(1, content="only the second")),
    _chunk(_delta(1, reasoning="r"), _delta(0, content="c")),
]


def _read(reader: PartReader, events: list[bytes]) -> None:
    batch, broken = reader._events(events)
    assert broken is None, broken
    assert len(batch) == len(events)


def _old_way(reader: PartReader, choices: int) -> tuple[str, int, int]:
    return delivered(reader.data, choices)  # the kept lines, parsed again


@pytest.mark.parametrize(("events", "choices"), [(SHAPES, 1), (TWO, 2), (SHAPES + SHAPES, 1)])
def test_a_finished_parts_text_and_bytes_are_those_of_its_data_lines(
    events: list[bytes], choices: int
) -> None:
    reader = _reader(1000, choices)
    _read(reader, [*events, _final(10_000)])
    text, chunks, nbytes = _old_way(reader, choices)
    tally = reader.ex.tally
    [part] = tally.outputs
    assert part.output_sha256 == tally.output_sha256 == output_sha256(text)
    assert tally.completion_cap == completion_cap(nbytes, choices)
    assert tally.completion_tokens == priced_completion(10_000, nbytes, choices)
    assert (reader.chunks, reader.nbytes) == (chunks, nbytes) and chunks > 0


@pytest.mark.parametrize(("events", "choices"), [(SHAPES, 1), (TWO, 2)])
def test_a_broken_parts_text_chunks_and_bytes_are_those_of_its_data_lines(
    events: list[bytes], choices: int
) -> None:
    reader = _reader(1000, choices)
    _read(reader, events)
    text, chunks, nbytes = _old_way(reader, choices)
    priced = reader._unsigned_part(PartStatus.BROKEN)
    assert priced == priced_completion(chunks, nbytes, choices)
    [part] = reader.ex.tally.outputs
    assert (part.completion_tokens, part.output_sha256) == (chunks, output_sha256(text))
    assert reader.text == text and (reader.data, reader.pieces) == ([], [])
    assert (reader.chunks, reader.nbytes) == (0, 0)  # the next part starts from nothing
    _read(reader, events[:2])
    assert reader.chunks == _old_way(reader, choices)[1]


def test_each_data_line_is_parsed_once_even_at_the_limit_and_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before the fold a part that reached its limit (every honest answer cut by
    ``max_tokens``) had all its data lines parsed again there, and again at its final
    chunk: three parses of each line, now one."""
    parses = 0
    raw_decode = JSONDecoder.raw_decode

    def counted(self: JSONDecoder, s: str, idx: int = 0) -> tuple[Any, int]:
        nonlocal parses
        parses += 1
        return raw_decode(self, s, idx)

    monkeypatch.setattr(JSONDecoder, "raw_decode", counted)
    limit = 6
    tokens = [_chunk(_delta(content=f" t{i}")) for i in range(limit)]
    finish = _chunk({"index": 0, "delta": {}, "finish_reason": "length"})
    events = [_chunk(_delta(role="assistant", content="")), *tokens, finish, _final(limit)]
    reader = _reader(limit)
    _read(reader, events)
    assert reader.usage_seen and reader.ex.tally.completion_tokens == limit
    assert parses == len(events)


def test_the_limit_counts_content_chunks_not_events_with_output() -> None:
    """Events with output but no text (reasoning) count for the floor, not against the
    token limit: the cut comes at the content chunk past the limit, no sooner."""
    limit = 4
    reader = _reader(limit)
    thinking = [_chunk(_delta(reasoning_content="hm")) for _ in range(limit)]
    tokens = [_chunk(_delta(content=c)) for c in "abcd"]
    _read(reader, [_chunk(_delta(role="assistant")), *thinking, *tokens])
    assert (reader.outputs, reader.chunks) == (2 * limit, limit)
    batch, broken = reader._events([_chunk(_delta(content="e"))])
    assert batch == [] and isinstance(broken, Overrun)
    assert _old_way(reader, 1)[1] == limit  # the cut event was not kept


def test_a_part_padded_with_empty_events_is_still_a_break_at_the_limit() -> None:
    limit = 4
    reader = _reader(limit)
    _read(reader, [_chunk(_delta(content="a"))] + [_chunk(_delta())] * (limit + 7))
    batch, broken = reader._events([_chunk(_delta())])
    assert batch == [] and broken is not None and not isinstance(broken, Overrun)
    assert "events without output" in str(broken)
