"""``llm-mesh ask --stream`` facing a gateway that streams events without output for ever
(empty deltas, role-only deltas, ``choices: []``, comments): one ``error:`` line naming the
bound (``core/client_floor.py``), exit 1, the text printed before it standing; an honest
stream with keep-alives and a usage chunk prints whole.

Found 2026-12-05: such a gateway held ``ask`` for the stream's whole 30 min."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import demo
from LLM_Mesh.cli.main import app
from LLM_Mesh.core.client_floor import quiet_bound

runner = CliRunner()
DONE = b"data: [DONE]\n\n"
# what `ask` sends (--max-tokens 128 by default, a raw completion)
BOUND = quiet_bound({"max_tokens": 128}, chat=False)
HEAD = {"id": "c-1", "object": "text_completion", "created": 7, "model": "m"}


def _ev(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _text(piece: str) -> bytes:
    return _ev({**HEAD, "choices": [{"index": 0, "text": piece}]})


QUIET = {
    "empty_text": _ev({**HEAD, "choices": [{"index": 0, "text": ""}]}),
    "role": _ev({**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
    "no_choices": _ev({**HEAD, "choices": []}),
    "comment": b": ping\n\n",
}


def _ask(monkeypatch: pytest.MonkeyPatch, events: list[bytes], endless: bytes = b"") -> Any:
    """``llm-mesh ask --stream`` against a gateway streaming ``events``, then ``endless``
    (capped far past the bound: a client without a floor reads it all, as a whole answer)."""
    pulled = [0]

    async def body() -> AsyncIterator[bytes]:
        for ev in events:
            yield ev
        if endless:
            for _ in range(3 * BOUND.events):
                pulled[0] += 1
                yield endless
            yield DONE

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    monkeypatch.setattr(demo, "ask_once", functools.partial(demo.ask_once, http_client=http))
    monkeypatch.delenv("LLM_MESH_API_KEY", raising=False)
    argv = ["ask", "Q:", "--model", "m", "--stream", "--registry", "http://gw.test"]
    got = runner.invoke(app, argv)
    got.pulled = pulled[0]  # type: ignore[attr-defined]
    return got


@pytest.mark.parametrize("shape", list(QUIET))
def test_endless_events_without_output_after_text_end_ask(
    monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    got = _ask(monkeypatch, [_text("A")], QUIET[shape])
    assert got.exit_code == 1, got.output[-500:]
    assert isinstance(got.exception, SystemExit) and "Traceback" not in got.output
    out = " ".join(got.output.split())
    assert out.startswith("Q:A")
    assert "error: the stream broke after part of the answer was printed (1 characters" in out
    assert f"sent {BOUND.run + 1:,} events in a row without output (more than {BOUND.run:,})" in out
    assert got.pulled <= BOUND.run + 1


def test_endless_events_without_output_and_no_text_end_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    got = _ask(monkeypatch, [], QUIET["role"])
    assert got.exit_code == 1, got.output[-500:]
    out = " ".join(got.output.split())
    assert "error: the stream from http://gw.test sent" in out and "without output" in out
    assert "part of the answer" not in out


def test_an_honest_stream_with_keep_alives_and_usage_prints_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    final = _ev(
        {**HEAD, "choices": [], "usage": {"completion_tokens": 2}, "mesh": {"node_id": "n"}}
    )
    events = [_text("A"), *[QUIET["comment"]] * 64, _text("B"), QUIET["empty_text"], final, DONE]
    got = _ask(monkeypatch, events)
    assert got.exit_code == 0, got.output[-500:]
    assert "Q:AB" in got.output
