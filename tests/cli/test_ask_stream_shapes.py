"""``llm-mesh ask --stream`` facing a hostile or buggy gateway: events of odd shapes print
the text they carry and nothing else, an ``error`` event is an error, and a stream that
ends without ``data: [DONE]`` is an error after the text already printed; each a one-line
``error:`` and exit 1, never a traceback.

Found 2026-12-04: ``choices`` not a list, a ``delta`` not an object, a ``content`` not a
string or a ``mesh`` not an object ended ``ask`` in an ``AttributeError``/``TypeError``/
``ValueError`` traceback; a stream cut before ``[DONE]`` passed as a whole answer.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import demo
from LLM_Mesh.cli.main import app

runner = CliRunner()
DONE = b"data: [DONE]\n\n"


def _event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _text(piece: str) -> dict[str, Any]:
    return {"object": "text_completion", "choices": [{"index": 0, "text": piece}]}


def _delta(piece: str) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": piece}}],
    }


def _ask(monkeypatch: pytest.MonkeyPatch, body: bytes, *args: str) -> Any:
    """``llm-mesh ask --stream ARGS`` against a gateway answering ``body`` as its stream."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    monkeypatch.setattr(demo, "ask_once", functools.partial(demo.ask_once, http_client=http))
    monkeypatch.delenv("LLM_MESH_API_KEY", raising=False)
    argv = ["ask", "Q:", "--model", "m", "--stream", "--registry", "http://gw.test", *args]
    return runner.invoke(app, argv)


# an odd event between two honest ones: "A" and "B" print, the odd one prints nothing
ODD: dict[str, Any] = {
    "choices missing": {"object": "text_completion"},
    "choices null": {"choices": None},
    "choices a string": {"choices": "XYZ"},
    "choices an object": {"choices": {"text": "XYZ"}},
    "choices a number": {"choices": 7},
    "choices empty": {"choices": []},
    "delta a string": {"choices": [{"delta": "XYZ"}]},
    "delta a list": {"choices": [{"delta": ["XYZ"]}]},
    "content a number": {"choices": [{"delta": {"content": 7}}]},
    "content a list": {"choices": [{"delta": {"content": ["XYZ"]}}]},
    "content null": {"choices": [{"delta": {"content": None}}]},
    "text a number": {"choices": [{"text": 7}]},
    "text an object": {"choices": [{"text": {"a": "XYZ"}}]},
    "mesh a string": {"choices": [], "mesh": "XYZ"},
    "mesh a list": {"choices": [], "mesh": [1, 2, 3]},
}


@pytest.mark.parametrize("chat", [False, True], ids=["completion", "chat"])
@pytest.mark.parametrize("kind", list(ODD))
def test_an_odd_event_prints_nothing_and_the_rest_prints(
    monkeypatch: pytest.MonkeyPatch, kind: str, chat: bool
) -> None:
    piece = _delta if chat else _text
    body = _event(piece("A")) + _event(ODD[kind]) + _event(piece("B")) + DONE
    got = _ask(monkeypatch, body, *(["--chat"] if chat else []))
    assert got.exit_code == 0, got.output
    assert got.exception is None
    assert "AB" in got.output and "XYZ" not in got.output


def test_completion_style_text_in_a_chat_stream_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    """``text`` in place of ``delta.content``: read as the text it is."""
    body = _event(_delta("A")) + _event(_text("B")) + _event(_delta("C")) + DONE
    got = _ask(monkeypatch, body, "--chat")
    assert got.exit_code == 0, got.output
    assert "ABC" in got.output


def _fails_after_a(got: Any, *words: str) -> None:
    assert got.exit_code == 1, got.output
    assert isinstance(got.exception, SystemExit)  # typer.Exit: no traceback
    assert "Traceback" not in got.output
    out = " ".join(got.output.split())  # (a long error line wraps)
    assert out.startswith("Q:A")  # the text printed first stands
    assert "error: the stream broke after part of the answer was printed" in out
    for w in words:
        assert w in out


@pytest.mark.parametrize(
    "event",
    [
        {"error": {"message": "node gone", "type": "api_error", "code": "upstream_error"}},
        {"error": {"message": "node gone"}, "choices": [{"index": 0, "text": "XYZ"}]},
        {"error": "node gone"},
    ],
    ids=["error event", "error beside choices", "error a string"],
)
def test_an_error_event_is_an_error(monkeypatch: pytest.MonkeyPatch, event: Any) -> None:
    got = _ask(monkeypatch, _event(_text("A")) + _event(event) + _event(_text("B")) + DONE)
    _fails_after_a(got, "node gone")
    assert "XYZ" not in got.output and "B" not in got.output.split("error:")[0][3:]


@pytest.mark.parametrize(
    "event",
    [{"choices": ["XYZ"]}, {"choices": [None]}, {"choices": [{"index": 1, "text": "XYZ"}]}],
    ids=["a choice a string", "a choice null", "a choice not asked for"],
)
def test_a_choice_outside_the_protocol_is_an_error(
    monkeypatch: pytest.MonkeyPatch, event: Any
) -> None:
    """A choice that is not an object, or of an index the request did not ask for, is no
    odd shape to skip but a gateway outside the protocol (``core/answer_text.choice_fault``,
    choiceidx31: an honest gateway breaks such a node's part and relays none of it): the
    stream is not read further, said in words (it was skipped, "B" printed, until then)."""
    got = _ask(monkeypatch, _event(_text("A")) + _event(event) + _event(_text("B")) + DONE)
    _fails_after_a(got, "outside the protocol")
    assert "XYZ" not in got.output and "B" not in got.output.split("error:")[0][3:]


@pytest.mark.parametrize("value", [[1, 2], "XYZ", 7, None])
def test_an_event_that_is_not_an_object_is_an_error(
    monkeypatch: pytest.MonkeyPatch, value: Any
) -> None:
    """Not an event of the API at all (a JSON object each): the stream is not read further
    (``MeshClient.stream``), said in words."""
    got = _ask(monkeypatch, _event(_text("A")) + _event(value) + _event(_text("B")) + DONE)
    _fails_after_a(got, "not a JSON object")


@pytest.mark.parametrize(
    ("cut", "printed"),
    [(b"", "Q:A "), (b": keep-alive\n\n", "Q:A "), (_event(_text("B"))[:-1], "Q:AB ")],
    ids=["between events", "after a comment", "its last event unterminated"],
)
def test_a_stream_cut_before_done_is_an_error_after_the_text(
    monkeypatch: pytest.MonkeyPatch, cut: bytes, printed: str
) -> None:
    got = _ask(monkeypatch, _event(_text("A")) + cut)
    _fails_after_a(got, "the stream ended before [DONE]: the answer may be cut short")
    assert " ".join(got.output.split()).startswith(printed)
    assert "gemma" not in got.output and "tok/s" not in got.output  # no metrics line


def test_a_stream_cut_before_any_text_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    got = _ask(monkeypatch, b"")
    assert got.exit_code == 1 and "Traceback" not in got.output
    assert "error: the stream ended before [DONE]: the answer may be cut short" in " ".join(
        got.output.split()
    )


@pytest.mark.parametrize("chat", [False, True], ids=["completion", "chat"])
def test_a_stream_far_longer_than_max_tokens_is_cut_not_gathered(
    monkeypatch: pytest.MonkeyPatch, chat: bool
) -> None:
    """Found 2026-12-05: ``ask --stream --max-tokens 4`` gathered and printed whatever text
    the gateway streamed for 30 min (``LLM_MESH_STREAM_MAX_S``), each event within its
    1 MiB: 64 MiB of it here (a fast link: gigabytes into the user's memory and terminal).
    Now the text stops at what 4 tokens can hold (``demo.text_bound``), one error line."""
    piece = _delta if chat else _text
    sent: list[int] = []

    async def endless() -> Any:
        for _ in range(1024):  # 64 MiB in 64 KiB events
            sent.append(1)
            yield _event(piece("A" * 65536))
        yield DONE

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(), headers={"content-type": "text/event-stream"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    monkeypatch.setattr(demo, "ask_once", functools.partial(demo.ask_once, http_client=http))
    monkeypatch.delenv("LLM_MESH_API_KEY", raising=False)
    argv = ["ask", "Q:", "--model", "m", "--stream", "--max-tokens", "4",
            "--registry", "http://gw.test", *(["--chat"] if chat else [])]  # fmt: skip
    res = runner.invoke(app, argv)
    assert res.exit_code == 1, res.output[-300:]
    assert len(sent) <= 2 and len(res.output) < 200_000, (len(sent), len(res.output))
    assert "more text than 4 tokens" in " ".join(res.output.split()), res.output[-300:]


def test_a_whole_answer_far_longer_than_max_tokens_is_not_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found 2026-12-05 (hostile29): ``ask --max-tokens 4`` (not streamed) printed whatever
    text the answer held, up to the client's 64 MiB (8 MiB of ``A`` here); the same bound
    as a stream's (``demo.text_bound``), one error line."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**_text("A" * (8 << 20)), "usage": {}})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    monkeypatch.setattr(demo, "ask_once", functools.partial(demo.ask_once, http_client=http))
    monkeypatch.delenv("LLM_MESH_API_KEY", raising=False)
    argv = ["ask", "Q:", "--model", "m", "--max-tokens", "4", "--registry", "http://gw.test"]
    res = runner.invoke(app, argv)
    assert res.exit_code == 1 and len(res.output) < 2000, res.output[-300:]
    assert "more text than 4 tokens can hold" in " ".join(res.output.split()), res.output
