"""The node's response shapes: a stream's text chunks made from a template."""

from __future__ import annotations

import json

import pytest

from LLM_Mesh.node import responses as R

TEXTS = ["a", " world", "", 'quote " and \\ backslash', "line\nbreak\ttab\r", "é日本🙂",
         "\x00text\x00", "\ud83d", "\x7f\x1f", "</script>"]  # fmt: skip


@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_text_chunks_are_byte_for_byte_the_whole_chunk(kind: str) -> None:
    ids = {"kind": kind, "id": R.new_id(kind), "created": 1764600000, "model": 'odd "model"\n'}
    make = R.TextChunks(**ids)
    for text in TEXTS:
        assert make(text) == R.sse(R.chunk(**ids, text=text)), text


def test_a_text_chunk_parses_back_to_its_text() -> None:
    make = R.TextChunks(kind="chat", id="chatcmpl-x", created=1, model="m")
    for text in TEXTS[:-3]:
        data = json.loads(make(text)[len(b"data: ") :])
        assert data["choices"][0]["delta"]["content"] == text
